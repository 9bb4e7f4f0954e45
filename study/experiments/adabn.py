"""AdaBN (Li et al. 2016): re-estimate normalization statistics on unlabeled shifted data.

Used by the test-time shift evaluation (study/experiments/shift.py) for its ``adapted`` rows.

How :func:`adapt_norm_statistics` re-estimates: the whole model stays in eval mode, so dropout,
DropConnect and stochastic depth are off and the pass is deterministic. A pre-forward hook on each
normalization layer computes the current batch's statistics and writes them into the layer's
running buffers just before its own eval-mode forward, which therefore normalizes with batch
statistics exactly as a BatchNorm in training mode would; the hook also accumulates exact totals
over all batches. This never calls a layer's training-mode forward, which matters for Batch
Renormalization: once relaxed (r_max > 1, d_max > 0, as at the end of training), its training
forward after a reset corrects towards mean 0, variance 1 and passes a nearly un-normalized input
on to deeper layers. momentum is untouched: totals are kept here, not by each layer's moving
average.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def norm_modules(model: nn.Module) -> list[nn.Module]:
    """Modules with running statistics: nn.BatchNorm* and its subclasses (the study's BatchRenorm),
    and any other module exposing running_mean, running_var and reset_running_stats. Layers built
    with track_running_stats=False have none."""
    found = []
    for m in model.modules():
        is_bn = isinstance(m, nn.modules.batchnorm._BatchNorm)
        has_api = all(hasattr(m, a) for a in ("running_mean", "running_var", "reset_running_stats"))
        if (is_bn or has_api) and getattr(m, "running_mean", None) is not None:
            found.append(m)
    return found


class _Moments:
    """Exact per-channel mean and variance over many batches (Chan et al. parallel update)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, x: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() < 2 or x.shape[1] != channels:
            raise ValueError(
                f"normalization layer with {channels} channels got input {tuple(x.shape)}; "
                "AdaBN expects channels in dimension 1"
            )
        nb = x.numel() // channels
        # BatchNorm's own statistics kernel (batch mean and population variance per channel, in
        # float32 as in training): on CPU an order of magnitude faster than torch.var_mean over
        # dims (0, 2, ...). The pooling across batches is done in float64.
        mean_b, var_b = torch.batch_norm_update_stats(x.detach().float(), None, None, 0.0)
        mean_b, var_b = mean_b.double(), var_b.double()
        m2_b = var_b * nb
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mean_b, m2_b
        else:
            n = self.n + nb
            delta = mean_b - self.mean
            self.mean = self.mean + delta * nb / n
            self.m2 = self.m2 + m2_b + delta**2 * self.n * nb / n
            self.n = n
        return mean_b, var_b  # this batch's mean and biased variance

    def unbiased_var(self) -> torch.Tensor:
        assert self.m2 is not None
        return self.m2 / max(1, self.n - 1)


@torch.no_grad()
def adapt_norm_statistics(
    model: nn.Module,
    x_float_batches: Iterable[torch.Tensor],
    outputs: list[torch.Tensor] | None = None,
) -> int:
    """Re-estimate every normalization layer's running statistics on unlabeled batches (AdaBN).

    Afterwards each layer's running_mean/running_var are the mean and (unbiased) variance of its
    input over all batches, where every earlier layer already normalized with the new data's
    statistics, as in Li et al. 2016. Returns the number of layers adapted; 0 means the model has
    no running statistics and is left unchanged.

    How the pass works, and why it never uses training mode, is in the module docstring.

    ``outputs``, if given, receives the model's output for each batch of the pass. With all the
    data in one batch, every layer normalizes with the statistics of the whole set, which is
    Li et al.'s definition exactly, and these outputs are the adapted model's, up to the
    n/(n−1) factor between the population variance used in the pass and the unbiased one stored.
    """
    modules = norm_modules(model)
    if not modules:
        return 0
    flags = {m: m.training for m in model.modules()}
    moments = {m: _Moments() for m in modules}

    def hook(module: nn.Module, args: tuple) -> None:
        mean_b, var_b = moments[module].add(args[0], module.running_mean.numel())
        module.running_mean.copy_(mean_b)
        module.running_var.copy_(var_b)

    for m in modules:
        m.reset_running_stats()
    handles = [m.register_forward_pre_hook(hook) for m in modules]
    model.eval()
    try:
        n_batches = 0
        for xb in x_float_batches:
            out = model(xb)
            if outputs is not None:
                outputs.append(out)
            n_batches += 1
        if n_batches == 0:
            raise ValueError("AdaBN needs at least one batch of unlabeled data")
    finally:
        for h in handles:
            h.remove()
        for m, training in flags.items():
            m.train(training)
    for m in modules:
        m.running_mean.copy_(moments[m].mean)
        m.running_var.copy_(moments[m].unbiased_var())
        if getattr(m, "num_batches_tracked", None) is not None:
            m.num_batches_tracked.fill_(n_batches)
    return len(modules)
