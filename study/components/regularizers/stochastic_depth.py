"""Stochastic depth (Huang et al. 2016): each residual branch dropped per sample, with the paper's
linearly decaying rates counted over all blocks of the network. ``model.stochastic_depth`` is the
drop probability of the deepest block."""

from __future__ import annotations

from torch import nn

from study.components.checks import real_in
from study.components.layers import StochasticDepth, stochastic_depth_rates
from study.components.regularizers.base import REGULARIZERS, RegularizerSpec


def _branch(p_last: float, block: int, n_blocks: int) -> nn.Module:
    return StochasticDepth(stochastic_depth_rates(p_last, n_blocks)[block])


REGULARIZERS.register(
    "stochastic_depth", RegularizerSpec("model.stochastic_depth", real_in(0.0, 1.0), branch=_branch)
)
