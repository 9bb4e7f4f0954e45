"""The optimizers after Adam: Muon, schedule-free AdamW, Lion and SOAP
(study/components/optimizers/{muon,schedule_free,lion,soap}.py), each against a hand computation
or its documented update."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from study.components.models import build_model
from study.components.optimizers import OPTIMIZERS, build_optimizer, check_schedule
from study.components.optimizers.muon import hidden_matrices
from study.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def three_layers(seed: int = 0) -> nn.Sequential:
    """Linear(4→8) → Linear(8→6) → Linear(6→3): one hidden matrix, the 6×8 in the middle."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 6), nn.Linear(6, 3))


def set_grads(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator)


# ---------------------------------------------------------------------------------------- Lion


def test_lion_two_steps_follow_the_signed_interpolated_momentum():
    lr, wd, b1, b2 = 0.01, 0.5, 0.9, 0.99
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]))
        model.bias.copy_(torch.tensor([1.0, -1.0]))
    w, b = model.weight.detach().clone(), model.bias.detach().clone()
    optimizer = build_optimizer({"name": "lion", "lr": lr, "weight_decay": wd}, model)
    g1 = torch.tensor([[0.3, -0.1, 0.2], [0.5, 0.4, -0.6]])
    g2 = torch.tensor([[-0.001, -0.1, 0.4], [0.01, -0.2, 0.3]])
    m_w, m_b = torch.zeros_like(w), torch.zeros_like(b)
    directions = []
    for g in (g1, g2):
        directions.append(torch.sign(b1 * m_w + (1 - b1) * g))
        model.weight.grad, model.bias.grad = g.clone(), g[:, 0].clone()
        optimizer.step()
        # w ← w − lr·(sign(β1·m + (1 − β1)·g) + wd·w); the bias is not decayed.
        w = w - lr * (torch.sign(b1 * m_w + (1 - b1) * g) + wd * w)
        b = b - lr * torch.sign(b1 * m_b + (1 - b1) * g[:, 0])
        m_w, m_b = b2 * m_w + (1 - b2) * g, b2 * m_b + (1 - b2) * g[:, 0]
        assert torch.allclose(model.weight, w, atol=1e-7)
        assert torch.allclose(model.bias, b, atol=1e-7)
    # The second step's sign comes from the interpolation, not from g2 alone: at [0, 0] the
    # momentum of g1 = 0.3 (0.9 · 0.003) outweighs 0.1 · (-0.001).
    assert directions[1][0, 0] == 1 and torch.sign(g2)[0, 0] == -1


# ---------------------------------------------------------------------------------------- Muon


def test_hidden_matrices_of_the_study_networks():
    resmlp = build_model(OmegaConf.load(ROOT / "conf/model/resmlp.yaml"), (1, 28, 28), 10)
    shapes = [tuple(w.shape) for w in hidden_matrices(resmlp)]
    assert shapes == [(256, 256)] * 6  # two per residual block; not the stem (256, 784) or head
    resnet = build_model(OmegaConf.load(ROOT / "conf/model/resnet.yaml"), (3, 32, 32), 10)
    shapes = [tuple(w.shape) for w in hidden_matrices(resnet)]
    assert (32, 3, 3, 3) not in shapes and (10, 128) not in shapes  # stem conv, classifier
    assert (64, 32, 1, 1) in shapes and (128, 128, 3, 3) in shapes  # shortcuts and stage convs
    assert len(shapes) == len([p for p in resnet.parameters() if p.ndim >= 2]) - 2


def muon_update(weight_before, weight_after, lr, wd, rows, cols):
    """The orthogonalized direction O of one Muon step w ← (1 − lr·wd)·w − lr·0.2·√max·O."""
    adjusted = lr * 0.2 * max(rows, cols) ** 0.5  # adjust_lr=match_rms_adamw
    return ((1 - lr * wd) * weight_before - weight_after) / adjusted


