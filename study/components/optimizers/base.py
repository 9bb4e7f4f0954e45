"""What every optimizer entry shares: :class:`OptimizerSpec`, the registry, the config checks
that hold for all of them, the weight-decay parameter groups and :func:`build_optimizer`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from study.components.regularizers import weights
from study.errors import ConfigError
from study.registry import Registry
from study.startup import avoid_compiler_import

ModeSwitch = Callable[[torch.optim.Optimizer], None]


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer: ``build(cfg_optim, model)``, its own config checks ``validate(cfg_optim)``
    beyond the ones every optimizer shares, and what the training loop must do for it.

    * ``needs_closure``: ``step`` takes a closure that re-evaluates the loss (line searches).
    * ``train_mode`` / ``eval_mode``: called with the optimizer before each training epoch and
      before each evaluation, for optimizers whose evaluated weights are not the ones the gradient
      is taken at (schedule-free: an average of the iterates).
    * ``constant_schedule``: the optimizer replaces the learning-rate decay (schedule-free), so
      only ``schedule=constant`` is accepted; its warmup is still applied.
    """

    build: Callable[[Mapping[str, Any], nn.Module], torch.optim.Optimizer]
    validate: Callable[[Mapping[str, Any]], None] | None = None
    needs_closure: bool = False
    train_mode: ModeSwitch | None = None
    eval_mode: ModeSwitch | None = None
    constant_schedule: bool = False


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer", "optim.name", OptimizerSpec)
"""Config name (``optim.name``) → :class:`OptimizerSpec`."""


# --------------------------------------------------------------------------------------------
# Validation (also run at plan time, without a model)
# --------------------------------------------------------------------------------------------


def option(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = cfg.get(key, default)
    return default if value is None else value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_lr(cfg: Mapping[str, Any]) -> None:
    lr = cfg.get("lr")
    if not (is_number(lr) and math.isfinite(lr) and lr > 0):
        raise ConfigError(
            f"optim.lr must be a finite positive number, got {lr!r}: set optim.lr=<value>, "
            "e.g. optim.lr=0.1 for SGD or optim.lr=0.001 for Adam"
        )


def check_range(cfg: Mapping[str, Any], key: str, low: float, high: float, closed_high=False):
    """``low <= value < high`` (``<= high`` with ``closed_high``); absent keys use the default."""
    if key not in cfg or cfg.get(key) is None:
        return
    value = cfg.get(key)
    ok = is_number(value) and low <= value and (value <= high if closed_high else value < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ConfigError(
            f"optim.{key} must be a number in [{low:g}, {high:g}{bracket}, got {value!r}: "
            f"set optim.{key} to a value in that range"
        )


def check_nonneg(cfg: Mapping[str, Any], key: str) -> None:
    if key not in cfg or cfg.get(key) is None:
        return
    value = cfg.get(key)
    if not (is_number(value) and math.isfinite(value) and value >= 0):
        raise ConfigError(
            f"optim.{key} must be a finite number >= 0, got {value!r}: "
            f"set optim.{key}=0 to disable it or a small positive value"
        )


def check_positive(cfg: Mapping[str, Any], key: str, integer: bool = False) -> None:
    if key not in cfg or cfg.get(key) is None:
        return
    value = cfg.get(key)
    ok = is_number(value) and math.isfinite(value) and value > 0
    if integer:
        ok = ok and isinstance(value, int)
    if not ok:
        kind = "a positive integer" if integer else "a finite positive number"
        raise ConfigError(f"optim.{key} must be {kind}, got {value!r}: set optim.{key} accordingly")


def check_choice(cfg: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> None:
    """``optim.<key>`` is absent or one of ``choices``."""
    value = cfg.get(key)
    if value is not None and value not in choices:
        raise ConfigError(
            f"optim.{key} must be one of {', '.join(choices)}, got {value!r}: "
            f"set optim.{key}={choices[0]}"
        )


def check_bool(cfg: Mapping[str, Any], key: str) -> None:
    value = cfg.get(key)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"optim.{key} must be true or false, got {value!r}")


def _check_betas(cfg: Mapping[str, Any]) -> None:
    if "betas" not in cfg or cfg.get("betas") is None:
        return
    betas = cfg.get("betas")
    try:
        pair = list(betas)
    except TypeError:
        pair = None
    if not (pair and len(pair) == 2 and all(is_number(b) and 0 <= b < 1 for b in pair)):
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
    check_nonneg(cfg_optim, "weight_decay")
    check_range(cfg_optim, "momentum", 0.0, 1.0)
    check_range(cfg_optim, "alpha", 0.0, 1.0)
    _check_betas(cfg_optim)
    check_positive(cfg_optim, "eps")
    check_positive(cfg_optim, "history_size", integer=True)
    check_positive(cfg_optim, "max_iter", integer=True)
    check_positive(cfg_optim, "max_eval", integer=True)
    check_bool(cfg_optim, "nesterov")
    if cfg_optim.get("nesterov") and not option(cfg_optim, "momentum", 0.0) > 0:
        raise ConfigError(
            "optim.nesterov=true needs optim.momentum > 0: set optim.momentum=0.9 "
            "or optim.nesterov=false"
        )
    if spec.validate is not None:
        spec.validate(cfg_optim)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
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


def betas_of(cfg: Mapping[str, Any], default: tuple[float, float] = (0.9, 0.999)):
    b1, b2 = option(cfg, "betas", default)
    return float(b1), float(b2)


def build_optimizer(cfg_optim: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer named by ``cfg_optim.name`` for ``model`` after validating the config.

    Weight decay applies to :func:`weights` only: every optimizer but L-BFGS gets two parameter
    groups (decayed weights, undecayed rest); Muon splits the weights further. An entry with
    ``needs_closure`` (L-BFGS) steps with ``optimizer.step(closure)``.
    """
    validate_optim(cfg_optim)
    avoid_compiler_import()
    return OPTIMIZERS.get(cfg_optim["name"]).build(cfg_optim, model)


def check_schedule(cfg_optim: Mapping[str, Any], cfg_schedule: Mapping[str, Any] | None) -> None:
    """An optimizer that replaces the learning-rate decay refuses a decaying schedule: the decay
    would shrink its steps while its average still weighs them as full ones, so neither method
    would be the one studied."""
    schedule = (cfg_schedule or {}).get("name", "constant")
    if OPTIMIZERS.get(cfg_optim.get("name")).constant_schedule and schedule != "constant":
        raise ConfigError(
            f"optim={cfg_optim['name']} averages its iterates instead of decaying the learning "
            f"rate, so schedule={schedule} does not apply: set schedule=constant "
            "(schedule.warmup or optim.warmup_steps give the warmup)"
        )


def validate_config(cfg) -> None:
    """Check the run config's ``optim`` group (and the schedule it allows); any failure becomes
    one ConfigError line."""
    try:
        validate_optim(cfg["optim"])
        check_schedule(cfg["optim"], cfg.get("schedule"))
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(str(err).strip().splitlines()[0]) from None
