"""Dropout (Srivastava et al. 2014) on a residual branch's hidden activations, between its two
weight layers as in Wide ResNets (Zagoruyko & Komodakis 2016): ``model.dropout``."""

from __future__ import annotations

from torch import nn

from study.components.checks import real_in
from study.components.regularizers.base import REGULARIZERS, RegularizerSpec

# A drop probability of 1 would remove the layer's whole output, so it is excluded.
REGULARIZERS.register(
    "dropout", RegularizerSpec("model.dropout", real_in(0.0, 1.0), activations=nn.Dropout)
)
