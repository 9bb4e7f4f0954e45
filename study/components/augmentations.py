"""Batched data augmentation on uint8 image tensors: random shift, horizontal flip, cutout.

Every transform acts on a whole N×C×H×W batch at once with index arithmetic, on whatever device
the batch lives on; randomness comes from the run's own ``torch.Generator`` so a run is a pure
function of its seed. Augmentation is applied to training batches only, never at evaluation.
"""

from __future__ import annotations

import functools

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
    return cutout_mask_at(cy, cx, h, w, size, device)


def cutout_mask_at(cy, cx, h: int, w: int, size: int, device=None) -> torch.Tensor:
    """The erased pixels (True) of squares centred at ``cy``, ``cx`` (each shaped n×1×1)."""
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


@functools.lru_cache(maxsize=16)
def crop_index_table(h: int, w: int, shift: int, device: torch.device) -> torch.Tensor:
    """Row ``(dy·(2·shift+1) + dx)·2 + flip`` holds, for each output pixel, its flat position in
    the zero-padded image: every shift and mirror a batch can draw, made once per run.

    Picking a batch's rows of this table (one small ``index_select``) replaces building the
    n×h×w index with broadcast arithmetic at every step."""
    k, padded_w = 2 * shift + 1, w + 2 * shift
    dy = torch.arange(k, device=device).view(k, 1, 1, 1, 1)
    dx = torch.arange(k, device=device).view(1, k, 1, 1, 1)
    mirrored = torch.arange(2, device=device).view(1, 1, 2, 1, 1) == 1
    ys = torch.arange(h, device=device).view(1, 1, 1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, 1, 1, w)
    cols = torch.where(mirrored, w - 1 - xs, xs)
    return ((dy + ys) * padded_w + dx + cols).reshape(k * k * 2, h * w)


@functools.lru_cache(maxsize=16)
def cutout_keep_table(h: int, w: int, size: int, device: torch.device) -> torch.Tensor:
    """Row ``cy·w + cx``: the uint8 keep-mask (0 inside the square) of a cutout centred at
    (cy, cx), for every centre: the masks of :func:`cutout_mask`, made once per run."""
    cy = torch.arange(h, device=device).repeat_interleave(w)
    cx = torch.arange(w, device=device).repeat(h)
    erased = cutout_mask_at(cy.view(-1, 1, 1), cx.view(-1, 1, 1), h, w, size, device)
    return (~erased).to(torch.uint8).view(h * w, h * w)


def augment_batch(x: torch.Tensor, cfg_augment, generator: torch.Generator) -> torch.Tensor:
    """The run's training augmentation, in the usual order: shift, flip, then cutout.

    The same images as ``cutout(random_flip(random_shift(x)))`` with the same generator (the
    random draws happen in the same order and shapes; a test checks it), but as one gather from
    the padded batch, its index picked from :func:`crop_index_table`, and one multiply by masks
    picked from :func:`cutout_keep_table`. Building the index and the cutout mask per step with
    broadcast comparisons cost 2-3 times the whole lookup version at batch 128 on a CPU (the
    boolean ``&`` of broadcast n×h×w masks alone was a third of it).
    """
    shift, size = int(cfg_augment.shift), int(cfg_augment.cutout)
    n, c, h, w = x.shape
    device = x.device
    out = x
    if shift > 0 or cfg_augment.flip:
        if shift > 0:
            dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=generator, device=device)
            row = (dy * (2 * shift + 1) + dx) * 2
        else:
            row = torch.zeros(n, dtype=torch.long, device=device)
        if cfg_augment.flip:
            row += torch.rand(n, generator=generator, device=device) < 0.5
        index = crop_index_table(h, w, shift, device).index_select(0, row)
        padded = torch.nn.functional.pad(x, (shift,) * 4) if shift > 0 else x
        out = padded.reshape(n, c, -1).gather(2, index.view(n, 1, h * w).expand(n, c, h * w))
        out = out.view(n, c, h, w)
    if size > 0:
        cy = torch.randint(0, h, (n,), generator=generator, device=device)
        cx = torch.randint(0, w, (n,), generator=generator, device=device)
        keep = cutout_keep_table(h, w, size, device).index_select(0, cy * w + cx)
        out = out * keep.view(n, 1, h, w)
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
