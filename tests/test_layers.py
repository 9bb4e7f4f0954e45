"""Dropout, DropConnect, stochastic depth (study/components/layers.py)."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from study.components.layers import (
    BatchRenorm,
    DropConnectConv2d,
    DropConnectLinear,
    ResidualBlock,
    StochasticDepth,
    set_progress,
    stochastic_depth_rates,
)
from study.components.models import build_model

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"

# Statistical checks use a fixed seed and a tolerance of Z binomial standard deviations, so they are
# deterministic and would only fail for a real deviation from the configured rate.
Z = 5.0


def binomial_tol(n: int, p: float) -> float:
    """Tolerance on an observed fraction of n Bernoulli(p) trials."""
    return Z * math.sqrt(p * (1 - p) / n)


def small_resmlp(**overrides):
    cfg = OmegaConf.load(CONF / "resmlp.yaml")
    cfg.width = 16
    for key, value in overrides.items():
        cfg[key] = value
    return build_model(cfg, (1, 4, 4), 3)


# --------------------------------------------------------------------------------------------------
# Dropout (nn.Dropout, inverted: survivors scaled in training, identity at evaluation)


def test_dropout_is_wired_into_every_residual_branch():
    model = small_resmlp(dropout=0.3)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 3
    assert all(d.p == 0.3 for d in drops)
    for block in model.blocks:
        assert any(isinstance(m, nn.Dropout) for m in block.branch.modules())


@pytest.mark.parametrize("p", [0.3, 0.5, 0.75])
def test_dropout_rate_scaling_and_mean(p):
    torch.manual_seed(0)
    drop = small_resmlp(dropout=p).blocks[0].branch[5]
    assert isinstance(drop, nn.Dropout)
    n = 200_000
    x = torch.rand(n) + 0.5  # strictly positive, so a zero output is a dropped unit

    drop.eval()
    assert torch.equal(drop(x), x)

    drop.train()
    y = drop(x)
    zeroed = y == 0
    assert abs(zeroed.float().mean().item() - p) < binomial_tol(n, p)
    kept = ~zeroed
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)
    if p in (0.5, 0.75):  # 1/(1-p) is exact in binary
        assert torch.equal(y[kept], x[kept] * (1 / (1 - p)))
    # Mean activation preserved: the std of the output mean is sqrt(p/(1-p)) · rms(x) / sqrt(n).
    sd = math.sqrt(p / (1 - p)) * x.square().mean().sqrt().item() / math.sqrt(n)
    assert abs(y.mean().item() - x.mean().item()) < Z * sd


# --------------------------------------------------------------------------------------------------
# DropConnect (Wan et al. 2013)


def test_dropconnect_masks_weights_not_activations():
    torch.manual_seed(0)
    layer = DropConnectLinear(5, 4, p=0.5).train()
    torch.manual_seed(1)
    weight = layer.sample_weight()
    torch.manual_seed(1)
    y = layer(torch.eye(5))  # one-hot inputs: row i of the output is column i of the weight
    torch.testing.assert_close(y, weight.T + layer.bias)
    dropped = weight == 0
    assert dropped.any() and (~dropped).any()
    assert torch.equal(weight[~dropped], layer.weight[~dropped] * 2.0)  # 1/(1-p) = 2

    # One mask per forward for the whole batch: identical inputs give identical outputs, which a
    # mask on activations would not.
    x = torch.randn(1, 5).expand(8, 5)
    y = layer(x)
    torch.testing.assert_close(y, y[:1].expand_as(y))


def test_dropconnect_draws_a_fresh_mask_each_training_forward():
    torch.manual_seed(0)
    layer = DropConnectLinear(16, 16, p=0.5).train()
    x = torch.randn(4, 16)
    assert not torch.equal(layer(x), layer(x))
    n = 200 * 300
    big = DropConnectLinear(200, 300, p=0.3)
    frac = (big.sample_weight() == 0).float().mean().item()
    assert abs(frac - 0.3) < binomial_tol(n, 0.3)


def test_dropconnect_eval_is_the_plain_linear_layer():
    torch.manual_seed(0)
    layer = DropConnectLinear(6, 3, p=0.5).eval()
    x = torch.randn(10, 6)
    y = layer(x)
    assert torch.equal(y, layer(x))
    assert torch.equal(y, F.linear(x, layer.weight, layer.bias))
    plain = DropConnectLinear(6, 3, p=0.0).train()
    assert torch.equal(plain(x), F.linear(x, plain.weight, plain.bias))


def test_dropconnect_is_unbiased_over_many_draws():
    torch.manual_seed(0)
    p, draws = 0.4, 4000
    layer = DropConnectLinear(4, 3, p=p).train()
    x = torch.randn(2, 4)
    with torch.no_grad():
        weights = torch.stack([layer.sample_weight() for _ in range(draws)])
        outputs = torch.stack([layer(x) for _ in range(draws)])
    # Each sampled weight is w·B/(1-p), B ~ Bernoulli(1-p): mean w, std |w|·sqrt(p/(1-p)).
    sd_w = layer.weight.abs() * math.sqrt(p / (1 - p)) / math.sqrt(draws)
    assert ((weights.mean(0) - layer.weight).abs() <= Z * sd_w + 1e-7).all()
    plain = F.linear(x, layer.weight, layer.bias)
    sd_y = outputs.std(0) / math.sqrt(draws)
    assert ((outputs.mean(0) - plain).abs() <= Z * sd_y).all()


def test_dropconnect_conv_masks_the_kernel():
    torch.manual_seed(0)
    conv = DropConnectConv2d(3, 4, 3, padding=1, p=0.5)
    x = torch.randn(2, 3, 6, 6)
    conv.eval()
    assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))
    conv.train()
    torch.manual_seed(3)
    weight = conv.sample_weight()
    torch.manual_seed(3)
    y = conv(x)
    torch.testing.assert_close(y, F.conv2d(x, weight, conv.bias, padding=1))
    assert (weight == 0).any()


def test_drop_probabilities_are_validated():
    with pytest.raises(ValueError, match="DropConnect"):
        DropConnectLinear(2, 2, p=1.0)
    with pytest.raises(ValueError, match="stochastic depth"):
        StochasticDepth(-0.1)


# --------------------------------------------------------------------------------------------------
# Stochastic depth (Huang et al. 2016)


def test_linear_decay_rates():
    assert stochastic_depth_rates(0.5, 4) == [0.125, 0.25, 0.375, 0.5]
    assert stochastic_depth_rates(0.5, 1) == [0.5]
    assert stochastic_depth_rates(0.0, 3) == [0.0, 0.0, 0.0]
    assert stochastic_depth_rates(0.5, 0) == []


def test_models_use_the_linear_decay_over_all_blocks():
    assert [b.drop_path.p for b in small_resmlp(stochastic_depth=0.6).blocks] == (
        stochastic_depth_rates(0.6, 3)
    )
    cfg = OmegaConf.load(CONF / "resnet.yaml")
    cfg.width, cfg.stochastic_depth = 4, 0.5
    resnet = build_model(cfg, (3, 8, 8), 10)
    assert [b.drop_path.p for b in resnet.blocks] == stochastic_depth_rates(0.5, 3 * cfg.blocks)


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_stochastic_depth_drops_whole_samples(p):
    torch.manual_seed(0)
    n = 20_000
    x = torch.rand(n, 3, 2, 2) + 0.5
    layer = StochasticDepth(p).train()
    y = layer(x)
    dropped = (y == 0).flatten(1)
    assert (dropped.all(1) | ~dropped.any(1)).all()  # a sample is dropped entirely or not at all
    rows = dropped.all(1)
    assert abs(rows.float().mean().item() - p) < binomial_tol(n, p)
    assert torch.equal(y[~rows], x[~rows] * (1 / (1 - p)))  # 1/(1-p) exact for these p
    assert torch.equal(layer.eval()(x), x)


def test_stochastic_depth_rates_per_block_in_training():
    torch.manual_seed(0)
    model = small_resmlp(stochastic_depth=0.6).train()
    n = 6000
    counts = {}

    def count(index):
        def hook(module, inputs, output):
            branch_out = inputs[0]
            zero_rows = (output == 0).all(1) & (branch_out != 0).any(1)
            kept = ~zero_rows
            # survivors: the whole branch output scaled by 1/(1-p)
            torch.testing.assert_close(output[kept], branch_out[kept] / (1 - module.p))
            counts[index] = zero_rows.sum().item()

        return hook

    for index, block in enumerate(model.blocks):
        block.drop_path.register_forward_hook(count(index))
    with torch.no_grad():
        model(torch.randn(n, 1, 4, 4))
    for index, rate in enumerate(stochastic_depth_rates(0.6, 3)):
        assert abs(counts[index] / n - rate) < binomial_tol(n, rate), (index, counts[index])


def test_residual_block_eval_uses_every_branch():
    torch.manual_seed(0)
    model = small_resmlp(stochastic_depth=0.9, dropout=0.5, dropconnect=0.5).eval()
    x = torch.randn(8, 1, 4, 4)
    y = model(x)
    assert torch.equal(y, model(x))
    h = model.stem(x)
    for block in model.blocks:
        h = h + block.branch(h)
    torch.testing.assert_close(y, model.head(h), rtol=0, atol=0)


def test_dropped_block_passes_the_shortcut_through():
    torch.manual_seed(0)
    block = ResidualBlock(nn.Linear(3, 3), drop_path=StochasticDepth(0.5)).train()
    x = torch.randn(4000, 3)
    y = block(x)
    passed = (y == x).all(1)
    assert abs(passed.float().mean().item() - 0.5) < binomial_tol(4000, 0.5)


def test_set_progress_reaches_nested_layers():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(BatchRenorm(4, r_max=3.0, d_max=5.0)))
    set_progress(model, 999, 1000)  # past the 459 warm-up steps and the ramp
    assert model[1][0].current_r_max == 3.0
    assert model[1][0].current_d_max == 5.0
