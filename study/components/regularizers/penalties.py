"""The L1 and L2 penalties on the weights, added to the loss: ``regularization.l1`` is λ in
λ · Σ |w|, ``regularization.l2`` is λ in λ/2 · Σ w² (coupled L2, as opposed to the optimizers'
decoupled weight decay, study/components/optimizers/__init__.py).

Penalties act on the *weights* only: the parameters with two or more dimensions (Linear and Conv
weights). Biases and normalization scales/shifts are excluded ("no bias decay", He et al. 2019):
they are few, and pulling them towards 0 constrains the fit without limiting the capacity that the
weight matrices carry. The optimizers' weight decay uses the same split.
"""

from __future__ import annotations

import torch
from torch import nn

from study.components.checks import real_at_least
from study.components.regularizers.base import REGULARIZERS, RegularizerSpec


def _l1(ws: list[nn.Parameter], strength: float) -> torch.Tensor:
    return strength * sum(w.abs().sum() for w in ws)


def _l2(ws: list[nn.Parameter], strength: float) -> torch.Tensor:
    return (strength / 2) * sum(w.pow(2).sum() for w in ws)


REGULARIZERS.register("l1", RegularizerSpec("regularization.l1", real_at_least(0.0), penalty=_l1))
REGULARIZERS.register("l2", RegularizerSpec("regularization.l2", real_at_least(0.0), penalty=_l2))
