"""Batch Renormalization (Ioffe 2017, Algorithm 1) in study/components/layers.py."""

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from study.components.layers import BatchRenorm, converged_after

EPS = 1e-5


def batches(shape, n, mean, std, seed=0):
    """n batches whose channels (dim 1) have the given means and standard deviations."""
    g = torch.Generator().manual_seed(seed)
    view = [1, shape[1]] + [1] * (len(shape) - 2)
    mean = torch.as_tensor(mean, dtype=torch.float32).expand(shape[1]).reshape(view)
    std = torch.as_tensor(std, dtype=torch.float32).expand(shape[1]).reshape(view)
    return [torch.randn(shape, generator=g) * std + mean for _ in range(n)]


def reference(x, layer, r, d):
    """Algorithm 1 written out: x̂ = (x − μ_B)/σ_B · r + d, y = γ x̂ + β, with r, d given."""
    reduce = [0, *range(2, x.dim())]
    view = [1, x.shape[1]] + [1] * (x.dim() - 2)
    mean = x.mean(reduce, keepdim=True)
    std = torch.sqrt(x.var(reduce, correction=0, keepdim=True) + layer.eps)
    x_hat = (x - mean) / std * r.view(view) + d.view(view)
    return x_hat * layer.weight.view(view) + layer.bias.view(view)


def randomize_affine(*layers, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.rand(layers[0].num_features, generator=g) + 0.5
    bias = torch.randn(layers[0].num_features, generator=g)
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)


# --------------------------------------------------------------------------------------------------
# r_max = 1, d_max = 0 is BatchNorm


@pytest.mark.parametrize(
    ("shape", "bn_cls", "channels_last"),
    [
        ((16, 5), nn.BatchNorm1d, False),
        ((6, 4, 5, 5), nn.BatchNorm2d, False),
        ((6, 4, 5, 5), nn.BatchNorm2d, True),
    ],
)
@pytest.mark.parametrize("limits", [{"r_max": 1.0, "d_max": 0.0}, {"r_max": 3.0, "d_max": 5.0}])
def test_equals_batchnorm_without_correction(shape, bn_cls, channels_last, limits):
    # With r_max = 3, d_max = 5 the layer is still in its warm-up (step 0): plain BatchNorm. The
    # variance form keeps BatchNorm's buffers exactly; the paper's σ average is tested below.
    channels = shape[1]
    brn = BatchRenorm(channels, momentum=0.1, moving="var", **limits)
    bn = bn_cls(channels, momentum=0.1)
    randomize_affine(brn, bn)
    assert brn.current_r_max == 1.0 and brn.current_d_max == 0.0
    for step, x in enumerate(batches(shape, 5, torch.arange(channels) - 2.0, 3.0)):
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        xa = x.clone().requires_grad_()
        xb = x.clone().requires_grad_()
        ya, yb = brn(xa), bn(xb)
        torch.testing.assert_close(ya, yb)
        g = torch.randn_like(ya)
        ya.backward(g)
        yb.backward(g)
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(brn.running_mean, bn.running_mean)
        torch.testing.assert_close(brn.running_var, bn.running_var)  # unbiased, as BatchNorm
        assert brn.num_batches_tracked.item() == bn.num_batches_tracked.item() == step + 1
    torch.testing.assert_close(brn.weight.grad, bn.weight.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(brn.bias.grad, bn.bias.grad)
    brn.eval()
    bn.eval()
    x = batches(shape, 1, 1.0, 2.0, seed=9)[0]
    torch.testing.assert_close(brn(x), bn(x))


def test_state_dict_has_batchnorm_keys():
    brn, bn = BatchRenorm(3), nn.BatchNorm2d(3)
    assert brn.state_dict().keys() == bn.state_dict().keys()
    bn.running_mean.fill_(2.0)
    brn.load_state_dict(bn.state_dict())
    assert torch.equal(brn.running_mean, bn.running_mean)


def test_training_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match="more than 1 value"):
        BatchRenorm(3).train()(torch.randn(1, 3))


# --------------------------------------------------------------------------------------------------
# Correction r, d: clipped, and constants for backpropagation


