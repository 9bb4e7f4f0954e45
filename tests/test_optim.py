"""Optimizers, weight decay and penalties (study/components/optimizers/)."""

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from study.components.optimizers import OPTIMIZERS, build_optimizer, validate_optim
from study.components.regularizers import penalty, weights
from study.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf" / "optim"


def tiny_model() -> nn.Sequential:
    """Linear(2→2) → LayerNorm(2) → Linear(2→1), with hand-picked weights."""
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.0]]))
        model[0].bias.copy_(torch.tensor([5.0, -7.0]))
        model[1].weight.copy_(torch.tensor([2.0, 3.0]))
        model[1].bias.copy_(torch.tensor([1.0, 1.0]))
        model[2].weight.copy_(torch.tensor([[0.5, -1.0]]))
        model[2].bias.copy_(torch.tensor([4.0]))
    return model


def cfg(name: str, **overrides):
    base = OmegaConf.load(CONF / f"{name}.yaml")
    return OmegaConf.merge(base, overrides)


# ---------------------------------------------------------------------------- weights, penalty


def test_weights_are_the_matrices_only():
    model = tiny_model()
    assert [tuple(w.shape) for w in weights(model)] == [(2, 2), (1, 2)]


def test_penalty_equals_hand_computed_sum():
    model = tiny_model()
    # Σw² = 1 + 4 + 9 + 0 + 0.25 + 1 = 15.25 ; Σ|w| = 1 + 2 + 3 + 0 + 0.5 + 1 = 7.5
    assert penalty(model, l1=0.0, l2=0.2).item() == pytest.approx(0.2 / 2 * 15.25)
    assert penalty(model, l1=0.1, l2=0.0).item() == pytest.approx(0.1 * 7.5)
    assert penalty(model, l1=0.1, l2=0.2).item() == pytest.approx(1.525 + 0.75)


def test_penalty_is_zero_scalar_when_disabled():
    value = penalty(tiny_model(), l1=0.0, l2=0.0)
    assert value.ndim == 0 and value.item() == 0.0 and not value.requires_grad


def test_biases_and_norm_parameters_are_excluded_from_penalty():
    model = tiny_model()
    before = penalty(model, l1=0.1, l2=0.2).item()
    with torch.no_grad():
        model[0].bias.mul_(10)  # a bias
        model[1].weight.mul_(10)  # a normalization scale (1-D "weight")
        model[1].bias.add_(3)  # a normalization shift
        model[2].bias.fill_(-100)
    assert penalty(model, l1=0.1, l2=0.2).item() == before
    # ... and the penalty sends no gradient to them.
    penalty(model, l1=0.1, l2=0.2).backward()
    assert model[0].bias.grad is None and model[1].weight.grad is None
    assert torch.allclose(
        model[0].weight.grad, 0.2 * model[0].weight + 0.1 * model[0].weight.sign()
    )


# ---------------------------------------------------------------------------- weight decay


