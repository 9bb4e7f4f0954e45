"""The study's models built from the real configs in conf/model/ (study/components/models.py)."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from study.components.layers import (
    BatchRenorm,
    DropConnectConv2d,
    DropConnectLinear,
    set_progress,
)
from study.components.models import MODELS, build_model
from study.components.norms import NORMS
from study.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
SHAPES = [(1, 28, 28), (3, 32, 32)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(model: str, **overrides):
    cfg = OmegaConf.load(CONF / f"{model}.yaml")
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def test_config_files_match_the_registry():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(MODELS)
    for name in MODELS:
        assert load(name).name == name


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("in_shape", SHAPES)
def test_every_norm_builds_and_trains(name, norm, in_shape):
    torch.manual_seed(0)
    # The ResNet's width is reduced to keep the sweep fast on CPU; the default width runs below.
    overrides = {"norm": norm, "width": 8} if name == "resnet" else {"norm": norm}
    model = build_model(load(name, **overrides), in_shape, 10)
    x = torch.randn(4, *in_shape)
    model.train()
    set_progress(model, 1000, 1000)  # fully relaxed Batch Renorm
    out = model(x)
    assert out.shape == (4, 10)
    nn.functional.cross_entropy(out, torch.arange(4)).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname
    model.eval()
    with torch.no_grad():
        y = model(x)
        assert y.shape == (4, 10)
        assert torch.equal(y, model(x))


@pytest.mark.parametrize("in_shape", SHAPES)
def test_default_resnet_forward(in_shape):
    torch.manual_seed(0)
    model = build_model(load("resnet"), in_shape, 10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *in_shape)).shape == (2, 10)
    assert model.fc.in_features == 4 * 32


def test_default_resmlp_parameter_count():
    model = build_model(load("resmlp"), (1, 28, 28), 10)
    n_params = sum(p.numel() for p in model.parameters())
    width, blocks = 256, 3
    expected = (784 * width + width) + blocks * 2 * (width * width + width) + (width * 10 + 10)
    print(f"default resmlp: {n_params} parameters")
    assert n_params == expected == 598_282


def test_regularizers_are_deterministic_in_eval():
    torch.manual_seed(0)
    regularized = {"dropout": 0.5, "dropconnect": 0.5, "stochastic_depth": 0.5}
    for name, extra in (("resmlp", {}), ("resnet", {"width": 4})):
        model = build_model(load(name, **regularized, **extra), (3, 32, 32), 10)
        x = torch.randn(3, 3, 32, 32)
        model.eval()
        with torch.no_grad():
            assert torch.equal(model(x), model(x))
        model.train()
        with torch.no_grad():
            assert not torch.equal(model(x), model(x))


def test_config_reaches_the_layers():
    cfg = load("resmlp", dropconnect=0.25, dropout=0.1, norm="batchrenorm")
    model = build_model(cfg, (1, 28, 28), 10)
    linears = [m for m in model.modules() if isinstance(m, DropConnectLinear)]
    assert len(linears) == 2 * cfg.blocks and all(m.p == 0.25 for m in linears)
    renorms = [m for m in model.modules() if isinstance(m, BatchRenorm)]
    assert len(renorms) == 2 * cfg.blocks + 1
    for m in renorms:
        assert (m.r_max, m.d_max, m.warmup_steps, m.relax_end, m.momentum) == (
            3.0,
            5.0,
            459,
            0.5,
            0.01,
        )
    # 459 plain BatchNorm steps, then the ramp over half of the remaining 541 steps: done at 730.
    set_progress(model, 730, 1000)
    assert all(m.current_r_max == 3.0 and m.current_d_max == 5.0 for m in renorms)

    resnet = build_model(load("resnet", dropconnect=0.25), (3, 32, 32), 10)
    convs = [m for m in resnet.modules() if isinstance(m, DropConnectConv2d)]
    assert len(convs) == 2 * 3 * 2 and all(m.p == 0.25 for m in convs)
    # BatchNorm keeps torch's momentum; the renorm block's momentum is Batch Renorm's own.
    assert all(m.momentum == 0.1 for m in resnet.modules() if isinstance(m, nn.BatchNorm2d))


def test_resnet_channels_last_matches_contiguous():
    torch.manual_seed(0)
    model = build_model(load("resnet", width=8), (3, 32, 32), 10)
    x = torch.randn(3, 3, 32, 32)
    model.train()
    model(x)  # move the running statistics away from their initial values
    model.eval()
    with torch.no_grad():
        y = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        y_cl = model_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y_cl, y, atol=1e-5, rtol=1e-4)


def test_plain_dict_config():
    cfg = OmegaConf.to_container(load("resmlp", width=8, blocks=1))
    assert isinstance(cfg, dict)
    assert build_model(cfg, (1, 28, 28), 10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_unknown_names_are_reported():
    with pytest.raises(ValueError, match="'transformer'") as info:
        build_model(load("resmlp", name="transformer"), (1, 28, 28), 10)
    assert "resmlp" in str(info.value) and "resnet" in str(info.value)
    with pytest.raises(ValueError, match="'weightnorm'"):
        build_model(load("resnet", norm="weightnorm"), (3, 32, 32), 10)


def test_unknown_model_is_one_line_listing_the_valid_names():
    with pytest.raises(ConfigError) as error:
        build_model(load("resmlp", name="transformer"), (1, 28, 28), 10)
    assert str(error.value) == (
        "model.name='transformer' is an unknown model; use one of resmlp, resnet"
    )


def test_only_the_convolutional_network_runs_channels_last():
    assert {name: MODELS.get(name).channels_last for name in MODELS} == {
        "resmlp": False,
        "resnet": True,
    }
