"""Optimizers and their weight decay, one :data:`OPTIMIZERS` entry per ``conf/optim/*.yaml``.

Two ways of shrinking the weights are studied and kept apart:

* ``regularization.{l1,l2}``: penalty terms added to the loss (study/components/regularizers.py).
  They are part of the objective, so every optimizer sees them through the gradient.
* ``optim.weight_decay``: the optimizer's own decay (:func:`build_optimizer`). For every optimizer
  except AdamW it is torch's coupled form (``wd·w`` added to the gradient, i.e. an L2 penalty of
  ``wd/2·Σw²``); for AdamW it is decoupled (Loshchilov & Hutter 2019), ``w ← w − lr·wd·w``,
  which adaptive methods do not rescale by their per-coordinate step size.

Both act on the *weights* only: the parameters with two or more dimensions (Linear and Conv
weights). Biases and normalization scales/shifts are excluded ("no bias decay", He et al. 2019):
they are few, and pulling them towards 0 constrains the fit without limiting the capacity that the
weight matrices carry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from study.components.regularizers import weights
from study.errors import ConfigError
from study.registry import Registry
from study.startup import avoid_compiler_import


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer: ``build(cfg_optim, model)``, its own config checks ``validate(cfg_optim)``
    beyond the ones every optimizer shares, and whether ``step`` needs a closure that re-evaluates
    the loss (line-search methods)."""

    build: Callable[[Mapping[str, Any], nn.Module], torch.optim.Optimizer]
    validate: Callable[[Mapping[str, Any]], None] | None = None
    needs_closure: bool = False


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer", "optim.name", OptimizerSpec)
"""Config name (``optim.name``) → :class:`OptimizerSpec`."""

__all__ = [
    "OPTIMIZERS",
    "OptimizerSpec",
    "build_optimizer",
    "validate_optim",
]


# --------------------------------------------------------------------------------------------
# Validation (also run at plan time, without a model)
# --------------------------------------------------------------------------------------------


def _get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = cfg.get(key, default)
    return default if value is None else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_lr(cfg: Mapping[str, Any]) -> None:
    lr = cfg.get("lr")
    if not (_is_number(lr) and math.isfinite(lr) and lr > 0):
        raise ConfigError(
            f"optim.lr must be a finite positive number, got {lr!r}: set optim.lr=<value>, "
            "e.g. optim.lr=0.1 for SGD or optim.lr=0.001 for Adam"
        )


