"""The regularizers the study compares, one :data:`REGULARIZERS` entry each.

Each regularizer is one module of this package that registers its entry where it defines it;
every module here but ``base`` is imported (:data:`TECHNIQUES`), so adding a regularizer is its
module and its config key (in ``conf/model/*.yaml`` for one inside the network, under
``regularization:`` in ``conf/config.yaml`` for a loss penalty). study/components/regularizers/
base.py says what an entry declares and how models, the config check and the training loop ask
the registry.
"""

from __future__ import annotations

from study.components.regularizers.base import (
    REGULARIZERS,
    InNetwork,
    RegularizerSpec,
    in_network,
    loss_penalties,
    model_regularizers,
    penalty,
    validate_config,
    weights,
)
from study.registry import import_component_modules

TECHNIQUES = import_component_modules(__name__, __path__)
"""The modules of this package that register regularizers (regularizers/<name>.py)."""

__all__ = [
    "REGULARIZERS",
    "TECHNIQUES",
    "InNetwork",
    "RegularizerSpec",
    "in_network",
    "loss_penalties",
    "model_regularizers",
    "penalty",
    "validate_config",
    "weights",
]