def test_r_and_d_carry_no_gradient():
    torch.manual_seed(0)
    layer = BatchRenorm(3, r_max=3.0, d_max=5.0, warmup_steps=0).double()
    layer.set_progress(1, 1)
    randomize_affine(layer)
    layer.running_mean.copy_(torch.tensor([0.8, -0.5, -0.6]))
    layer.running_var.copy_(torch.tensor([2.0, 0.5, 1.0]))
    x = torch.randn(8, 3, 2, 2, dtype=torch.float64) * 1.3 + 0.2
    mean = x.mean((0, 2, 3))
    std_b = torch.sqrt(x.var((0, 2, 3), correction=0) + EPS)
    std = torch.sqrt(layer.running_var + EPS)
    r = std_b / std
    d = (mean - layer.running_mean) / std
    # The clip is inactive here, so a gradient through r and d would show.
    assert ((r > 1 / 3) & (r < 3) & ((r - 1).abs() > 0.05)).all()
    assert ((d.abs() < 5) & (d.abs() > 0.05)).all()

    g = torch.randn(8, 3, 2, 2, dtype=torch.float64)
    xa = x.clone().requires_grad_()
    (layer(xa) * g).sum().backward()
    params = [layer.weight.grad.clone(), layer.bias.grad.clone()]
    layer.zero_grad()

    xb = x.clone().requires_grad_()
    y = reference(xb, layer, r.detach(), d.detach())
    (y * g).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(params[0], layer.weight.grad)
    torch.testing.assert_close(params[1], layer.bias.grad)

    # Letting r and d carry gradient gives a different input gradient, so the check above bites.
    xc = x.clone().requires_grad_()
    mean_c = xc.mean((0, 2, 3))
    std_c = torch.sqrt(xc.var((0, 2, 3), correction=0) + EPS)
    y = reference(xc, layer, std_c / std, (mean_c - layer.running_mean) / std)
    (y * g).sum().backward()
    assert not torch.allclose(xa.grad, xc.grad, atol=1e-4)


def test_clipping_holds_at_the_bounds():
    layer = BatchRenorm(2, r_max=3.0, d_max=5.0, warmup_steps=0)
    layer.set_progress(1, 1)
    # running statistics: mean 0, var 1. Batches far wider / narrower / shifted than that.
    wide, narrow = batches((64, 2), 1, 0.0, 100.0)[0], batches((64, 2), 1, 0.0, 0.01)[0]
    high, low = batches((64, 2), 1, 50.0, 1.0)[0], batches((64, 2), 1, -50.0, 1.0)[0]
    for x, r_expected, d_expected in (
        (wide, 3.0, None),
        (narrow, 1 / 3.0, None),
        (high, None, 5.0),
        (low, None, -5.0),
    ):
        r, d = layer.correction(x.mean(0), torch.sqrt(x.var(0, correction=0) + EPS))
        assert not r.requires_grad and not d.requires_grad
        if r_expected is not None:
            assert torch.equal(r, torch.full((2,), r_expected))
        if d_expected is not None:
            assert torch.equal(d, torch.full((2,), d_expected))

    # The forward pass applies the clipped values: with γ = 1, β = 0 the output is x̂_BN · r + d.
    fresh = BatchRenorm(2, r_max=3.0, d_max=5.0, warmup_steps=0)
    fresh.set_progress(1, 1)
    x = batches((64, 2), 1, 50.0, 100.0)[0]
    y = fresh(x)
    x_hat = (x - x.mean(0)) / torch.sqrt(x.var(0, correction=0) + EPS)
    torch.testing.assert_close(y, x_hat * 3.0 + 5.0)


