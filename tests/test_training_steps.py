"""The run's steps on their own: step counts, batch orders, the divergence check, the epoch of
steps, resuming and choosing the epoch a run reports."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from study.errors import ConfigError
from study.training import loop, results
from study.training.batches import non_iid_order
from study.training.checkpoint import BestEpoch
from study.training.parts import Progress
from study.training.run import batch_order_fn, count_steps

CPU = torch.device("cpu")
LABELS = torch.arange(1000) % 10  # 100 images of each of 10 classes


def train_cfg(**fields):
    return OmegaConf.create({"batch_size": 32, "batches": "iid", "classes_per_batch": 2, **fields})


def test_iid_epochs_take_only_full_batches():
    assert count_steps(LABELS, train_cfg(), CPU) == 31  # 1000 // 32, the last 8 images dropped


def test_non_iid_epochs_lose_the_images_that_do_not_fill_a_class_chunk():
    # Chunks of 32 / 2 = 16 images: 6 per class (96 of its 100 images), 60 chunks, 30 batches.
    assert count_steps(LABELS, train_cfg(batches="non_iid"), CPU) == 30


def test_a_batch_larger_than_the_training_set_is_a_config_error():
    with pytest.raises(ConfigError, match="train.batch_size=2000 exceeds the 1000"):
        count_steps(LABELS, train_cfg(batch_size=2000), CPU)


def test_batch_order_draws_from_the_runs_generator():
    order = batch_order_fn(LABELS, train_cfg(batches="non_iid"))
    drawn = order(torch.Generator().manual_seed(3))
    assert torch.equal(drawn, non_iid_order(LABELS, 32, 2, torch.Generator().manual_seed(3)))
    iid = batch_order_fn(LABELS, train_cfg())(torch.Generator().manual_seed(3))
    assert len(iid) == 31 * 32 and len(set(iid.tolist())) == 31 * 32


def test_first_diverged_finds_the_first_loss_not_finite_or_above_the_limit():
    limit = 10 * math.log(10)  # diverge_factor 10 with 10 classes
    assert loop.first_diverged(torch.tensor([2.3, 1.9, 1.2]), limit) is None
    assert loop.first_diverged(torch.tensor([2.3, 24.0, math.nan]), limit) == 1
    assert loop.first_diverged(torch.tensor([2.3, math.inf, 40.0]), limit) == 1
    assert loop.first_diverged(torch.tensor([math.nan]), limit) == 0


def test_the_gpu_checks_every_50_steps_and_at_the_end_of_the_epoch():
    cuda = torch.device("cuda")
    assert [i for i in range(120) if loop.check_due(cuda, i, 120)] == [49, 99, 119]
    assert all(loop.check_due(CPU, i, 120) for i in range(120))


def scripted_epoch(monkeypatch, losses, step=20):
    """An epoch of ``len(losses)`` steps whose training losses are ``losses``."""
    scripted = iter(losses)
    monkeypatch.setattr(loop, "training_batch", lambda parts, idx: (idx, idx))
    monkeypatch.setattr(loop, "set_learning_rate", lambda parts, step: 0.1)
    monkeypatch.setattr(
        loop, "train_step", lambda parts, xb, yb: (torch.tensor(next(scripted)), torch.tensor(3))
    )  # every batch: 3 of its 4 images right
    parts = SimpleNamespace(
        model=torch.nn.Linear(1, 1), generator=None, device=CPU, diverge_at=5.0,
        batch_order=lambda generator: torch.arange(4 * len(losses)),
        steps_per_epoch=len(losses), batch_size=4,
        cfg=OmegaConf.create({"optim": {"name": "sgd"}}), optimizer=None,
    )  # fmt: skip
    progress = Progress(best=BestEpoch(False, 1), step=step)
    return loop.train_epoch(parts, progress), progress


def test_an_epoch_stops_at_its_first_divergent_step(monkeypatch):
    diverged, progress = scripted_epoch(monkeypatch, [2.0, 1.5, 1.2, 7.0, 1.0, math.nan])
    assert diverged == (23, 7.0)  # the run's step 23: the epoch started after step 20
    assert progress.step == 24  # no step after the divergent one was taken
    assert progress.lr == 0.1


def test_an_epoch_below_the_limit_runs_all_its_steps_and_averages_its_training_scores(
    monkeypatch,
):
    scores, progress = scripted_epoch(monkeypatch, [2.0, 1.5, 1.2, 1.0], step=0)
    assert progress.step == 4
    assert scores["train_loss"] == pytest.approx(1.425)  # the mean of the steps' losses
    assert scores["train_acc"] == 0.75  # 12 of the epoch's 16 images


def test_progress_resumes_after_the_checkpointed_epoch():
    saved = Progress(best=BestEpoch(True, 2), history=[{"epoch": 1}, {"epoch": 2}], train_s=3.0)
    saved.best.epoch, saved.best.val_loss = 2, 0.5
    resumed = Progress(best=BestEpoch(True, 2))
    resumed.load_state_dict(saved.state_dict(epoch=2), steps_per_epoch=7)
    assert resumed.start_epoch == 3 and resumed.step == 14
    assert resumed.history == saved.history and resumed.train_s == 3.0
    assert resumed.best.epoch == 2 and resumed.best.val_loss == 0.5


def reporting(monkeypatch, model, best, history, **progress):
    """The final scores of a run whose model is ``model``; the scores say which weight the
    model had when it was scored."""

    def scored(parts, names=("train", "val", "test")):
        w = float(parts.model.weight.detach())
        return {**{f"{n}_{m}": w for n in names for m in ("loss", "acc")}, "eval_seconds": 0.5}

    monkeypatch.setattr(results.evaluation, "evaluate_splits", scored)
    run = Progress(best=best, history=[dict(row) for row in history], **progress)
    return results.final_scores(SimpleNamespace(model=model), run), run


def test_a_diverged_run_reports_the_model_at_divergence_never_an_earlier_best(monkeypatch):
    model = torch.nn.Linear(1, 1)
    best = BestEpoch(early_stopping=True, patience=3)
    with torch.no_grad():
        model.weight.fill_(1.0)
    best.update(1, 0.4, model)  # epoch 1's weights are kept as the best
    with torch.no_grad():
        model.weight.fill_(2.0)  # the weights at divergence (in epoch 3)
    history = [
        {"epoch": 1, "step": 10, "val_loss": 0.4, "val_acc": 0.9},
        {"epoch": 2, "step": 20, "val_loss": 0.6, "val_acc": 0.8},
    ]
    final, run = reporting(monkeypatch, model, best, history, status="diverged", diverged_step=23)
    assert final["test_acc"] == 2.0 and final["weights"] == "diverged"
    assert float(model.weight.detach()) == 2.0  # model.pt gets the diverged weights
    assert "test_acc" not in run.history[1]  # no epoch row is the diverged model's
    assert run.eval_s == 0.5


def test_early_stopping_reports_the_restored_best_epoch_and_tests_only_it(monkeypatch):
    model = torch.nn.Linear(1, 1)
    best = BestEpoch(early_stopping=True, patience=3)
    with torch.no_grad():
        model.weight.fill_(1.0)
    best.update(1, 0.4, model)
    with torch.no_grad():
        model.weight.fill_(2.0)
    history = [
        {"epoch": 1, "step": 10, "val_loss": 0.4, "val_acc": 0.9},
        {"epoch": 2, "step": 20, "val_loss": 0.6, "val_acc": 0.8},
    ]
    final, run = reporting(monkeypatch, model, best, history)
    assert final["test_acc"] == 1.0 and final["weights"] == "final"
    assert final["val_loss"] == 0.4  # the epoch row's: the same weights were scored then
    assert float(model.weight.detach()) == 1.0  # restored
    assert run.history[0]["test_acc"] == 1.0 and "test_acc" not in run.history[1]


def test_without_early_stopping_the_last_epoch_is_reported(monkeypatch):
    model = torch.nn.Linear(1, 1)
    best = BestEpoch(early_stopping=False, patience=3)
    with torch.no_grad():
        model.weight.fill_(3.0)
    best.update(1, 0.4, model)
    history = [
        {"epoch": 1, "step": 10, "val_loss": 0.4, "val_acc": 0.9},
        {"epoch": 2, "step": 20, "val_loss": 0.6, "val_acc": 0.8},
    ]
    final, run = reporting(monkeypatch, model, best, history)
    assert final["test_acc"] == 3.0 and run.history[1]["test_acc"] == 3.0


def block_parts(augment=None, steps=20, batch_size=4):
    """Parts enough for epoch_batches: 2 blocks (16 + 4 steps) of uint8 images."""
    gen = torch.Generator().manual_seed(0)
    n = steps * batch_size + 3  # the last 3 images fill no batch
    splits = SimpleNamespace(
        train_x=torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=gen),
        train_y=torch.arange(n) % 10, mean=(0.5,), std=(0.25,),
    )  # fmt: skip
    return SimpleNamespace(
        splits=splits, augment=augment, generator=torch.Generator().manual_seed(1),
        memory_format=torch.contiguous_format, steps_per_epoch=steps, batch_size=batch_size,
    )  # fmt: skip


def test_batches_prepared_in_blocks_are_the_batches_prepared_one_by_one():
    parts, order = block_parts(), torch.randperm(83)
    batches = list(loop.epoch_batches(parts, order))
    assert len(batches) == 20 and loop.BATCHES_PER_BLOCK == 16
    for i, (xb, yb) in enumerate(batches):
        x1, y1 = loop.training_batch(parts, order[i * 4 : (i + 1) * 4])
        assert torch.equal(xb, x1) and torch.equal(yb, y1), i


def test_augmented_blocks_draw_each_images_augmentation_in_block_order():
    from study.components.augmentations import TrainingAugmentation, augment_batch
    from study.components.data import normalize

    augment = OmegaConf.create({"shift": 2, "flip": True, "cutout": 3})
    parts, order = block_parts(), torch.randperm(83)
    parts.augment = TrainingAugmentation(parts.splits.train_x, augment)
    got = torch.cat([xb for xb, _ in loop.epoch_batches(parts, order)])
    gen, x = torch.Generator().manual_seed(1), parts.splits.train_x
    expected = torch.cat(
        [normalize(augment_batch(x[order[a:b]], augment, gen), (0.5,), (0.25,)) for a, b in
         ((0, 64), (64, 80))]
    )  # fmt: skip
    assert torch.equal(got, expected)
    plain = normalize(x[order[:80]], (0.5,), (0.25,))
    changed = (got != plain).flatten(1).any(1)
    assert changed.float().mean() > 0.9  # nearly every image moved, flipped or cut