def test_muon_orthogonalizes_an_ill_conditioned_gradient():
    lr, wd = 0.1, 0.05
    model = three_layers()
    optimizer = build_optimizer({"name": "muon", "lr": lr, "weight_decay": wd}, model)
    w0 = model[1].weight.detach().clone()
    set_grads(model, seed=1)
    u, _, v = torch.linalg.svd(torch.randn(6, 8, generator=torch.Generator().manual_seed(2)))
    spectrum = torch.tensor([30.0, 10.0, 3.0, 1.0, 0.7, 0.5])  # condition number 60
    model[1].weight.grad = u @ torch.diag(spectrum) @ v[:6]
    optimizer.step()
    update = muon_update(w0, model[1].weight.detach(), lr, wd, 6, 8)
    singular = torch.linalg.svdvals(update)
    # Newton–Schulz (5 quintic steps, bf16) gives U·S'·Vᵀ with S' near 1, not exactly 1.
    assert singular.min() > 0.5 and singular.max() < 1.5, singular
    assert singular.max() / singular.min() < 2  # from 60 down to under 2
    # ... along the gradient's own singular vectors: O ≈ U·Vᵀ, a descent direction.
    assert torch.allclose(update, u @ v[:6], atol=0.35)
    assert torch.sum(update * model[1].weight.grad) > 0


def test_muon_leaves_the_other_parameters_to_adamw_exactly():
    lr, wd = 0.01, 0.1
    model = three_layers()
    reference = three_layers()
    muon = build_optimizer({"name": "muon", "lr": lr, "weight_decay": wd}, model)
    # First and last weights decayed, biases not; betas (0.9, 0.95) as conf/optim/muon.yaml.
    adamw = torch.optim.AdamW(
        [
            {"params": [reference[0].weight, reference[2].weight], "weight_decay": wd},
            {"params": [p for n, p in reference.named_parameters() if "bias" in n]},
        ],
        lr=lr,
        betas=(0.9, 0.95),
        eps=1e-8,
        weight_decay=0.0,
    )
    for seed in range(3):
        set_grads(model, seed)
        set_grads(reference, seed)
        muon.step()
        adamw.step()
    for name, p in model.named_parameters():
        if name != "1.weight":
            assert torch.equal(p, dict(reference.named_parameters())[name]), name
    assert not torch.equal(model[1].weight, reference[1].weight)


def conv_net(channels_last: bool) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Conv2d(4, 5, 3), nn.Flatten(), nn.Linear(5, 2))
    return net.to(memory_format=torch.channels_last) if channels_last else net


@pytest.mark.parametrize("channels_last", [False, True])
def test_muon_orthogonalizes_a_conv_filter_as_a_matrix(channels_last):
    lr = 0.1
    net = conv_net(channels_last)
    filters = net[1].weight
    assert filters.is_contiguous() != channels_last
    optimizer = build_optimizer({"name": "muon", "lr": lr, "weight_decay": 0.0}, net)
    w0 = filters.detach().clone()
    set_grads(net, seed=3)
    grad = filters.grad.clone()
    optimizer.step()
    # The update of the (5, 4, 3, 3) filter is Muon's on the (5, 36) matrix of its gradient.
    update = muon_update(w0, filters.detach(), lr, 0.0, 5, 36).reshape(5, 36)
    matrix = torch.nn.Linear(36, 5, bias=False)
    with torch.no_grad():
        matrix.weight.copy_(w0.reshape(5, 36))
    reference = torch.optim.Muon(
        matrix.parameters(), lr=lr, weight_decay=0.0, adjust_lr_fn="match_rms_adamw"
    )
    matrix.weight.grad = grad.reshape(5, 36)
    reference.step()
    expected = muon_update(w0.reshape(5, 36), matrix.weight.detach(), lr, 0.0, 5, 36)
    # bf16 Newton–Schulz on permuted columns rounds differently: equal to bf16 precision.
    assert torch.allclose(update, expected, atol=2e-2)
    assert torch.linalg.svdvals(update).min() > 0.5


