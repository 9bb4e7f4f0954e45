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
def cutout_keep_table(h: int, w: int, size: int, device: torch.device) -> torch.Tensor:
    """Row ``cy·w + cx``: the uint8 keep-mask (0 inside the square) of a cutout centred at
    (cy, cx), for every centre: the masks of :func:`cutout_mask`, made once per run."""
    cy = torch.arange(h, device=device).repeat_interleave(w)
    cx = torch.arange(w, device=device).repeat(h)
    erased = cutout_mask_at(cy.view(-1, 1, 1), cx.view(-1, 1, 1), h, w, size, device)
    return (~erased).to(torch.uint8).view(h * w, h * w)


class TrainingAugmentation:
    """The run's training augmentation over its training images, in the usual order: shift,
    flip, then cutout.

    ``augmentation(idx, generator)`` gives the same images as
    ``cutout(random_flip(random_shift(images[idx])))`` with the same generator (the random draws
    happen in the same order and shapes; a test checks it), but with one ``index_select`` and one
    multiply. Once per run the images are zero-padded by the shift and stored twice, as they are
    and mirrored; every output row of a shifted (and mirrored) image is then a ``w``-pixel slice
    of that store at a start computed from the draws, and :meth:`torch.Tensor.unfold` makes all
    such slices rows of one view. The cutout multiplies by masks picked from
    :func:`cutout_keep_table`. A per-pixel gather index (the previous form) was 8 bytes per pixel
    and several times slower; with it the augmentation cost 3-4% of a training step on a CPU.
    """

    def __init__(self, images: torch.Tensor, cfg_augment):
        self.shift, self.flip = int(cfg_augment.shift), bool(cfg_augment.flip)
        self.size = int(cfg_augment.cutout)
        self.n_images, self.c, self.h, self.w = images.shape
        s = self.shift
        padded = torch.nn.functional.pad(images, (s,) * 4) if s > 0 else images
        # Mirroring after the crop equals cropping the mirrored image at the mirrored column.
        store = torch.cat([padded, padded.flip(-1)]) if self.flip else padded.contiguous()
        self.store = store  # keeps the storage of the view below alive
        self.rows = store.view(-1).unfold(0, self.w, 1)  # row r: the w pixels from flat index r
        device = images.device
        plane = (self.h + 2 * s) * (self.w + 2 * s)
        # Flat start of output row i of channel ch of stored image m, before the draws' offsets.
        self.row_start = torch.arange(self.c, device=device).view(
            1, self.c, 1
        ) * plane + torch.arange(self.h, device=device).view(1, 1, self.h) * (self.w + 2 * s)
        self.image_stride = self.c * plane

    def __call__(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, s, h, w = len(idx), self.shift, self.h, self.w
        device = idx.device
        image = idx
        offset = torch.zeros(n, dtype=torch.long, device=device)
        if s > 0:
            dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=generator, device=device)
        if self.flip:
            mirrored = torch.rand(n, generator=generator, device=device) < 0.5
            image = idx + mirrored * self.n_images
            if s > 0:
                dx = torch.where(mirrored, 2 * s - dx, dx)
        if s > 0:
            offset = dy * (w + 2 * s) + dx
        starts = (image * self.image_stride + offset).view(n, 1, 1) + self.row_start
        out = self.rows.index_select(0, starts.view(-1)).view(n, self.c, h, w)
        if self.size > 0:
            cy = torch.randint(0, h, (n,), generator=generator, device=device)
            cx = torch.randint(0, w, (n,), generator=generator, device=device)
            keep = cutout_keep_table(h, w, self.size, device).index_select(0, cy * w + cx)
            out.mul_(keep.view(n, 1, h, w))
        return out


def augment_batch(x: torch.Tensor, cfg_augment, generator: torch.Generator) -> torch.Tensor:
    """:class:`TrainingAugmentation` of one batch ``x``; a run builds the class once instead."""
    index = torch.arange(len(x), device=x.device)
    return TrainingAugmentation(x, cfg_augment)(index, generator)


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
