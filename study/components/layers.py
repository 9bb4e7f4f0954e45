"""Layers whose effect the study measures: Batch Renormalization, DropConnect, stochastic depth,
and the residual block they plug into (the normalization registry is study/components/norms.py).

Every stochastic layer here uses the "inverted" form: the training-time noise is rescaled so that
its expectation is the identity, and evaluation uses the plain, deterministic network. Randomness
comes from torch's global generator, which the training run seeds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------------
# Batch Renormalization


class BatchRenorm(nn.modules.batchnorm._BatchNorm):
    """Batch Renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch
    Dependence in Batch-Normalized Models", Algorithm 1) for inputs (N, C) or (N, C, *).

    Training normalizes with the mini-batch statistics and then corrects towards the moving ones:
        x̂ = (x − μ_B) / σ_B · r + d,   y = γ x̂ + β,
        r = clip(σ_B / σ, 1/r_max, r_max),   d = clip((μ_B − μ) / σ, −d_max, d_max),
    with σ_B = sqrt(var_B + eps) (biased batch variance), σ = sqrt(running_var + eps), and r, d
    treated as constants by backpropagation (the paper's "stop_gradient"). Inference is the same
    affine map as BatchNorm's: (x − μ) / σ · γ + β.

    Moving statistics. Algorithm 1 keeps a moving average of σ. This layer instead keeps
    ``running_mean`` and ``running_var`` exactly as ``nn.BatchNorm`` does (running_var averages the
    unbiased batch variance; ``momentum=None`` is the cumulative average), for three reasons: with
    r_max = 1 and d_max = 0 the layer is then BatchNorm exactly (train outputs, buffers and eval
    outputs); the buffers mean the same thing in both layers, so code that re-estimates statistics
    (AdaBN: ``reset_running_stats()``, ``momentum = None``, forward passes in train mode) treats
    both alike; and state dicts have BatchNorm's keys. The two averages differ only at second order
    in the batch-to-batch fluctuation of σ_B.

    Relaxation. The paper trains as plain BatchNorm for the first 5k steps, then relaxes r_max from
    1 to 3 and d_max from 0 to 5 over tens of thousands of steps. Runs here have very different
    lengths, so the schedule is given in fractions of training: ``set_progress(frac)`` keeps
    r_max = 1, d_max = 0 while frac < ``warmup`` and ramps both linearly to their final values at
    frac = ``relax_end``. A new layer starts at progress 0, i.e. as BatchNorm; the training loop
    must call :func:`set_progress` to relax it.

    It subclasses torch's ``_BatchNorm`` so that code looking for batch-statistics layers finds
    it; eval mode is identical to BatchNorm, so folding it into a convolution for inference is
    correct. Converting it with ``nn.SyncBatchNorm.convert_sync_batchnorm`` would drop the
    renormalization.
    """

    def __init__(
        self,
        num_features: int,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup: float = 0.05,
        relax_end: float = 0.5,
        momentum: float | None = 0.01,
        eps: float = 1e-5,
        affine: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        if not r_max >= 1.0:
            raise ValueError(f"batch renorm r_max must be >= 1, got {r_max}")
        if not d_max >= 0.0:
            raise ValueError(f"batch renorm d_max must be >= 0, got {d_max}")
        if not 0.0 <= warmup <= relax_end <= 1.0:
            raise ValueError(
                f"batch renorm needs 0 <= warmup <= relax_end <= 1, got warmup={warmup}, "
                f"relax_end={relax_end}"
            )
        if momentum is not None and not 0.0 < momentum <= 1.0:
            raise ValueError(f"batch renorm momentum must be in (0, 1] or None, got {momentum}")
        super().__init__(
            num_features,
            eps=eps,
            momentum=momentum,
            affine=affine,
            track_running_stats=True,
            device=device,
            dtype=dtype,
        )
        self.r_max = float(r_max)
        self.d_max = float(d_max)
        self.warmup = float(warmup)
        self.relax_end = float(relax_end)
        self.set_progress(0.0)

    def set_progress(self, frac: float) -> None:
        """Set the current clipping bounds for training progress ``frac`` in [0, 1]."""
        if frac < self.warmup:
            t = 0.0
        elif frac >= self.relax_end:
            t = 1.0
        else:
            t = (frac - self.warmup) / (self.relax_end - self.warmup)
        self.progress = float(frac)
        self.current_r_max = 1.0 + t * (self.r_max - 1.0)
        self.current_d_max = t * self.d_max

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(
                f"BatchRenorm expects input (N, C) or (N, C, *), got shape {tuple(x.shape)}"
            )

    def correction(
        self, batch_mean: torch.Tensor, batch_std: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel correction (r, d) of Algorithm 1, clipped and without gradient."""
        with torch.no_grad():
            std = torch.sqrt(self.running_var + self.eps)
            r = (batch_std / std).clamp(1.0 / self.current_r_max, self.current_r_max)
            d = ((batch_mean - self.running_mean) / std).clamp(
                -self.current_d_max, self.current_d_max
            )
        return r, d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )

        reduce = [0, *range(2, x.dim())]
        count = x.numel() // x.shape[1]
        if count <= 1:
            raise ValueError(
                "BatchRenorm needs more than 1 value per channel in training, "
                f"got shape {tuple(x.shape)}"
            )
        # Statistics in at least float32 (as BatchNorm's kernels) when training in half precision.
        stats_input = x if x.dtype in (torch.float32, torch.float64) else x.float()
        batch_var, batch_mean = torch.var_mean(stats_input, dim=reduce, correction=0)
        batch_std = torch.sqrt(batch_var + self.eps)
        # r and d use the moving statistics from before this batch's update (Algorithm 1 order).
        r, d = self.correction(batch_mean.detach(), batch_std.detach())

        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
            else:
                factor = self.momentum
            unbiased_var = batch_var.detach() * (count / (count - 1))
            self.running_mean.mul_(1.0 - factor).add_(batch_mean.detach(), alpha=factor)
            self.running_var.mul_(1.0 - factor).add_(unbiased_var, alpha=factor)

        # y = γ((x − μ_B)/σ_B · r + d) + β folded into one per-channel scale and shift, so the
        # full-size work is a single multiply-add; gradients still reach μ_B and σ_B (through scale
        # and shift), while r and d enter as constants.
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        scale = r / batch_std
        shift = d - batch_mean * scale
        if self.affine:
            scale = scale * self.weight
            shift = shift * self.weight + self.bias
        return torch.addcmul(shift.view(shape), x, scale.view(shape)).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, r_max={self.r_max}, d_max={self.d_max}, "
            f"warmup={self.warmup}, relax_end={self.relax_end}"
        )


