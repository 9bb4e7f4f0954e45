"""Normalization layers by name (``model.norm``), one :data:`NORMS` entry per option.

Each entry builds the layer for ``num_features`` channels of an MLP (``dims=1``, features N×C) or a
CNN (``dims=2``, maps N×C×H×W), names the keyword options it takes, reads those options from the
model config, and declares the config keys they come from with their checks. The conf tree holds
every norm's keys whatever norm a run uses, so all of them are checked: a bad value is caught
before an ablation switches to the norm that reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from study.components.checks import (
    Rule,
    check_name,
    check_rules,
    int_at_least,
    optional_int_at_least,
    real_at_least,
    real_in,
)
from study.components.layers import BatchRenorm
from study.registry import Registry

__all__ = ["NORMS", "NormSpec", "make_norm", "norm_options", "validate_config"]


@dataclass(frozen=True)
class NormSpec:
    """``build(num_features, dims, **options)``; ``options``: the keywords it takes;
    ``from_config(cfg_model)``: those options as the model config sets them; ``rules``: checks of
    the config keys it reads; ``validate(cfg)``: checks across those keys."""

    build: Callable[..., nn.Module]
    options: frozenset[str] = frozenset()
    from_config: Callable[[Any], dict] = lambda cfg_model: {}
    rules: Mapping[str, Rule] = field(default_factory=dict)
    validate: Callable[[Any], None] | None = None


NORMS: Registry[NormSpec] = Registry("norm", "model.norm", NormSpec)
"""Config name (``model.norm``) → :class:`NormSpec`."""


@NORMS.builder("none")
def _none(num_features: int, dims: int) -> nn.Module:
    return nn.Identity()


@NORMS.builder(
    "batchnorm",
    options=frozenset({"momentum", "eps"}),
    from_config=lambda cfg_model: {"momentum": float(cfg_model["batchnorm"]["momentum"])},
    rules={"model.batchnorm.momentum": real_in(0.0, 1.0, high_open=False)},
)
def _batchnorm(num_features: int, dims: int, momentum: float | None = 0.1, eps: float = 1e-5):
    # The moving averages' momentum is a setting of the model config (model.batchnorm.momentum,
    # torch's 0.1 by default), so an ablation can set it equal to Batch Renorm's.
    cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return cls(num_features, eps=eps, momentum=momentum)


def _renorm_options(cfg_model) -> dict:
    # The renorm block, momentum included: Batch Renorm's own, not BatchNorm's 0.1.
    renorm = cfg_model["renorm"]
    return {key: renorm[key] for key in renorm}


_RENORM_OPTIONS = frozenset({"r_max", "d_max", "warmup_steps", "relax_end", "momentum", "eps"})
_RENORM_RULES = {
    "model.renorm.r_max": real_at_least(1.0),
    "model.renorm.d_max": real_at_least(0.0),
    "model.renorm.warmup_steps": optional_int_at_least(0),
    "model.renorm.relax_end": real_in(0.0, 1.0, high_open=False),
    "model.renorm.momentum": real_in(0.0, 1.0, high_open=False),
}


def _batchrenorm_with(moving: str):
    def build(num_features: int, dims: int, **options) -> BatchRenorm:
        return BatchRenorm(num_features, moving=moving, **options)

    return build


# Ioffe 2017 as written: moving averages of μ_B and σ_B, plain BatchNorm until they converge.
NORMS.register(
    "batchrenorm",
    NormSpec(_batchrenorm_with("std"), _RENORM_OPTIONS, _renorm_options, _RENORM_RULES),
)
# The same layer averaging the unbiased batch variance as nn.BatchNorm does (σ = sqrt(E[var])):
# kept to show what the choice of moving statistic changes at small batches.
NORMS.register(
    "batchrenorm_var",
    NormSpec(_batchrenorm_with("var"), _RENORM_OPTIONS, _renorm_options, _RENORM_RULES),
)


def _groups_dividing(num_features: int, groups: int) -> int:
    """The largest number of groups <= ``groups`` that divides ``num_features`` (GroupNorm needs
    equal groups; a width such as 10 with groups=8 falls back to 5)."""
    for g in range(min(groups, num_features), 0, -1):
        if num_features % g == 0:
            return g
    return 1


@NORMS.builder(
    "groupnorm",
    options=frozenset({"groups", "eps"}),
    from_config=lambda cfg_model: {"groups": int(cfg_model["groups"])},
    rules={"model.groups": int_at_least(1)},
)
def _groupnorm(num_features: int, dims: int, groups: int = 8, eps: float = 1e-5):
    # Wu & He 2018. On (N, C) features GroupNorm normalizes each sample over its channel groups.
    return nn.GroupNorm(_groups_dividing(num_features, int(groups)), num_features, eps=eps)


@NORMS.builder("layernorm", options=frozenset({"eps"}))
def _layernorm(num_features: int, dims: int, eps: float = 1e-5):
    # Ba et al. 2016: per-sample statistics over all features. For images that is C, H and W,
    # which GroupNorm with one group computes (with a per-channel affine, as in Wu & He 2018).
    if dims == 1:
        return nn.LayerNorm(num_features, eps=eps)
    return nn.GroupNorm(1, num_features, eps=eps)


def make_norm(name: str, num_features: int, dims: int, **options) -> nn.Module:
    """Build the normalization ``name`` for ``num_features`` channels.

    ``dims=1``: features (N, C) of an MLP; ``dims=2``: feature maps (N, C, H, W) of a CNN.
    Options: ``groups`` (groupnorm), ``momentum`` and ``eps`` (batch statistics),
    ``r_max``, ``d_max``, ``warmup_steps``, ``relax_end`` (batchrenorm, batchrenorm_var). Options
    meant for another norm are ignored, so a caller can hand over every option; unknown option
    names raise ``TypeError``.
    """
    spec = NORMS.get(name)
    if dims not in (1, 2):
        raise ValueError(f"norm dims must be 1 (N, C) or 2 (N, C, H, W), got {dims!r}")
    known = set().union(*(entry.options for _, entry in NORMS.items()))
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown norm option(s) {unknown}; valid options: {sorted(known)}")
    taken = {k: v for k, v in options.items() if k in spec.options}
    return spec.build(num_features, dims, **taken)


def norm_options(cfg_model) -> dict:
    """The options of the model config's norm, as :func:`make_norm` takes them."""
    return NORMS.get(cfg_model["norm"]).from_config(cfg_model)


# The settings of a built layer that more than one norm may use; a norm's own options (r_max,
# groups) are its own and never compared.
SHARED_SETTINGS = ("momentum", "eps")


def effective_settings(cfg_model) -> dict[str, object]:
    """The shared settings (:data:`SHARED_SETTINGS`) the model config's norm actually uses, read
    from the layer it builds: a default of the layer counts as much as a key of the config (a
    running average's momentum that one norm sets and another inherits from torch)."""
    layer = make_norm(cfg_model["norm"], 4, 1, **norm_options(cfg_model))
    return {k: getattr(layer, k) for k in SHARED_SETTINGS if hasattr(layer, k)}


def validate_config(cfg) -> None:
    """Check ``model.norm`` and the keys every norm reads."""
    check_name(cfg, NORMS)
    for _, spec in NORMS.items():
        check_rules(cfg, spec.rules)
    for _, spec in NORMS.items():
        if spec.validate is not None:
            spec.validate(cfg)