def test_muon_resumes_from_its_state_dict():
    model, resumed = three_layers(), three_layers()
    cfg = {"name": "muon", "lr": 0.01, "weight_decay": 0.1}
    first = build_optimizer(cfg, model)
    set_grads(model, 0)
    first.step()
    resumed.load_state_dict(model.state_dict())
    second = build_optimizer(cfg, resumed)
    second.load_state_dict(copy.deepcopy(first.state_dict()))  # as from a checkpoint file
    for optimizer, net in ((first, model), (second, resumed)):
        set_grads(net, 1)
        optimizer.step()
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_muon_groups_take_the_scheduled_learning_rate():
    optimizer = build_optimizer({"name": "muon", "lr": 0.01}, three_layers())
    assert [g["muon"] for g in optimizer.param_groups] == [True, False, False]
    for group in optimizer.param_groups:
        group["lr"] = 0.5  # what the training loop does every step
    assert optimizer._muon.param_groups[0]["lr"] == 0.5
    assert [g["lr"] for g in optimizer._adamw.param_groups] == [0.5, 0.5]


# ------------------------------------------------------------------------- schedule-free AdamW


def schedule_free(model, **overrides):
    cfg = {"name": "adamw_schedulefree", "lr": 0.01, "weight_decay": 0.1} | overrides
    return build_optimizer(cfg, model)


def test_schedule_free_evaluates_the_average_of_its_iterates():
    model = three_layers()
    optimizer = schedule_free(model)
    zs = []
    for seed in range(5):
        set_grads(model, seed)
        optimizer.step()
        zs.append({n: optimizer.state[p]["z"].clone() for n, p in model.named_parameters()})
    optimizer.eval()
    # Constant lr, no warmup, r = 0: c_t = lr²/Σlr² = 1/t, so x_T = (z_1 + … + z_T) / T.
    for name, p in model.named_parameters():
        mean = torch.stack([z[name] for z in zs]).mean(0)
        assert torch.allclose(p, mean, atol=1e-6), name


def test_schedule_free_train_and_eval_swap_the_weights_back():
    model = three_layers()
    optimizer = schedule_free(model)
    for seed in range(3):
        set_grads(model, seed)
        optimizer.step()
    y = [p.detach().clone() for p in model.parameters()]
    optimizer.eval()
    x = [p.detach().clone() for p in model.parameters()]
    assert all(not torch.allclose(a, b) for a, b in zip(x, y, strict=True))
    optimizer.eval()  # idempotent
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), x, strict=True))
    optimizer.train()
    assert all(torch.allclose(p, a, atol=1e-6) for p, a in zip(model.parameters(), y, strict=True))


def test_schedule_free_warmup_is_the_same_inside_or_from_the_schedule():
    own, scheduled = three_layers(), three_layers()
    inside = schedule_free(own, warmup_steps=4)
    outside = schedule_free(scheduled)
    for step in range(6):
        for group in outside.param_groups:  # the study's schedule: linear warmup over 4 steps
            group["lr"] = 0.01 * min(1.0, (step + 1) / 4)
        set_grads(own, step)
        set_grads(scheduled, step)
        inside.step()
        outside.step()
    inside.eval()
    outside.eval()
    for a, b in zip(own.parameters(), scheduled.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)


def test_only_schedule_free_switches_modes_and_refuses_a_decay():
    switching = [n for n in OPTIMIZERS if OPTIMIZERS.get(n).train_mode is not None]
    assert switching == ["adamw_schedulefree"]
    assert [n for n in OPTIMIZERS if OPTIMIZERS.get(n).constant_schedule] == switching
    optim = {"name": "adamw_schedulefree", "lr": 0.01}
    with pytest.raises(ConfigError) as error:
        check_schedule(optim, {"name": "cosine", "warmup": 0.0})
    assert str(error.value).startswith(
        "optim=adamw_schedulefree averages its iterates instead of decaying the learning rate, "
        "so schedule=cosine does not apply: set schedule=constant"
    )
    check_schedule(optim, {"name": "constant", "warmup": 0.1})  # a warmup is fine
    check_schedule({"name": "adamw", "lr": 0.01}, {"name": "cosine"})


@pytest.mark.parametrize("steps", [-1, 2.5, "10"])
def test_schedule_free_warmup_is_a_whole_number_of_steps(steps):
    with pytest.raises(ConfigError, match=r"^optim\.warmup_steps must be a whole number"):
        schedule_free(three_layers(), warmup_steps=steps)


def test_schedule_free_is_ready_to_step_after_its_build():
    optimizer = schedule_free(three_layers())
    assert all(group["train_mode"] for group in optimizer.param_groups)