def set_progress(model: nn.Module, frac: float) -> None:
    """Tell every progress-dependent layer of ``model`` (Batch Renorm's relaxation) that a fraction
    ``frac`` of training is done. Call it before each optimizer step with step / total_steps."""
    for module in model.modules():
        method = getattr(module, "set_progress", None)
        if callable(method):
            method(frac)


# --------------------------------------------------------------------------------------------------
# DropConnect


def _check_drop_prob(p: float, what: str) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{what} drop probability must be in [0, 1), got {p}")
    return float(p)


def _drop_weight(weight: torch.Tensor, p: float) -> torch.Tensor:
    keep = 1.0 - p
    mask = torch.empty_like(weight).bernoulli_(keep)
    return weight * mask / keep


class DropConnectLinear(nn.Linear):
    """Linear layer with DropConnect (Wan et al. 2013, "Regularization of Neural Networks using
    DropConnect"): in training each weight is zeroed with probability ``p``.

    One mask is drawn per forward pass and shared by the mini-batch (the paper draws one per
    example, which costs a weight matrix per example). Kept weights are scaled by 1/(1 − p), so the
    expected weight is the stored one and evaluation uses the plain layer; this is the mean-field
    inference the paper compares against, not its Gaussian moment-matching inference. The bias is
    not dropped.
    """

    def __init__(self, in_features: int, out_features: int, p: float = 0.0, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.p = _check_drop_prob(p, "DropConnect")

    def sample_weight(self) -> torch.Tensor:
        """A weight matrix with a fresh DropConnect mask (the one a training forward uses)."""
        if self.p == 0.0:
            return self.weight
        return _drop_weight(self.weight, self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.sample_weight() if self.training else self.weight
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class DropConnectConv2d(nn.Conv2d):
    """Conv2d with DropConnect on its kernel (Wan et al. 2013 applied to convolution weights); the
    same conventions as :class:`DropConnectLinear`."""

    def __init__(self, *args, p: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.p = _check_drop_prob(p, "DropConnect")

    def sample_weight(self) -> torch.Tensor:
        if self.p == 0.0:
            return self.weight
        return _drop_weight(self.weight, self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.sample_weight() if self.training else self.weight
        return self._conv_forward(x, weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


# --------------------------------------------------------------------------------------------------
# Stochastic depth and the residual block


def stochastic_depth_rates(p_last: float, n_blocks: int) -> list[float]:
    """Linear decay rule of Huang et al. 2016 ("Deep Networks with Stochastic Depth", Eq. 4 written
    as drop probabilities): block l of L (l = 1..L) is dropped with probability (l / L) · p_L."""
    _check_drop_prob(p_last, "stochastic depth")
    return [p_last * block / n_blocks for block in range(1, n_blocks + 1)]


class StochasticDepth(nn.Module):
    """Drop a residual branch per sample (Huang et al. 2016), applied to the branch's output.

    In training each sample's branch output is zeroed with probability ``p`` and the survivors are
    scaled by 1/(1 − p). The paper instead scales by the survival probability at test time; the
    inverted form used here is equivalent in expectation and keeps evaluation free of any scaling.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = _check_drop_prob(p, "stochastic depth")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = x.new_empty(shape).bernoulli_(keep).div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ResidualBlock(nn.Module):
    """y = shortcut(x) + drop_path(branch(x)); the shortcut is the identity unless the block changes
    the shape. Stochastic depth drops ``branch`` only, so a dropped block passes x through."""

    def __init__(
        self, branch: nn.Module, shortcut: nn.Module | None = None, drop_prob: float = 0.0
    ):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.drop_path = StochasticDepth(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.drop_path(self.branch(x))


__all__ = [
    "BatchRenorm",
    "DropConnectConv2d",
    "DropConnectLinear",
    "ResidualBlock",
    "StochasticDepth",
    "set_progress",
    "stochastic_depth_rates",
]
