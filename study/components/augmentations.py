"""Batched data augmentation on uint8 image tensors: random shift, horizontal flip, cutout.

Every transform acts on a whole N×C×H×W batch at once with index arithmetic, on whatever device
the batch lives on; randomness comes from the run's own ``torch.Generator`` so a run is a pure
function of its seed. Augmentation is applied to training batches only, never at evaluation.
"""

from __future__ import annotations

import torch

from study.components.checks import BOOLEAN, check_rules, int_at_least


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
    """The run's training augmentation, in the usual order: shift, flip, then cutout.

    The same images as ``cutout(random_flip(random_shift(x)))`` with the same generator (the
    random draws happen in the same order; a test checks it), but as one gather from the padded
    batch and one multiply: about 3x faster, which matters at batch 128 on a CPU.
    """
    shift, size = int(cfg_augment.shift), int(cfg_augment.cutout)
    n, c, h, w = x.shape
    device = x.device
    if shift > 0:
        offsets = torch.randint(0, 2 * shift + 1, (2, n, 1), generator=generator, device=device)
        dy, dx = offsets[0], offsets[1]
    else:
        dy = dx = torch.zeros(n, 1, dtype=torch.long, device=device)
    cols = torch.arange(w, device=device)
    if cfg_augment.flip:
        flip = torch.rand(n, generator=generator, device=device) < 0.5
        cols = torch.where(flip.view(n, 1), w - 1 - cols, cols)
    padded_w = w + 2 * shift
    index = ((dy + torch.arange(h, device=device)) * padded_w).unsqueeze(2) + (dx + cols).unsqueeze(
        1
    )
    padded = torch.nn.functional.pad(x, (shift,) * 4) if shift > 0 else x
    out = padded.reshape(n, c, -1).gather(2, index.view(n, 1, h * w).expand(n, c, h * w))
    out = out.view(n, c, h, w)
    if size > 0:
        keep = ~cutout_mask(n, h, w, size, generator, device)
        out = out * keep.unsqueeze(1).to(out.dtype)
    return out


def is_active(cfg_augment) -> bool:
    return bool(cfg_augment.shift or cfg_augment.flip or cfg_augment.cutout)


CONFIG_RULES = {
    "augment.shift": int_at_least(0),
    "augment.flip": BOOLEAN,
    "augment.cutout": int_at_least(0),
}


def validate_config(cfg) -> None:
    """Check the ``augment`` keys."""
    check_rules(cfg, CONFIG_RULES)
