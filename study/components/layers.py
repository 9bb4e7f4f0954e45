"""Layers whose effect the study measures: Batch Renormalization, DropConnect, stochastic depth,
and the residual block they plug into (the normalization registry is study/components/norms.py).

Every stochastic layer here uses the "inverted" form: the training-time noise is rescaled so that
its expectation is the identity, and evaluation uses the plain, deterministic network. Randomness
comes from torch's global generator, which the training run seeds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------------
# Batch Renormalization


def converged_after(momentum: float | None, left: float = 0.01) -> int:
    """Steps K after which a moving average with update rate ``momentum`` keeps less than
    ``left`` of its initial value: the smallest K with (1 − momentum)^K < left (459 at 0.01).
    A cumulative average (``momentum=None``) holds no initial value: 0."""
    if momentum is None:
        return 0
    if momentum >= 1.0:
        return 1
    return math.floor(math.log(left) / math.log(1.0 - momentum)) + 1


class BatchRenorm(nn.modules.batchnorm._BatchNorm):
    """Batch Renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch
    Dependence in Batch-Normalized Models", Algorithm 1) for inputs (N, C) or (N, C, *).

    Training normalizes with the mini-batch statistics and then corrects towards the moving ones:
        x̂ = (x − μ_B) / σ_B · r + d,   y = γ x̂ + β,
        r = clip(σ_B / σ, 1/r_max, r_max),   d = clip((μ_B − μ) / σ, −d_max, d_max),
    with σ_B = sqrt(var_B + eps) (biased batch variance), and r, d treated as constants by
    backpropagation (the paper's "stop_gradient"). Inference is (x − μ) / σ · γ + β.

    Moving statistics (``moving="std"``, the paper's): μ ← μ + α(μ_B − μ) and σ ← σ + α(σ_B − σ).
    σ is stored in BatchNorm's ``running_var`` buffer as σ² − eps, so σ = sqrt(running_var + eps)
    exactly as BatchNorm reads it: state dicts keep BatchNorm's keys, inference is BatchNorm's
    kernel, and re-estimation on new data (AdaBN, which writes a variance there) still works.
    ``moving="var"`` (registered as ``batchrenorm_var``) averages the unbiased batch variance as
    ``nn.BatchNorm`` does instead; with 8 values per channel E[σ_B] is well below sqrt(E[var]), so
    the two give measurably different inference outputs (tests/test_batchrenorm.py).

    Relaxation, in optimizer steps. The paper trains as plain BatchNorm for its first 5k steps
    (r_max = 1, d_max = 0), when its moving averages have long converged, then relaxes. Here the
    plain-BatchNorm phase lasts ``warmup_steps``; by default K = :func:`converged_after`
    (momentum), the first step at which the averages keep under 1% of their initial values (459
    steps at α = 0.01). r_max and d_max then ramp linearly to their final values over a fraction
    ``relax_end`` of the remaining steps. The training loop calls ``set_progress(step, total)``;
    a new layer is at step 0, i.e. BatchNorm.
    """

    def __init__(
        self,
        num_features: int,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int | None = None,
        relax_end: float = 0.5,
        momentum: float | None = 0.01,
        eps: float = 1e-5,
        moving: str = "std",
        affine: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        if not r_max >= 1.0:
            raise ValueError(f"batch renorm r_max must be >= 1, got {r_max}")
        if not d_max >= 0.0:
            raise ValueError(f"batch renorm d_max must be >= 0, got {d_max}")
        if not 0.0 <= relax_end <= 1.0:
            raise ValueError(f"batch renorm relax_end must be in [0, 1], got {relax_end}")
        if warmup_steps is not None and warmup_steps < 0:
            raise ValueError(f"batch renorm warmup_steps must be >= 0, got {warmup_steps}")
        if momentum is not None and not 0.0 < momentum <= 1.0:
            raise ValueError(f"batch renorm momentum must be in (0, 1] or None, got {momentum}")
        if moving not in ("std", "var"):
            raise ValueError(f"batch renorm moving must be 'std' or 'var', got {moving!r}")
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
        self.warmup_steps = converged_after(momentum) if warmup_steps is None else int(warmup_steps)
        self.relax_end = float(relax_end)
        self.moving = moving
        self.set_progress(0, 1)

    def set_progress(self, step: int, total_steps: int) -> None:
        """Set the clipping bounds for optimizer step ``step`` of ``total_steps``."""
        start = self.warmup_steps
        end = start + self.relax_end * max(total_steps - start, 0)
        if step < start:
            t = 0.0
        elif step >= end:
            t = 1.0
        else:
            t = (step - start) / (end - start)
        self.step = int(step)
        self.current_r_max = 1.0 + t * (self.r_max - 1.0)
        self.current_d_max = t * self.d_max

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(
                f"BatchRenorm expects input (N, C) or (N, C, *), got shape {tuple(x.shape)}"
            )

    def moving_std(self) -> torch.Tensor:
        """σ of Algorithm 1 (see the class docstring for how it is stored)."""
        return torch.sqrt(self.running_var + self.eps)

    def correction(
        self, batch_mean: torch.Tensor, batch_std: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel correction (r, d) of Algorithm 1, clipped and without gradient."""
        with torch.no_grad():
            std = self.moving_std()
            r = (batch_std / std).clamp(1.0 / self.current_r_max, self.current_r_max)
            d = ((batch_mean - self.running_mean) / std).clamp(
                -self.current_d_max, self.current_d_max
            )
        return r, d

    @torch.no_grad()
    def _update_moving(self, batch_mean, batch_var, batch_std, count: int) -> None:
        self.num_batches_tracked.add_(1)
        cumulative = self.momentum is None  # AdaBN-style re-estimation: a plain average
        factor = 1.0 / float(self.num_batches_tracked) if cumulative else self.momentum
        self.running_mean.mul_(1.0 - factor).add_(batch_mean, alpha=factor)
        if self.moving == "var":
            unbiased_var = batch_var * (count / (count - 1))
            self.running_var.mul_(1.0 - factor).add_(unbiased_var, alpha=factor)
        else:
            std = self.moving_std().mul_(1.0 - factor).add_(batch_std, alpha=factor)
            self.running_var.copy_(std.square() - self.eps)

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
        self._update_moving(batch_mean.detach(), batch_var.detach(), batch_std.detach(), count)

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
            f"warmup_steps={self.warmup_steps}, relax_end={self.relax_end}, moving={self.moving}"
        )


def set_progress(model: nn.Module, step: int, total_steps: int) -> None:
    """Tell every progress-dependent layer of ``model`` (Batch Renorm's relaxation) which
    optimizer step of ``total_steps`` comes next. Call it before each optimizer step."""
    for module in model.modules():
        method = getattr(module, "set_progress", None)
        if callable(method):
            method(step, total_steps)


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


class DropConnect:
    """DropConnect (Wan et al. 2013, "Regularization of Neural Networks using DropConnect") for a
    layer with a ``weight``: in training each weight is zeroed with probability ``p``.

    Mixed in before the layer class (:class:`DropConnectLinear`, :class:`DropConnectConv2d`), which
    supplies ``apply_weight(x, weight)``: the layer's functional op with a given weight, so the
    masking is written once for every kind of layer. One mask is drawn per forward pass and shared
    by the mini-batch (the paper draws one per example, which costs a weight matrix per example).
    Kept weights are scaled by 1/(1 − p), so the expected weight is the stored one and evaluation
    uses the plain layer; this is the mean-field inference the paper compares against, not its
    Gaussian moment-matching inference. The bias is not dropped. The state dict is the plain
    layer's.
    """

    weight: torch.Tensor
    training: bool

    def __init__(self, *args, p: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.p = _check_drop_prob(p, "DropConnect")

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample_weight(self) -> torch.Tensor:
        """A weight with a fresh DropConnect mask (the one a training forward uses)."""
        if self.p == 0.0:
            return self.weight
        return _drop_weight(self.weight, self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply_weight(x, self.sample_weight() if self.training else self.weight)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class DropConnectLinear(DropConnect, nn.Linear):
    """nn.Linear with :class:`DropConnect` on its weight matrix."""

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, self.bias)


class DropConnectConv2d(DropConnect, nn.Conv2d):
    """nn.Conv2d with :class:`DropConnect` on its kernel."""

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, weight, self.bias)


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
    the shape. ``drop_path`` acts on the branch's output only (stochastic depth, whose dropped
    block passes x through); the identity when no regularizer acts there."""

    def __init__(
        self,
        branch: nn.Module,
        shortcut: nn.Module | None = None,
        drop_path: nn.Module | None = None,
    ):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.drop_path = drop_path if drop_path is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.drop_path(self.branch(x))


__all__ = [
    "BatchRenorm",
    "DropConnect",
    "DropConnectConv2d",
    "DropConnectLinear",
    "ResidualBlock",
    "StochasticDepth",
    "set_progress",
    "stochastic_depth_rates",
]
