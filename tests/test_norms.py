"""The normalization registry (study/components/norms.py)."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from study.components.layers import BatchRenorm
from study.components.norms import NORMS, make_norm, validate_config
from study.errors import ConfigError


@pytest.mark.parametrize("name", sorted(NORMS))
def test_every_norm_builds_and_preserves_shape(name):
    torch.manual_seed(0)
    for dims, shape in ((1, (6, 16)), (2, (4, 16, 5, 5))):
        norm = make_norm(name, 16, dims, groups=4)
        x = torch.randn(shape)
        norm.train()
        assert norm(x).shape == x.shape
        norm.eval()
        assert norm(x).shape == x.shape


def test_norm_types_follow_dims():
    assert isinstance(make_norm("none", 8, 1), nn.Identity)
    assert isinstance(make_norm("batchnorm", 8, 1), nn.BatchNorm1d)
    assert isinstance(make_norm("batchnorm", 8, 2), nn.BatchNorm2d)
    assert isinstance(make_norm("batchrenorm", 8, 2), BatchRenorm)
    assert isinstance(make_norm("layernorm", 8, 1), nn.LayerNorm)
    assert make_norm("groupnorm", 16, 2, groups=4).num_groups == 4


def test_layernorm_on_images_normalizes_each_sample_over_c_h_w():
    torch.manual_seed(0)
    x = torch.randn(3, 8, 5, 5) * torch.tensor([1.0, 5.0, 0.2]).view(3, 1, 1, 1) + 7.0
    y = make_norm("layernorm", 8, 2)(x)
    flat = y.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.var(1, correction=0), torch.ones(3), atol=1e-3, rtol=0)


def test_groupnorm_falls_back_to_a_divisor_of_the_channels():
    assert make_norm("groupnorm", 10, 2, groups=8).num_groups == 5
    assert make_norm("groupnorm", 7, 1, groups=8).num_groups == 7
    assert make_norm("groupnorm", 3, 2, groups=2).num_groups == 1


def test_unknown_norm_names_the_value_and_the_valid_names():
    with pytest.raises(ValueError, match="'weightnorm'") as info:
        make_norm("weightnorm", 8, 1)
    for name in NORMS:
        assert name in str(info.value)


def test_make_norm_rejects_bad_dims_and_unknown_options():
    with pytest.raises(ValueError, match="dims"):
        make_norm("batchnorm", 8, 3)
    with pytest.raises(TypeError, match="grups"):
        make_norm("groupnorm", 8, 2, grups=4)


def test_make_norm_passes_each_norm_its_own_options():
    # The whole model config can be handed over: options of other norms are ignored.
    assert isinstance(make_norm("none", 8, 1, groups=4, r_max=2.0), nn.Identity)
    bn = make_norm("batchnorm", 8, 2, groups=4, momentum=0.2)
    assert bn.momentum == 0.2
    brn = make_norm(
        "batchrenorm", 8, 2, r_max=2.0, d_max=1.0, warmup_steps=7, relax_end=0.3, momentum=0.05
    )
    assert (brn.r_max, brn.d_max, brn.warmup_steps, brn.relax_end, brn.momentum) == (
        2.0,
        1.0,
        7,
        0.3,
        0.05,
    )
    assert brn.moving == "std"
    assert make_norm("batchrenorm_var", 8, 1).moving == "var"


def test_unknown_norm_is_one_line_listing_the_valid_names():
    with pytest.raises(ConfigError) as error:
        make_norm("weightnorm", 8, 1)
    assert str(error.value) == (
        "model.norm='weightnorm' is an unknown norm; "
        "use one of batchnorm, batchrenorm, batchrenorm_var, groupnorm, layernorm, none"
    )


def config(**model):
    renorm = {"r_max": 3.0, "d_max": 5.0, "warmup_steps": None, "relax_end": 0.5, "momentum": 0.01}
    base = {"norm": "none", "groups": 8, "batchnorm": {"momentum": 0.1}, "renorm": renorm}
    return OmegaConf.create({"model": OmegaConf.merge(base, model)})


def test_every_norm_checks_its_keys_whatever_norm_the_run_uses():
    validate_config(config())
    with pytest.raises(
        ConfigError, match=r"^model\.groups=0 is invalid; it must be an integer >= 1$"
    ):
        validate_config(config(groups=0))
    with pytest.raises(ConfigError, match=r"model\.renorm\.warmup_steps=0\.6 is invalid"):
        validate_config(config(renorm={"warmup_steps": 0.6}))
    with pytest.raises(ConfigError, match=r"model\.batchnorm\.momentum=1\.5 is invalid"):
        validate_config(config(batchnorm={"momentum": 1.5}))
    with pytest.raises(
        ConfigError, match=r"^model\.norm='weightnorm' is unknown; use one of batchnorm"
    ):
        validate_config(config(norm="weightnorm"))


def test_batchnorm_takes_its_moving_average_momentum_from_the_model_config():
    from study.components.norms import effective_settings, norm_options

    cfg = config(norm="batchnorm", batchnorm={"momentum": 0.01})
    assert norm_options(cfg.model) == {"momentum": 0.01}
    assert effective_settings(cfg.model) == {"momentum": 0.01, "eps": 1e-5}
    renorm = effective_settings(config(norm="batchrenorm").model)
    assert renorm["momentum"] == 0.01  # Batch Renorm's own block
    assert effective_settings(config(norm="none").model) == {}
