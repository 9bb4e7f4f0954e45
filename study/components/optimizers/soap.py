"""SOAP (Vyas et al. 2025, "SOAP: Improving and Stabilizing Shampoo using Adam"), from
``pytorch_optimizer``: the study's approximate second-order method.

SOAP runs Adam in the eigenbasis of Shampoo's two Kronecker factors ``L = Σ G Gᵀ`` and
``R = Σ Gᵀ G`` of each weight matrix, refreshing that basis every ``precondition_frequency`` steps
(one QR-based power iteration per factor). Parameters with one dimension (biases, norm scales) get
plain Adam. The decay is decoupled, on the weights only.

Why SOAP and not Shampoo: on the residual MLP (width 256, 3 blocks, 784 inputs), one epoch of 10k
images at batch 128 on one CPU thread took AdamW 0.6–1.4 s, SOAP 5.3–11.8 s, Shampoo with a root
inverse every 10 steps 7.7–8.6 s and Shampoo at its default of one every step 40–44 s (this
machine, shared and noisy). SOAP is the fastest preconditioned method here and, by its authors'
account, needs no learning-rate grafting and fewer hyperparameters than Shampoo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from study.components.optimizers.base import (
    OPTIMIZERS,
    betas_of,
    check_positive,
    check_range,
    option,
    param_groups,
)


def _validate_soap(cfg: Mapping[str, Any]) -> None:
    check_positive(cfg, "precondition_frequency", integer=True)
    check_positive(cfg, "max_precondition_dim", integer=True)
    check_range(cfg, "shampoo_beta", 0.0, 1.0)


@OPTIMIZERS.builder("soap", validate=_validate_soap)
def _build_soap(cfg, model):
    from pytorch_optimizer import SOAP  # imported here: only SOAP runs pay for the package

    shampoo_beta = cfg.get("shampoo_beta")
    return SOAP(
        param_groups(model, option(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        betas=betas_of(cfg, (0.95, 0.95)),
        shampoo_beta=None if shampoo_beta is None else float(shampoo_beta),
        eps=float(option(cfg, "eps", 1e-8)),
        precondition_frequency=int(option(cfg, "precondition_frequency", 10)),
        max_precondition_dim=int(option(cfg, "max_precondition_dim", 10000)),
    )
