"""The regularizers the study compares, one :data:`REGULARIZERS` entry each, and the penalties.

An entry names the config key that sets its strength, how that value is checked, and where it
acts: inside the network (``model.dropout``, ``model.dropconnect``, ``model.stochastic_depth``,
which the models place in each residual branch, see study/components/models.py) or on the loss
(``regularization.l1``, ``regularization.l2``, the terms :func:`penalty` adds).

Penalties act on the *weights* only: the parameters with two or more dimensions (Linear and Conv
weights). Biases and normalization scales/shifts are excluded ("no bias decay", He et al. 2019):
they are few, and pulling them towards 0 constrains the fit without limiting the capacity that the
weight matrices carry. The optimizers' weight decay uses the same split (study/components/
optimizers.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from study.components.checks import Rule, check_rules, real_at_least, real_in
from study.registry import Registry

__all__ = [
    "REGULARIZERS",
    "RegularizerSpec",
    "model_regularizers",
    "penalty",
    "validate_config",
    "weights",
]


@dataclass(frozen=True)
class RegularizerSpec:
    """``key``: the config key of its strength; ``rule``: its check; ``in_model``: a layer of the
    network (the model builders receive it by name) rather than a term of the loss."""

    key: str
    rule: Rule
    in_model: bool


REGULARIZERS: Registry[RegularizerSpec] = Registry("regularizer", "regularizer")
"""Regularizer name → :class:`RegularizerSpec`."""

# A drop probability of 1 would remove the layer's whole output, so it is excluded.
DROP_PROBABILITY = real_in(0.0, 1.0)
for _name in ("dropout", "dropconnect", "stochastic_depth"):
    REGULARIZERS.register(_name, RegularizerSpec(f"model.{_name}", DROP_PROBABILITY, True))
for _name in ("l1", "l2"):
    REGULARIZERS.register(
        _name, RegularizerSpec(f"regularization.{_name}", real_at_least(0.0), False)
    )


def model_regularizers(cfg_model) -> dict[str, float]:
    """The strengths of the in-network regularizers, by name, from the ``model`` config."""
    return {
        name: float(cfg_model[spec.key.partition(".")[2]])
        for name, spec in REGULARIZERS.items()
        if spec.in_model
    }


def validate_config(cfg) -> None:
    """Check every regularizer's strength."""
    check_rules(cfg, {spec.key: spec.rule for _, spec in REGULARIZERS.items()})


def weights(model: nn.Module) -> list[nn.Parameter]:
    """The model's weights: parameters with ``ndim >= 2`` (Linear and Conv weights)."""
    return [p for p in model.parameters() if p.ndim >= 2]


def penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor:
    """``l2/2 · Σ w² + l1 · Σ |w|`` over :func:`weights` (biases and norm parameters excluded).

    Returns a 0-dim zero without touching the parameters when both coefficients are 0, so the
    training loop can add it unconditionally.
    """
    ws = weights(model)
    device = ws[0].device if ws else None
    total = torch.zeros((), device=device)
    if not ws or (l1 == 0 and l2 == 0):
        return total
    if l2 != 0:
        total = total + (l2 / 2) * sum(w.pow(2).sum() for w in ws)
    if l1 != 0:
        total = total + l1 * sum(w.abs().sum() for w in ws)
    return total