def one_step(name: str, weight_decay: float, grad_scale: float, lr: float = 0.1):
    """One step on Linear(3→2) with a fixed gradient ``grad_scale · g``; returns the new params."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]))
        model.bias.copy_(torch.tensor([1.0, -1.0]))
    optimizer = build_optimizer(cfg(name, lr=lr, weight_decay=weight_decay), model)
    model.weight.grad = grad_scale * torch.tensor([[0.3, -0.1, 0.2], [0.5, 0.4, -0.6]])
    model.bias.grad = grad_scale * torch.tensor([0.1, -0.2])
    optimizer.step()
    return model.weight.detach().clone(), model.bias.detach().clone()


def test_adamw_step_is_decoupled_decay_plus_adam_update():
    lr, wd, eps = 0.1, 0.5, 1e-8
    w0 = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    g = torch.tensor([[0.3, -0.1, 0.2], [0.5, 0.4, -0.6]])
    w1, b1 = one_step("adamw", wd, grad_scale=1.0, lr=lr)
    # First Adam step with bias correction: m̂ = g, v̂ = g², update = g / (|g| + eps).
    adam_update = g / (g.abs() + eps)
    expected = w0 - lr * wd * w0 - lr * adam_update
    assert torch.allclose(w1, expected, atol=1e-6)
    # The bias is not decayed: same as without weight decay.
    assert torch.equal(b1, one_step("adamw", 0.0, grad_scale=1.0, lr=lr)[1])


@pytest.mark.parametrize("grad_scale", [1e-3, 1.0, 1e3])
def test_decoupled_decay_does_not_depend_on_gradient_scale(grad_scale):
    lr, wd = 0.1, 0.5
    w0 = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    decayed, _ = one_step("adamw", wd, grad_scale, lr)
    plain, _ = one_step("adamw", 0.0, grad_scale, lr)
    assert torch.allclose(decayed - plain, -lr * wd * w0, atol=1e-6)


def test_coupled_decay_in_adam_is_rescaled_by_the_denominator():
    # Adam's coupled L2 adds wd·w to the gradient, then divides by sqrt(v) ≈ |g + wd·w|.
    # With large gradients the decay term is drowned out: it hardly changes the step at all,
    # whereas AdamW shrinks every weight by lr·wd·w regardless (Loshchilov & Hutter 2019).
    lr, wd = 0.1, 0.5
    w0 = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    big_adam = one_step("adam", wd, 1e3, lr)[0] - one_step("adam", 0.0, 1e3, lr)[0]
    big_adamw = one_step("adamw", wd, 1e3, lr)[0] - one_step("adamw", 0.0, 1e3, lr)[0]
    assert big_adam.abs().max() < 1e-3 * (lr * wd * w0).abs().max()
    assert torch.allclose(big_adamw, -lr * wd * w0, atol=1e-6)
    # With tiny gradients the coupled decay dominates the step and is normalized to lr·sign(w):
    # every weight moves by lr whatever its magnitude, which is not a decay proportional to w.
    small_adam = one_step("adam", wd, 1e-6, lr)[0] - w0
    nonzero = w0 != 0
    assert torch.allclose(small_adam[nonzero], -lr * w0[nonzero].sign(), rtol=1e-3)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_coupled_decay_reaches_weights_only(name):
    w_decay, b_decay = one_step(name, 0.1, 1.0)
    w_plain, b_plain = one_step(name, 0.0, 1.0)
    assert torch.equal(b_decay, b_plain)
    assert not torch.equal(w_decay, w_plain)


def test_sgd_coupled_decay_matches_l2_gradient():
    lr, wd = 0.1, 0.5
    w0 = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    g = torch.tensor([[0.3, -0.1, 0.2], [0.5, 0.4, -0.6]])
    w1, _ = one_step("sgd", wd, 1.0, lr)
    assert torch.allclose(w1, w0 - lr * (g + wd * w0), atol=1e-6)


def test_param_groups_split_weights_from_the_rest():
    model = tiny_model()
    optimizer = build_optimizer(cfg("adam", weight_decay=0.01), model)
    decayed, rest = optimizer.param_groups
    assert decayed["weight_decay"] == 0.01 and rest["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(w) for w in weights(model)}
    assert len(rest["params"]) == 4  # two Linear biases, LayerNorm weight and bias


def test_lbfgs_decay_shrinks_weights_only():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(0.0)
    optimizer = build_optimizer(cfg("lbfgs", weight_decay=1.0, max_iter=50), model)

    def closure():
        optimizer.zero_grad()
        loss = (model.bias - 1).pow(2).sum() + 0 * model.weight.sum()
        loss.backward()
        return loss

    first = optimizer.step(closure)
    assert first.item() == pytest.approx(2.0 + 0.5 * 6.0)  # the objective includes wd/2·Σw²
    assert model.weight.abs().max().item() < 1e-3
    assert torch.allclose(model.bias, torch.ones(2), atol=1e-3)


# ---------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_builds_and_steps(name):
    torch.manual_seed(0)
    model = tiny_model()
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    optimizer = build_optimizer(cfg(name, weight_decay=0.01), model)
    before = [p.detach().clone() for p in model.parameters()]

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(2):  # SOAP's first step only measures its preconditioner
        if OPTIMIZERS.get(name).needs_closure:
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


def test_config_files_name_their_registry_entry_and_validate():
    files = sorted(CONF.glob("*.yaml"))
    assert {f.stem for f in files} == set(OPTIMIZERS)
    for path in files:
        config = OmegaConf.load(path)
        assert config.name == path.stem
        validate_optim(config)


def test_plain_dicts_are_accepted():
    optimizer = build_optimizer({"name": "adamw", "lr": 1e-3}, nn.Linear(2, 2))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == 0.0  # not torch's default of 0.01


# ---------------------------------------------------------------------------- validation


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="'adamax'") as error:
        validate_optim({"name": "adamax", "lr": 0.1})
    for name in OPTIMIZERS:
        assert name in str(error.value)


@pytest.mark.parametrize("lr", [0, -0.1, math.nan, math.inf, "0.1", True, None])
def test_bad_learning_rate(lr):
    with pytest.raises(ValueError, match=r"optim\.lr must be a finite positive number"):
        validate_optim({"name": "sgd", "lr": lr})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("weight_decay", -1e-4, r"optim\.weight_decay must be a finite number >= 0"),
        ("momentum", 1.0, r"optim\.momentum must be a number in \[0, 1\)"),
        ("momentum", -0.1, r"optim\.momentum must be a number in \[0, 1\)"),
        ("betas", [0.9, 1.0], r"optim\.betas must be two numbers in \[0, 1\)"),
        ("betas", [0.9], r"optim\.betas must be two numbers in \[0, 1\)"),
        ("eps", 0.0, r"optim\.eps must be a finite positive number"),
        ("history_size", 2.5, r"optim\.history_size must be a positive integer"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        validate_optim({"name": "adam", "lr": 0.1, key: value})


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match=r"optim\.nesterov=true needs optim\.momentum > 0"):
        validate_optim({"name": "nesterov", "lr": 0.1, "momentum": 0.0, "nesterov": True})


def test_build_validates_before_building():
    with pytest.raises(ValueError, match=r"optim\.lr"):
        build_optimizer(cfg("adamw", lr=-1.0), nn.Linear(2, 2))


def test_unknown_optimizer_is_one_line_listing_the_valid_names():
    with pytest.raises(ConfigError) as error:
        build_optimizer({"name": "adamax", "lr": 0.1}, nn.Linear(2, 2))
    assert str(error.value) == (
        "optim.name='adamax' is an unknown optimizer; use one of "
        "adagrad, adam, adamw, adamw_schedulefree, lbfgs, lion, momentum, muon, nesterov, "
        "rmsprop, sgd, soap"
    )


def test_only_lbfgs_steps_with_a_closure():
    assert [name for name in OPTIMIZERS if OPTIMIZERS.get(name).needs_closure] == ["lbfgs"]


def test_line_search_is_checked_for_lbfgs_only():
    with pytest.raises(ConfigError, match=r"optim\.line_search must be strong_wolfe or none"):
        validate_optim({"name": "lbfgs", "lr": 1.0, "line_search": "armijo"})
    validate_optim({"name": "adam", "lr": 0.1, "line_search": "armijo"})
