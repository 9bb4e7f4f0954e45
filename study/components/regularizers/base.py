"""The :data:`REGULARIZERS` registry: what an entry declares, and how the rest of the study asks it.

A regularizer acts in exactly one place, and its entry says which by the hook it supplies:

- on the **loss**: ``penalty(weights, strength)`` is a term added to the training objective, over
  the model's weights (:func:`weights`); the training loop adds :func:`penalty` of the run's
  :func:`loss_penalties`;
- **inside the network**, at one of the three places a pre-activation residual branch offers
  (study/components/models.py asks :class:`InNetwork` for the layers there and never names a
  technique):

  - ``activations(strength)``: a layer on the branch's hidden activations, between its two weight
    layers (where Wide ResNets put dropout);
  - ``weight_layer(strength, layer, *args, **kwargs)``: builds each of the branch's weight layers
    in place of ``layer(*args, **kwargs)`` (``nn.Linear`` or ``nn.Conv2d``), as DropConnect does;
  - ``branch(strength, block, n_blocks)``: a layer on the branch's output, for residual block
    ``block`` of the network's ``n_blocks`` (counted from 0 over the whole network), as stochastic
    depth does.

An in-network regularizer's strength is a key of the model config (``model.<name>``), because the
model builders read ``cfg.model`` only. Every in-network entry is placed whatever its strength; at
0 its layer is the identity and draws no random numbers, so a network's modules, state dict and
random draws do not depend on which regularizers are switched on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf
from torch import nn

from study.components.checks import Rule, check_rules
from study.registry import Registry

HOOKS = ("penalty", "activations", "weight_layer", "branch")
"""The places a regularizer can act: the loss, then the three places of a residual branch."""


@dataclass(frozen=True)
class RegularizerSpec:
    """``key``: the config key of its strength; ``rule``: its check; and exactly one hook of
    :data:`HOOKS` (see the module docstring for what each receives and returns)."""

    key: str
    rule: Rule
    penalty: Callable[[list[nn.Parameter], float], torch.Tensor] | None = None
    activations: Callable[[float], nn.Module] | None = None
    weight_layer: Callable[..., nn.Module] | None = None
    branch: Callable[[float, int, int], nn.Module] | None = None

    def __post_init__(self) -> None:
        hooks = [h for h in HOOKS if getattr(self, h) is not None]
        if len(hooks) != 1:
            raise ValueError(f"regularizer {self.key}: give exactly one of {HOOKS}, got {hooks}")
        if self.in_model and not self.key.startswith("model."):
            raise ValueError(
                f"regularizer {self.key}: an in-network strength is a model config key (model.*)"
            )

    @property
    def in_model(self) -> bool:
        """Whether it acts inside the network rather than on the loss."""
        return self.penalty is None


REGULARIZERS: Registry[RegularizerSpec] = Registry("regularizer", "regularizer")
"""Regularizer name → :class:`RegularizerSpec`; each module of this package registers its own."""


def validate_config(cfg) -> None:
    """Check every regularizer's strength."""
    check_rules(cfg, {spec.key: spec.rule for _, spec in REGULARIZERS.items()})


# --------------------------------------------------------------------------------------------------
# Inside the network


def model_regularizers(cfg_model) -> dict[str, float]:
    """The strengths of the in-network regularizers, by name, from the ``model`` config."""
    return {
        name: float(cfg_model[spec.key.partition(".")[2]])
        for name, spec in REGULARIZERS.items()
        if spec.in_model
    }


def _chain(layers: list[nn.Module]) -> nn.Module:
    if not layers:
        return nn.Identity()
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class InNetwork:
    """The layers a residual network places for the in-network regularizers of one model config.

    Entries that act at the same place are chained in name order."""

    def __init__(self, strengths: dict[str, float]):
        self.strengths = strengths

    def _hooks(self, place: str) -> list[tuple[Callable, float]]:
        return [
            (getattr(spec, place), self.strengths[name])
            for name, spec in REGULARIZERS.items()
            if getattr(spec, place) is not None
        ]

    def activations(self) -> nn.Module:
        """The layer on a branch's hidden activations."""
        return _chain([hook(strength) for hook, strength in self._hooks("activations")])

    def weight_layer(self, layer: type[nn.Module], *args, **kwargs) -> nn.Module:
        """A branch's weight layer: ``layer(*args, **kwargs)`` as the regularizer builds it."""
        hooks = self._hooks("weight_layer")
        if len(hooks) > 1:
            raise ValueError("two regularizers build the branch's weight layers; keep one")
        if not hooks:
            return layer(*args, **kwargs)
        hook, strength = hooks[0]
        return hook(strength, layer, *args, **kwargs)

    def branch(self, block: int, n_blocks: int) -> nn.Module:
        """The layer on the output of residual block ``block`` of ``n_blocks``."""
        return _chain([hook(s, block, n_blocks) for hook, s in self._hooks("branch")])


def in_network(cfg_model) -> InNetwork:
    """What the model builders ask for the regularizers of ``cfg_model``."""
    return InNetwork(model_regularizers(cfg_model))


# --------------------------------------------------------------------------------------------------
# On the loss


def weights(model: nn.Module) -> list[nn.Parameter]:
    """The model's weights: parameters with ``ndim >= 2`` (Linear and Conv weights)."""
    return [p for p in model.parameters() if p.ndim >= 2]


def loss_penalties(cfg) -> dict[str, float]:
    """The loss penalties a run config switches on (strength not 0), by name."""
    strengths = {
        name: float(OmegaConf.select(cfg, spec.key))
        for name, spec in REGULARIZERS.items()
        if not spec.in_model
    }
    return {name: strength for name, strength in strengths.items() if strength != 0}


def penalty(model: nn.Module, **strengths: float) -> torch.Tensor:
    """The sum of the named loss penalties' terms at the given strengths (``penalty(model,
    l1=..., l2=...)``), over :func:`weights` (biases and norm parameters excluded), in name order.

    Returns a 0-dim zero without touching the parameters when every strength is 0, so the
    training loop can add it unconditionally.
    """
    specs = {name: REGULARIZERS.get(name) for name in strengths}
    unknown = [name for name, spec in specs.items() if spec.penalty is None]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a loss penalty")
    ws = weights(model)
    total = torch.zeros((), device=ws[0].device if ws else None)
    if not ws:
        return total
    for name in sorted(strengths):
        if strengths[name] != 0:
            total = total + specs[name].penalty(ws, float(strengths[name]))
    return total