def _check_range(cfg: Mapping[str, Any], key: str, low: float, high: float, closed_high=False):
    """``low <= value < high`` (``<= high`` with ``closed_high``); absent keys use the default."""
    if key not in cfg or cfg.get(key) is None:
        return
    value = cfg.get(key)
    ok = _is_number(value) and low <= value and (value <= high if closed_high else value < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ConfigError(
            f"optim.{key} must be a number in [{low:g}, {high:g}{bracket}, got {value!r}: "
            f"set optim.{key} to a value in that range"
        )


def _check_nonneg(cfg: Mapping[str, Any], key: str) -> None:
    if key not in cfg or cfg.get(key) is None:
        return
    value = cfg.get(key)
    if not (_is_number(value) and math.isfinite(value) and value >= 0):
        raise ConfigError(
            f"optim.{key} must be a finite number >= 0, got {value!r}: "
            f"set optim.{key}=0 to disable it or a small positive value"
        )


def _check_positive(cfg: Mapping[str, Any], key: str, integer: bool = False) -> None:
    if key not in cfg or cfg.get(key) is None:
        return
    value = cfg.get(key)
    ok = _is_number(value) and math.isfinite(value) and value > 0
    if integer:
        ok = ok and isinstance(value, int)
    if not ok:
        kind = "a positive integer" if integer else "a finite positive number"
        raise ConfigError(f"optim.{key} must be {kind}, got {value!r}: set optim.{key} accordingly")


def _check_betas(cfg: Mapping[str, Any]) -> None:
    if "betas" not in cfg or cfg.get("betas") is None:
        return
    betas = cfg.get("betas")
    try:
        pair = list(betas)
    except TypeError:
        pair = None
    if not (pair and len(pair) == 2 and all(_is_number(b) and 0 <= b < 1 for b in pair)):
        raise ConfigError(
            f"optim.betas must be two numbers in [0, 1), got {betas!r}: "
            "set optim.betas=[0.9,0.999] (Kingma & Ba 2015)"
        )


def validate_optim(cfg_optim: Mapping[str, Any]) -> None:
    """Check an ``optim`` config without a model; raises ``ConfigError`` with one clear message.

    The checks here hold for every optimizer (conf/optim/*.yaml share their keys); an entry's own
    ``validate`` adds the ones only it reads.
    """
    spec = OPTIMIZERS.get(cfg_optim.get("name"))
    _check_lr(cfg_optim)
    _check_nonneg(cfg_optim, "weight_decay")
    _check_range(cfg_optim, "momentum", 0.0, 1.0)
    _check_range(cfg_optim, "alpha", 0.0, 1.0)
    _check_betas(cfg_optim)
    _check_positive(cfg_optim, "eps")
    _check_positive(cfg_optim, "history_size", integer=True)
    _check_positive(cfg_optim, "max_iter", integer=True)
    _check_positive(cfg_optim, "max_eval", integer=True)
    nesterov = cfg_optim.get("nesterov")
    if nesterov is not None and not isinstance(nesterov, bool):
        raise ConfigError(f"optim.nesterov must be true or false, got {nesterov!r}")
    if nesterov and not _get(cfg_optim, "momentum", 0.0) > 0:
        raise ConfigError(
            "optim.nesterov=true needs optim.momentum > 0: set optim.momentum=0.9 "
            "or optim.nesterov=false"
        )
    if spec.validate is not None:
        spec.validate(cfg_optim)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed weights and the undecayed rest (biases, normalization parameters)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters to optimize")
    decayed_ids = {id(p) for p in weights(model)}
    decayed = [p for p in trainable if id(p) in decayed_ids]
    rest = [p for p in trainable if id(p) not in decayed_ids]
    groups = [
        {"params": decayed, "weight_decay": float(weight_decay)},
        {"params": rest, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def _sgd(cfg: Mapping[str, Any], model: nn.Module, defaults: Mapping[str, Any]):
    momentum = float(_get(cfg, "momentum", defaults.get("momentum", 0.0)))
    nesterov = bool(_get(cfg, "nesterov", defaults.get("nesterov", False)))
    return torch.optim.SGD(
        _param_groups(model, _get(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        momentum=momentum,
        nesterov=nesterov,
    )


@OPTIMIZERS.builder("sgd")
def _build_sgd(cfg, model):
    return _sgd(cfg, model, {"momentum": 0.0, "nesterov": False})


@OPTIMIZERS.builder("momentum")
def _build_momentum(cfg, model):
    # Heavy-ball momentum (Polyak 1964) as implemented by torch: v ← μv + g, w ← w − lr·v.
    return _sgd(cfg, model, {"momentum": 0.9, "nesterov": False})


@OPTIMIZERS.builder("nesterov")
def _build_nesterov(cfg, model):
    # Nesterov's accelerated gradient in the form of Sutskever et al. (2013).
    return _sgd(cfg, model, {"momentum": 0.9, "nesterov": True})


@OPTIMIZERS.builder("adagrad")
def _build_adagrad(cfg, model):
    # Duchi et al. (2011): per-coordinate step lr / sqrt(Σ g²).
    return torch.optim.Adagrad(
        _param_groups(model, _get(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        eps=float(_get(cfg, "eps", 1e-10)),
    )


@OPTIMIZERS.builder("rmsprop")
def _build_rmsprop(cfg, model):
    # Tieleman & Hinton (2012): divide by a running average of g² (decay alpha) instead of the sum.
    return torch.optim.RMSprop(
        _param_groups(model, _get(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        alpha=float(_get(cfg, "alpha", 0.99)),
        eps=float(_get(cfg, "eps", 1e-8)),
        momentum=float(_get(cfg, "momentum", 0.0)),
    )


def _betas(cfg) -> tuple[float, float]:
    b1, b2 = _get(cfg, "betas", (0.9, 0.999))
    return float(b1), float(b2)


@OPTIMIZERS.builder("adam")
def _build_adam(cfg, model):
    # Kingma & Ba (2015). weight_decay here is coupled: wd·w joins the gradient before the
    # division by sqrt(v), so weights with large gradients are barely decayed.
    return torch.optim.Adam(
        _param_groups(model, _get(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        betas=_betas(cfg),
        eps=float(_get(cfg, "eps", 1e-8)),
    )


@OPTIMIZERS.builder("adamw")
def _build_adamw(cfg, model):
    # Loshchilov & Hutter (2019): decoupled decay w ← w − lr·wd·w, applied outside Adam's
    # normalization. torch's AdamW defaults to weight_decay=0.01, so the value is always explicit.
    return torch.optim.AdamW(
        _param_groups(model, _get(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        betas=_betas(cfg),
        eps=float(_get(cfg, "eps", 1e-8)),
        weight_decay=0.0,
    )


class DecayedLBFGS(torch.optim.LBFGS):
    """L-BFGS (Liu & Nocedal 1989) with coupled weight decay on the weights only.

    torch's LBFGS supports a single parameter group and has no ``weight_decay``. The decay is
    therefore added inside the closure, to the loss *and* the gradient, so that the line search
    sees the same objective whose gradient it follows: ``f(w) + wd/2·Σ_weights w²``.
    """

    def __init__(self, params, decayed: Iterable[torch.Tensor], weight_decay: float, **kwargs):
        super().__init__(params, **kwargs)
        self.decayed = list(decayed)
        self.weight_decay = float(weight_decay)

    def step(self, closure: Callable[[], torch.Tensor]):  # type: ignore[override]
        if self.weight_decay == 0 or not self.decayed:
            return super().step(closure)
        wd, decayed = self.weight_decay, self.decayed

        def decayed_closure():
            loss = closure()
            with torch.no_grad():
                extra = (wd / 2) * sum(w.pow(2).sum() for w in decayed)
                for w in decayed:
                    if w.grad is None:
                        w.grad = wd * w.detach().clone()
                    else:
                        w.grad.add_(w, alpha=wd)
            return loss.detach() + extra

        return super().step(decayed_closure)


def _validate_lbfgs(cfg: Mapping[str, Any]) -> None:
    line_search = cfg.get("line_search")
    if line_search not in (None, "none", "strong_wolfe"):
        raise ConfigError(
            f"optim.line_search must be strong_wolfe or none, got {line_search!r}: "
            "set optim.line_search=strong_wolfe"
        )


# L-BFGS re-evaluates the loss during its line search, so its step takes a closure.
@OPTIMIZERS.builder("lbfgs", validate=_validate_lbfgs, needs_closure=True)
def _build_lbfgs(cfg, model):
    params = [p for p in model.parameters() if p.requires_grad]
    line_search = _get(cfg, "line_search", "strong_wolfe")
    decayed_ids = {id(p) for p in weights(model)}
    return DecayedLBFGS(
        params,
        decayed=[p for p in params if id(p) in decayed_ids],
        weight_decay=_get(cfg, "weight_decay", 0.0),
        lr=float(cfg["lr"]),
        history_size=int(_get(cfg, "history_size", 10)),
        max_iter=int(_get(cfg, "max_iter", 20)),
        # torch's default max_eval (max_iter·5/4) caps line-search evaluations per step().
        max_eval=cfg.get("max_eval"),
        line_search_fn=None if line_search == "none" else line_search,
    )


def build_optimizer(cfg_optim: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer named by ``cfg_optim.name`` for ``model`` after validating the config.

    Weight decay applies to :func:`weights` only: every optimizer but L-BFGS gets two parameter
    groups (decayed weights, undecayed rest). An entry with ``needs_closure`` (L-BFGS) steps with
    ``optimizer.step(closure)``.
    """
    validate_optim(cfg_optim)
    avoid_compiler_import()
    return OPTIMIZERS.get(cfg_optim["name"]).build(cfg_optim, model)


def validate_config(cfg) -> None:
    """Check the run config's ``optim`` group; any failure becomes one ConfigError line."""
    try:
        validate_optim(cfg["optim"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(str(err).strip().splitlines()[0]) from None
