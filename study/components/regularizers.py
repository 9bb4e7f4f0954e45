"""Explicit weight penalties: the ``regularization.{l1,l2}`` terms added to the loss.

Penalties act on the *weights* only: the parameters with two or more dimensions (Linear and Conv
weights). Biases and normalization scales/shifts are excluded ("no bias decay", He et al. 2019):
they are few, and pulling them towards 0 constrains the fit without limiting the capacity that the
weight matrices carry. The optimizers' weight decay uses the same split (study/components/
optimizers.py).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["penalty", "weights"]


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
