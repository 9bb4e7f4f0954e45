"""Schedule-free AdamW (Defazio et al. 2024, "The Road Less Scheduled"), from ``schedulefree``.

It keeps two sequences: ``z``, a plain AdamW iterate, and ``x``, the weighted average of the
``z`` sequence, and takes the gradient at their interpolation ``y = (1 − β1)·z + β1·x``. The
average plays the role of the learning-rate decay, so the method needs no decaying schedule and
no training length fixed in advance. The weights a run evaluates and saves are ``x``; the ones
the gradient is taken at are ``y``: the entry's ``train_mode`` / ``eval_mode`` swap them (the
training loop calls them through the :class:`OptimizerSpec`, before training and before each
evaluation).

With the study's schedules: the entry sets ``constant_schedule``, so a run with a decaying
schedule is refused with one config error (a decay would shrink the ``z`` steps while the average
weighs them by the peak rate). A warmup is allowed either way and is the same thing: the package
scales ``lr`` by its own linear warmup over ``optim.warmup_steps`` steps, and the study's
``schedule.warmup`` (a fraction of the run) scales the ``lr`` it is given; the averaging weights use
the largest rate seen so far in both cases.

Caveat: BatchNorm running statistics are collected at ``y`` during training, not at the
evaluated ``x``; the study's default networks have no BatchNorm (``model.norm=none``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from study.components.optimizers.base import (
    OPTIMIZERS,
    betas_of,
    check_nonneg,
    is_number,
    option,
    param_groups,
)
from study.errors import ConfigError


def _validate_schedule_free(cfg: Mapping[str, Any]) -> None:
    steps = cfg.get("warmup_steps")
    if steps is not None and not (is_number(steps) and steps == int(steps) and steps >= 0):
        raise ConfigError(
            f"optim.warmup_steps must be a whole number of steps >= 0, got {steps!r}: "
            "set optim.warmup_steps=0 (or use schedule.warmup, a fraction of the run)"
        )
    check_nonneg(cfg, "r")
    check_nonneg(cfg, "weight_lr_power")


def _train_mode(optimizer: torch.optim.Optimizer) -> None:
    optimizer.train()  # parameters ← y, where the gradient is taken


def _eval_mode(optimizer: torch.optim.Optimizer) -> None:
    optimizer.eval()  # parameters ← x, the average that is evaluated and saved


@OPTIMIZERS.builder(
    "adamw_schedulefree",
    validate=_validate_schedule_free,
    train_mode=_train_mode,
    eval_mode=_eval_mode,
    constant_schedule=True,
)
def _build_adamw_schedulefree(cfg, model):
    from schedulefree import AdamWScheduleFree  # imported here: only its runs pay for it

    optimizer = AdamWScheduleFree(
        param_groups(model, option(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        betas=betas_of(cfg),
        eps=float(option(cfg, "eps", 1e-8)),
        warmup_steps=int(option(cfg, "warmup_steps", 0)),
        r=float(option(cfg, "r", 0.0)),
        weight_lr_power=float(option(cfg, "weight_lr_power", 2.0)),
    )
    optimizer.train()  # ready to step, as every other optimizer is after its build
    return optimizer
