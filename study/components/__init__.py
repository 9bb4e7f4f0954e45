"""Components the study builds by name.

Data, models, layers, norms, optimizers, schedules, regularizers, augmentations and corruptions:
each kind keeps a registry (study/registry.py) whose entries declare the config keys they read.
"""

from __future__ import annotations


def validate_components(cfg) -> None:
    """Check every config key a component reads; raises ConfigError naming the first bad one.

    Each component module's ``validate_config`` checks the name that picks its entry and the keys
    its entries declare, in the order a run builds them.
    """
    from study.components import (
        augmentations,
        data,
        models,
        norms,
        optimizers,
        regularizers,
        schedules,
    )

    for module in (data, models, norms, regularizers, augmentations, optimizers, schedules):
        module.validate_config(cfg)