# ---------------------------------------------------------------------------------------- SOAP


def test_soap_descends_an_ill_conditioned_least_squares_problem():
    """SOAP's first step only measures the preconditioner (the package's documented behaviour, as
    in the paper's code); from then on it descends a least-squares problem whose input scales span
    two decades in a rotated basis (so that no per-coordinate step size fits it).

    In float64: in float32 the eigenbasis carries rounding noise that differs by CPU kernel path
    and, at this step size, sends the trajectory elsewhere (final loss 0.3% to 2.2% of the start
    over five kernel paths of one machine, 1.1% on another CPU kind). In float64 the same five
    paths agree to four digits: loss at step 20 is 54% of the start, the lowest 0.28%, the last
    1.1% (SOAP oscillates after its lowest point), each several times inside its bound. An
    optimizer that does not descend, or diverges, misses all three."""
    generator = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=generator, dtype=torch.float64))
    scales = torch.logspace(-1, 1, 8, dtype=torch.float64)
    inputs = (torch.randn(256, 8, generator=generator, dtype=torch.float64) * scales) @ rotation
    targets = inputs @ torch.randn(8, 4, generator=generator, dtype=torch.float64)
    model = nn.Linear(8, 4, bias=False, dtype=torch.float64)
    nn.init.zeros_(model.weight)
    optimizer = build_optimizer({"name": "soap", "lr": 0.03, "weight_decay": 0.0}, model)
    losses = []
    for _ in range(100):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[1] == losses[0]  # the first step moved nothing
    assert losses[20] < 0.8 * losses[0]
    assert min(losses) < 0.01 * losses[0]
    assert losses[-1] < 0.05 * losses[0]


def test_soap_decay_reaches_weights_only():
    a, b = three_layers(), three_layers()
    decayed = build_optimizer({"name": "soap", "lr": 0.01, "weight_decay": 0.5}, a)
    plain = build_optimizer({"name": "soap", "lr": 0.01, "weight_decay": 0.0}, b)
    for seed in range(3):
        set_grads(a, seed)
        set_grads(b, seed)
        decayed.step()
        plain.step()
    assert torch.equal(a[1].bias, b[1].bias)
    assert not torch.equal(a[1].weight, b[1].weight)


@pytest.mark.parametrize(
    ("key", "value"), [("precondition_frequency", 0), ("max_precondition_dim", 2.5)]
)
def test_soap_keys_are_checked(key, value):
    with pytest.raises(ConfigError, match=rf"^optim\.{key} must be a positive integer"):
        build_optimizer({"name": "soap", "lr": 0.01, key: value}, three_layers())


def test_muon_adjustment_is_checked():
    with pytest.raises(ConfigError, match=r"^optim\.adjust_lr must be one of match_rms_adamw"):
        build_optimizer({"name": "muon", "lr": 0.01, "adjust_lr": "rms"}, three_layers())


# ---------------------------------------------------------------------------------- imports


def test_third_party_optimizers_are_imported_only_by_their_builders():
    code = (
        "import sys, torch; from study.components.optimizers import build_optimizer;"
        "build_optimizer({'name': 'muon', 'lr': 0.01}, torch.nn.Linear(2, 2));"
        "print(sorted(m for m in ('schedulefree', 'pytorch_optimizer') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_training_loop_switches_schedule_free_through_its_spec():
    from types import SimpleNamespace

    from study.training.loop import switch_optimizer_mode

    model = three_layers()
    optimizer = schedule_free(model)
    set_grads(model, 0)
    optimizer.step()
    parts = SimpleNamespace(cfg=OmegaConf.create({"optim": {"name": "adamw_schedulefree"}}))
    parts.optimizer = optimizer
    switch_optimizer_mode(parts, training=False)
    assert not optimizer.param_groups[0]["train_mode"]
    switch_optimizer_mode(parts, training=True)
    assert optimizer.param_groups[0]["train_mode"]
    adamw = build_optimizer({"name": "adamw", "lr": 0.01}, model)
    switch_optimizer_mode(
        SimpleNamespace(cfg=OmegaConf.create({"optim": {"name": "adamw"}}), optimizer=adamw),
        training=False,
    )  # a no-op
