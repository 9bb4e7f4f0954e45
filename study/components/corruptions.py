"""Image corruptions for test-time shift (Hendrycks & Dietterich 2019, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations"), adapted to 28x28 grayscale and 32x32 RGB.

Each :data:`CORRUPTIONS` entry holds the corruption's parameter at severities 0..5 and the function
that applies it, so a new corruption is one entry here (and its name in conf/shift.yaml). Severity
0 is the identity, so a fractional severity (used by the drift stream) interpolates linearly
between neighbouring entries.

CIFAR-10-C's tables were tuned for natural 32x32 colour photos. On 28x28 grayscale clothing a
small classifier barely notices CIFAR-10-C's noise and blur (a residual MLP trained on 10k
Fashion-MNIST images kept 97% or more of its clean accuracy at their severity 5), so these two
follow ImageNet-C's range instead; the aim is a severity 5 that is clearly harmful yet well above
chance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from study.registry import Registry

__all__ = ["CORRUPTIONS", "MAX_SEVERITY", "CorruptionSpec", "corrupt", "corruption_param"]

MAX_SEVERITY = 5


@dataclass(frozen=True)
class CorruptionSpec:
    """``severities``: the parameter at severities 0..5; ``apply(x, param, generator)`` corrupts a
    float batch in [0, 1] pixel units; ``random``: whether it draws from the generator."""

    severities: tuple[float, ...]
    apply: Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]
    random: bool = False


CORRUPTIONS: Registry[CorruptionSpec] = Registry("corruption", "shift.corruptions")
"""Corruption name (conf/shift.yaml ``corruptions`` and ``drift.mix``) → :class:`CorruptionSpec`."""


def _corruption(name: str, severities: tuple[float, ...], random: bool = False):
    if len(severities) != MAX_SEVERITY + 1:
        raise ValueError(f"corruption {name!r} needs {MAX_SEVERITY + 1} severities (0..5)")

    def register(apply: Callable) -> Callable:
        CORRUPTIONS.register(name, CorruptionSpec(tuple(severities), apply, random))
        return apply

    return register


# std of additive i.i.d. Gaussian noise, in units of the [0, 1] pixel range.
# CIFAR-10-C: .04 .06 .08 .09 .10; ImageNet-C: .08 .12 .18 .26 .38 (used).
@_corruption("gaussian_noise", (0.0, 0.08, 0.12, 0.18, 0.26, 0.38), random=True)
def _gaussian_noise(xf: torch.Tensor, p: float, generator: torch.Generator | None):
    noise = torch.randn(xf.shape, generator=generator, dtype=torch.float32)
    return xf + p * noise.to(xf.device)


# Offset added to every pixel before clipping. CIFAR-10-C adds it to HSV value; for one channel
# that is the same thing, for RGB an equal offset per channel likewise keeps the hue.
# CIFAR-10-C: .05 .1 .15 .2 .3 (used).
@_corruption("brightness", (0.0, 0.05, 0.1, 0.15, 0.2, 0.3))
def _brightness(xf: torch.Tensor, p: float, generator: torch.Generator | None):
    return xf + p


# Factor c in (x - mean_image) * c + mean_image, mean over each image's pixels and channels.
# CIFAR-10-C: .75 .5 .4 .3 .15 (used).
@_corruption("contrast", (1.0, 0.75, 0.5, 0.4, 0.3, 0.15))
def _contrast(xf: torch.Tensor, p: float, generator: torch.Generator | None):
    mean = xf.mean(dim=(1, 2, 3), keepdim=True)
    return (xf - mean) * p + mean


def _blur_matrix(n: int, sigma: float, dtype: torch.dtype, device) -> torch.Tensor:
    """The n×n matrix of a 1-D Gaussian blur with reflect padding: row i is the blurred unit
    vector e_i, so blurring signals along their last axis is ``signals @ matrix``."""
    radius = min(max(1, math.ceil(3 * sigma)), n - 1)  # reflect padding needs radius < n
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    eye = torch.eye(n, dtype=dtype, device=device).unsqueeze(1)  # n signals of length n
    return F.conv1d(F.pad(eye, (radius, radius), mode="reflect"), k.view(1, 1, -1)).squeeze(1)


# Gaussian blur sigma in pixels. CIFAR-10-C (32 px): .4 .6 .7 .8 1.0; ImageNet-C (224 px):
# 1 2 3 4 6. Here half-pixel steps: at 28 px, sigma 2.5 leaves only the garment's silhouette.
@_corruption("blur", (0.0, 0.5, 1.0, 1.5, 2.0, 2.5))
def _gaussian_blur(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None):
    # Separable blur as two small matrix products (H×H on the left, W×W on the right): on CPU
    # this is an order of magnitude faster than a depthwise conv2d over a 10k-image batch, and
    # reflect padding (folded into the matrices) keeps borders from being darkened by zeros.
    h, w = x.shape[-2:]
    rows = _blur_matrix(h, sigma, x.dtype, x.device)
    cols = _blur_matrix(w, sigma, x.dtype, x.device)
    return rows.T @ x @ cols


# Side in pixels of the square blocks an image is averaged over (area downsampling, then
# nearest upsampling). CIFAR-10-C resizes by a fraction (.95 .9 .85 .75 .65) with box filters
# both ways; at 28 px a fractional grid misaligns the blocks with the content, which made some
# milder levels harder than stronger ones, so the blocks here are whole pixels anchored at the
# top-left corner (the last row and column of blocks may be narrower).
@_corruption("pixelate", (1, 2, 3, 4, 5, 6))
def _pixelate(x: torch.Tensor, p: float, generator: torch.Generator | None = None):
    # Sum-pool over zero-padded blocks divided by the number of real pixels in each block, so the
    # partial blocks at the border are plain averages too.
    block = round(p)
    if block <= 1:
        return x
    h, w = x.shape[-2:]
    pad = (0, (-w) % block, 0, (-h) % block)
    ones = F.pad(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device), pad)
    avg = F.avg_pool2d(F.pad(x, pad), block) / F.avg_pool2d(ones, block)
    return avg.repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1)[..., :h, :w]


def corruption_param(name: str, severity: float) -> float:
    """The corruption's parameter at a (possibly fractional) severity in [0, 5]."""
    table = CORRUPTIONS.get(name).severities
    if not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity must be in [0, {MAX_SEVERITY}], got {severity}")
    lo = min(int(math.floor(severity)), MAX_SEVERITY - 1)
    frac = severity - lo
    return table[lo] + frac * (table[lo + 1] - table[lo])


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32) / 255.0


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def corrupt(
    x: torch.Tensor, name: str, severity: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Corrupt a uint8 N×C×H×W batch at a severity in [0, 5]; returns a new uint8 tensor.

    Severity 0 is the identity. Only ``gaussian_noise`` is random; it draws from ``generator``
    (a CPU ``torch.Generator``), so the same seed gives the same bytes.
    """
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"expected a uint8 N×C×H×W tensor, got {x.dtype} {tuple(x.shape)}")
    p = corruption_param(name, severity)
    if severity == 0:
        return x.clone()
    spec = CORRUPTIONS.get(name)
    if spec.random and generator is None:
        raise ValueError(f"{name} needs a seeded torch.Generator for reproducibility")
    return _to_uint8(spec.apply(_to_float(x), p, generator))
