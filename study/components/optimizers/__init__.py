"""Optimizers and their weight decay, one :data:`OPTIMIZERS` entry per ``conf/optim/*.yaml``.

Each optimizer family is one module of this package that registers its entries where it defines
them; every module here but ``base`` is imported (:data:`FAMILIES`), so adding an optimizer is its
module and its YAML file. Third-party packages (``schedulefree``, ``pytorch_optimizer``) are
imported inside their builders: a run pays their import only when it uses them.

Two ways of shrinking the weights are studied and kept apart:

* ``regularization.{l1,l2}``: penalty terms added to the loss (study/components/regularizers/).
  They are part of the objective, so every optimizer sees them through the gradient.
* ``optim.weight_decay``: the optimizer's own decay (:func:`build_optimizer`), coupled (added to
  the gradient) for the torch optimizers of the course but AdamW, decoupled (``w ← w − lr·wd·w``,
  Loshchilov & Hutter 2019) for AdamW and for every newer method here.

Both act on the *weights* only: the parameters with two or more dimensions (Linear and Conv
weights). Biases and normalization scales/shifts are excluded ("no bias decay", He et al. 2019):
they are few, and pulling them towards 0 constrains the fit without limiting the capacity that the
weight matrices carry.
"""

from __future__ import annotations

from study.components.optimizers.base import (
    OPTIMIZERS,
    OptimizerSpec,
    build_optimizer,
    check_schedule,
    validate_config,
    validate_optim,
)
from study.registry import import_component_modules

FAMILIES = import_component_modules(__name__, __path__)
"""The modules of this package that register optimizers (study/components/optimizers/<name>.py)."""

__all__ = [
    "FAMILIES",
    "OPTIMIZERS",
    "OptimizerSpec",
    "build_optimizer",
    "check_schedule",
    "validate_config",
    "validate_optim",
]
