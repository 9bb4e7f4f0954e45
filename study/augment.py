"""Batched data augmentation on uint8 image tensors: random shift, horizontal flip, cutout.

Every transform acts on a whole N×C×H×W batch at once with index arithmetic, on whatever device
the batch lives on; randomness comes from the run's own ``torch.Generator`` so a run is a pure
function of its seed. Augmentation is applied to training batches only, never at evaluation.
"""

from __future__ import annotations

import torch


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels per axis: zero pad, then random crop."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n, 1), generator=generator, device=x.device)
    rows = offsets[0] + torch.arange(h, device=x.device)  # n×h
    cols = offsets[1] + torch.arange(w, device=x.device)  # n×w
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # Advanced indices separated by a slice put the broadcast n×h×w dimensions first.
    shifted = padded[batch, :, rows.unsqueeze(2), cols.unsqueeze(1)]
    return shifted.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def cutout_mask(
    n: int, h: int, w: int, size: int, generator: torch.Generator, device=None
) -> torch.Tensor:
    """Boolean n×h×w mask of one size×size square per image, True where pixels are erased.

    DeVries & Taylor 2017: the centre is uniform over the whole image, so the square may be
    clipped at the border (erasing fewer than size² pixels), which the paper found matters.
    """
    cy = torch.randint(0, h, (n, 1, 1), generator=generator, device=device)
    cx = torch.randint(0, w, (n, 1, 1), generator=generator, device=device)
    top, left = cy - size // 2, cx - size // 2
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    return (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one size×size square per image, at a centre drawn independently for each image."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    mask = cutout_mask(n, h, w, size, generator, x.device)
    return x.masked_fill(mask.unsqueeze(1), 0)


def augment_batch(x: torch.Tensor, cfg_augment, generator: torch.Generator) -> torch.Tensor:
    """The run's training augmentation, in the usual order: shift, flip, then cutout."""
    x = random_shift(x, int(cfg_augment.shift), generator)
    if cfg_augment.flip:
        x = random_flip(x, generator)
    return cutout(x, int(cfg_augment.cutout), generator)


def is_active(cfg_augment) -> bool:
    return bool(cfg_augment.shift or cfg_augment.flip or cfg_augment.cutout)