@pytest.mark.parametrize("shape", [(6, 3), (4, 2, 3, 3)])
@pytest.mark.parametrize("saturated", [False, True])
def test_gradcheck_in_training(shape, saturated):
    # r and d are constants for backpropagation, so the numerical derivative of the forward pass
    # matches autograd only where they are locally constant: r_max = 1, d_max = 0 (BatchNorm), or
    # running statistics so far from the batch's that both are clipped.
    torch.manual_seed(0)
    channels = shape[1]
    if saturated:
        layer = BatchRenorm(channels, r_max=2.0, d_max=1.0, warmup_steps=0).double()
        layer.set_progress(1, 1)
        buffers = {"running_mean": torch.full((channels,), 40.0, dtype=torch.float64)}
        buffers["running_var"] = torch.full((channels,), 1e-4, dtype=torch.float64)
    else:
        layer = BatchRenorm(channels, r_max=1.0, d_max=0.0).double()
        buffers = {
            "running_mean": torch.zeros(channels, dtype=torch.float64),
            "running_var": torch.ones(channels, dtype=torch.float64),
        }
    layer.train()

    def forward(x, weight, bias):
        state = {k: v.clone() for k, v in buffers.items()}  # same r, d on every evaluation
        state["num_batches_tracked"] = torch.tensor(0)
        return functional_call(layer, {"weight": weight, "bias": bias, **state}, (x,))

    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    weight = (torch.rand(channels, dtype=torch.float64) + 0.5).requires_grad_()
    bias = torch.randn(channels, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(forward, (x, weight, bias))


# --------------------------------------------------------------------------------------------------
# Relaxation of r_max and d_max over training


def test_plain_batchnorm_until_the_moving_averages_have_converged():
    # (1 - 0.01)^K < 0.01 first at K = 459: the averages then keep under 1% of their start.
    assert converged_after(0.01) == 459 and 0.99**459 < 0.01 <= 0.99**458
    assert converged_after(0.1) == 44 and converged_after(None) == 0
    assert BatchRenorm(4).warmup_steps == 459


def test_relaxation_schedule_in_steps():
    # 100 plain BatchNorm steps, then a ramp over half of the remaining 900 (steps 100 to 550).
    layer = BatchRenorm(4, r_max=3.0, d_max=5.0, warmup_steps=100, relax_end=0.5)
    expected = {
        0: (1.0, 0.0),
        99: (1.0, 0.0),
        100: (1.0, 0.0),  # the ramp starts after the warm-up
        325: (2.0, 2.5),  # halfway
        550: (3.0, 5.0),
        999: (3.0, 5.0),
    }
    for step, (r_max, d_max) in expected.items():
        layer.set_progress(step, 1000)
        assert layer.current_r_max == pytest.approx(r_max, abs=1e-12), step
        assert layer.current_d_max == pytest.approx(d_max, abs=1e-12), step


def test_relaxation_without_ramp_is_a_step():
    layer = BatchRenorm(4, r_max=2.0, d_max=1.0, warmup_steps=20, relax_end=0.0)
    layer.set_progress(19, 100)
    assert (layer.current_r_max, layer.current_d_max) == (1.0, 0.0)
    layer.set_progress(20, 100)
    assert (layer.current_r_max, layer.current_d_max) == (2.0, 1.0)


def test_a_run_shorter_than_the_warm_up_stays_batchnorm():
    layer = BatchRenorm(4, warmup_steps=459)
    layer.set_progress(389, 390)
    assert (layer.current_r_max, layer.current_d_max) == (1.0, 0.0)


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="r_max"):
        BatchRenorm(4, r_max=0.5)
    with pytest.raises(ValueError, match="d_max"):
        BatchRenorm(4, d_max=-1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        BatchRenorm(4, warmup_steps=-1)
    with pytest.raises(ValueError, match="moving"):
        BatchRenorm(4, moving="median")


# --------------------------------------------------------------------------------------------------
# Moving statistics


@pytest.mark.parametrize("shape", [(64, 4), (16, 4, 3, 3)])
def test_moving_statistics_converge_to_the_data(shape):
    torch.manual_seed(0)
    mean = torch.tensor([3.0, -2.0, 0.5, 10.0])
    std = torch.tensor([0.5, 2.0, 1.0, 4.0])
    layer = BatchRenorm(4, r_max=3.0, d_max=5.0, momentum=0.05, moving="var")
    layer.set_progress(1, 1)
    for x in batches(shape, 400, mean, std):
        layer(x)
    # EMA of batch estimates: a few percent of spread after 400 steps, starting bias long gone.
    torch.testing.assert_close(layer.running_mean, mean, atol=0.1 * std.max().item(), rtol=0)
    torch.testing.assert_close(layer.running_var, std**2, rtol=0.15, atol=0)
    layer.eval()
    y = layer(batches((2000, 4), 1, mean, std, seed=1)[0])
    torch.testing.assert_close(y.mean(0), torch.zeros(4), atol=0.1, rtol=0)
    torch.testing.assert_close(y.std(0), torch.ones(4), atol=0.1, rtol=0)


def test_adabn_reestimation_recovers_the_data_statistics():
    # AdaBN (Li et al. 2016): reset the statistics, average them cumulatively (momentum=None) over
    # forward passes in train mode on the new data. With the variance averaged (batchrenorm_var) it
    # must behave exactly as on nn.BatchNorm; the study's AdaBN (study/experiments/shift.py) writes
    # the statistics itself and serves both forms.
    brn = BatchRenorm(3, r_max=3.0, d_max=5.0, moving="var", warmup_steps=0)
    brn.set_progress(1, 1)
    bn = nn.BatchNorm2d(3)
    for x in batches((8, 3, 4, 4), 20, 0.0, 1.0):
        brn(x)
        bn(x)
    shifted = batches((8, 3, 4, 4), 10, [5.0, -1.0, 2.0], [2.0, 0.5, 3.0], seed=4)
    for layer in (brn, bn):
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
        with torch.no_grad():
            for x in shifted:
                layer(x)
        layer.eval()
    assert brn.num_batches_tracked.item() == len(shifted)
    data = torch.stack(shifted)  # (batches, N, C, H, W)
    batch_means = data.mean((1, 3, 4))
    batch_vars = data.var((1, 3, 4), correction=1)
    torch.testing.assert_close(brn.running_mean, batch_means.mean(0))
    torch.testing.assert_close(brn.running_var, batch_vars.mean(0))
    torch.testing.assert_close(brn.running_mean, bn.running_mean)
    torch.testing.assert_close(brn.running_var, bn.running_var)
    x = shifted[0]
    torch.testing.assert_close(brn(x), bn(x))


# --------------------------------------------------------------------------------------------------
# Algorithm 1 written independently, with plain loops over channels and values


def algorithm1(batches_, gamma, beta, r_max, d_max, alpha, eps, mu, sigma):
    """Ioffe 2017, Algorithm 1, for (N, C) batches as nested lists of floats: the training outputs
    of every step, then the moving μ and σ after the last step. r_max and d_max are per step."""
    outputs = []
    for x, r_limit, d_limit in batches_:
        n, channels = len(x), len(x[0])
        y = [[0.0] * channels for _ in range(n)]
        for c in range(channels):
            mean_b = sum(x[i][c] for i in range(n)) / n
            var_b = sum((x[i][c] - mean_b) ** 2 for i in range(n)) / n
            sigma_b = math.sqrt(var_b + eps)
            r = min(max(sigma_b / sigma[c], 1.0 / r_limit), r_limit)
            d = min(max((mean_b - mu[c]) / sigma[c], -d_limit), d_limit)
            for i in range(n):
                x_hat = (x[i][c] - mean_b) / sigma_b * r + d
                y[i][c] = gamma[c] * x_hat + beta[c]
            mu[c] += alpha * (mean_b - mu[c])
            sigma[c] += alpha * (sigma_b - sigma[c])
        outputs.append(y)
    return outputs, mu, sigma


def inference(x, gamma, beta, mu, sigma):
    """Algorithm 1's inference: y = γ (x − μ) / σ + β."""
    return [[gamma[c] * (v - mu[c]) / sigma[c] + beta[c] for c, v in enumerate(row)] for row in x]


def test_matches_algorithm_1_over_steps_and_in_inference():
    channels, alpha, eps = 3, 0.2, 1e-5
    layer = BatchRenorm(
        channels, r_max=3.0, d_max=5.0, warmup_steps=2, relax_end=0.5, momentum=alpha, eps=eps
    ).double()
    randomize_affine(layer)
    gamma, beta = layer.weight.tolist(), layer.bias.tolist()
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(8, channels, generator=g, dtype=torch.float64) * 2.5 + 1.5 for _ in range(8)]
    steps, limits = len(xs), []
    for step, x in enumerate(xs):
        layer.set_progress(step, steps)  # 2 plain steps, then the ramp over 3 of the other 6
        limits.append((layer.current_r_max, layer.current_d_max))
        out = layer(x)
        outputs, mu, sigma = algorithm1(
            [(xb.tolist(), *lim) for xb, lim in zip(xs[: step + 1], limits, strict=True)],
            gamma, beta, 3.0, 5.0, alpha, eps, [0.0] * channels, [math.sqrt(1 + eps)] * channels,
        )  # fmt: skip
        torch.testing.assert_close(out, torch.tensor(outputs[-1], dtype=torch.float64),
                                   atol=1e-10, rtol=0)  # fmt: skip
    assert limits[0] == limits[1] == (1.0, 0.0) and limits[-1] == (3.0, 5.0)
    torch.testing.assert_close(layer.running_mean, torch.tensor(mu, dtype=torch.float64),
                               atol=1e-10, rtol=0)  # fmt: skip
    torch.testing.assert_close(layer.moving_std(), torch.tensor(sigma, dtype=torch.float64),
                               atol=1e-10, rtol=0)  # fmt: skip
    layer.eval()
    x = torch.randn(5, channels, generator=g, dtype=torch.float64) * 3.0
    expected = torch.tensor(inference(x.tolist(), gamma, beta, mu, sigma), dtype=torch.float64)
    torch.testing.assert_close(layer(x), expected, atol=1e-10, rtol=0)


def test_averaging_the_variance_instead_of_sigma_changes_inference_at_small_batches():
    # 8 values per channel: E[σ_B] is below sqrt(E[var_unbiased]) (Jensen and the n/(n−1) factor),
    # so the variance form normalizes by a larger σ and its outputs differ by several percent.
    layers = {m: BatchRenorm(4, momentum=0.05, moving=m).double() for m in ("std", "var")}
    for x in batches((8, 4), 300, 0.0, 1.0):
        for layer in layers.values():
            layer(x.double())
    sigma = {m: layer.moving_std() for m, layer in layers.items()}
    ratio = (sigma["var"] / sigma["std"]).mean().item()
    assert 1.05 < ratio < 1.15
