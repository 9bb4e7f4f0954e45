"""DropConnect (Wan et al. 2013) on the weights of a residual branch's layers: ``model.dropconnect``
is the drop probability of each weight (study/components/layers.py has the layers)."""

from __future__ import annotations

from torch import nn

from study.components.checks import real_in
from study.components.layers import DropConnectConv2d, DropConnectLinear
from study.components.regularizers.base import REGULARIZERS, RegularizerSpec

WITH_DROPCONNECT = {nn.Linear: DropConnectLinear, nn.Conv2d: DropConnectConv2d}
"""A plain weight layer → the same layer with DropConnect (the same parameters and state dict)."""


def _weight_layer(p: float, layer: type[nn.Module], *args, **kwargs) -> nn.Module:
    return WITH_DROPCONNECT[layer](*args, p=p, **kwargs)


REGULARIZERS.register(
    "dropconnect",
    RegularizerSpec("model.dropconnect", real_in(0.0, 1.0), weight_layer=_weight_layer),
)
