"""Augmentation on uint8 batches: shift, flip, cutout as specified, seeded, never at evaluation."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from study.components.augmentations import (
    augment_batch,
    cutout,
    cutout_mask,
    random_flip,
    random_shift,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_cutout_erases_exactly_the_configured_square_away_from_borders():
    mask = cutout_mask(2000, 28, 28, 8, gen())
    # Centres far from the border give the full 8×8 square; near it the square is clipped.
    areas = mask.sum((1, 2))
    assert int(areas.max()) == 64
    assert int(areas.min()) < 64
    for m in mask[:50]:
        rows, cols = m.nonzero(as_tuple=True)
        if len(rows):
            # The erased region is one axis-aligned rectangle (a square, possibly clipped).
            height = int(rows.max() - rows.min()) + 1
            width = int(cols.max() - cols.min()) + 1
            assert height * width == int(m.sum())
            assert height <= 8 and width <= 8


def test_cutout_centre_is_uniform_over_the_whole_image():
    # DeVries & Taylor 2017: the centre may fall anywhere, so corner pixels are erased too.
    mask = cutout_mask(20000, 28, 28, 8, gen(1))
    centre_hits = mask[:, 14, 14].float().mean()
    corner_hits = mask[:, 0, 0].float().mean()
    assert corner_hits > 0
    # A pixel in the middle is covered when the centre lands in an 8×8 window: p = 64/784.
    assert abs(float(centre_hits) - 64 / 784) < 0.01


def test_cutout_draws_a_different_patch_per_image_and_zeroes_it():
    x = torch.full((16, 1, 28, 28), 200, dtype=torch.uint8)
    out = cutout(x, 8, gen(2))
    zeros = out == 0
    assert not all(torch.equal(zeros[0], zeros[i]) for i in range(1, 16))
    assert torch.all(out[~zeros] == 200)
    assert int(zeros.sum((1, 2, 3)).max()) == 64


def test_cutout_zero_size_is_identity():
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(cutout(x, 0, gen()), x)


def test_shift_moves_content_by_at_most_max_shift_and_pads_with_zeros():
    x = torch.zeros(500, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 14, 14] = 255
    out = random_shift(x, 2, gen(3))
    positions = out[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 28, positions % 28
    assert set(rows.tolist()) == set(range(12, 17))
    assert set(cols.tolist()) == set(range(12, 17))
    assert torch.equal(out.sum((1, 2, 3)), x.sum((1, 2, 3)))  # the one bright pixel survives
    # A pixel on the border is shifted out of the image about half the time, leaving zeros.
    y = torch.zeros(1000, 1, 28, 28, dtype=torch.uint8)
    y[:, :, 0, 0] = 255
    assert 0.6 < float((random_shift(y, 2, gen(4)).sum((1, 2, 3)) == 0).float().mean()) < 0.7


def test_flip_mirrors_about_half_of_the_images():
    x = torch.arange(28, dtype=torch.uint8).repeat(1000, 1, 28, 1)
    out = random_flip(x, gen(5))
    flipped = (out[:, 0, 0, 0] == 27).float().mean()
    assert 0.45 < float(flipped) < 0.55
    assert torch.equal(out[out[:, 0, 0, 0] == 27], x.flip(-1)[out[:, 0, 0, 0] == 27])


def test_augmentation_is_a_pure_function_of_the_generator_seed():
    x = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    cfg = OmegaConf.create({"shift": 2, "flip": True, "cutout": 8})
    assert torch.equal(augment_batch(x, cfg, gen(7)), augment_batch(x, cfg, gen(7)))
    assert not torch.equal(augment_batch(x, cfg, gen(7)), augment_batch(x, cfg, gen(8)))
    assert augment_batch(x, cfg, gen(7)).dtype == torch.uint8


def test_evaluation_never_augments(fashion_cache):
    """evaluate() sees the clean images: its numbers equal a hand-computed clean forward pass."""
    import torch.nn.functional as F

    from study.components.data import make_splits, normalize, read_cache
    from study.training.evaluation import evaluate

    splits = make_splits(read_cache(fashion_cache), n_train=100, n_val=100, n_test=200)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    loss, acc = evaluate(model, splits.test_x, splits.test_y, splits.mean, splits.std, 64)
    with torch.no_grad():
        logits = model(normalize(splits.test_x, splits.mean, splits.std))
    assert abs(loss - float(F.cross_entropy(logits, splits.test_y))) < 1e-5
    assert acc == int((logits.argmax(1) == splits.test_y).sum()) / 200


def test_fused_augmentation_equals_shift_then_flip_then_cutout():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    for shift, flip, size in [
        (2, True, 8),
        (0, True, 0),
        (3, False, 5),
        (0, False, 10),
        (1, True, 0),
    ]:
        cfg = OmegaConf.create({"shift": shift, "flip": flip, "cutout": size})
        g = gen(11)
        expected = random_shift(x, shift, g)
        if flip:
            expected = random_flip(expected, g)
        expected = cutout(expected, size, g)
        fused = gen(11)
        assert torch.equal(augment_batch(x, cfg, fused), expected), (shift, flip, size)
        # The same number of draws: the next batch's order and augmentation do not move either.
        assert torch.equal(fused.get_state(), g.get_state()), (shift, flip, size)
