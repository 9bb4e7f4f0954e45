"""The run's steps on their own: step counts, batch orders, the divergence check, the epoch of
steps, resuming and choosing the epoch a run reports."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from study.errors import ConfigError
from study.training import loop
from study.training.batches import non_iid_order
from study.training.checkpoint import BestEpoch
from study.training.parts import Progress
from study.training.results import select_final_epoch
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
    monkeypatch.setattr(loop, "train_step", lambda parts, xb, yb: torch.tensor(next(scripted)))
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


def test_an_epoch_below_the_limit_runs_all_its_steps(monkeypatch):
    diverged, progress = scripted_epoch(monkeypatch, [2.0, 1.5, 1.2, 1.0], step=0)
    assert diverged is None and progress.step == 4


def test_progress_resumes_after_the_checkpointed_epoch():
    saved = Progress(best=BestEpoch(True, 2), history=[{"epoch": 1}, {"epoch": 2}], train_s=3.0)
    saved.best.epoch, saved.best.val_loss = 2, 0.5
    resumed = Progress(best=BestEpoch(True, 2))
    resumed.load_state_dict(saved.state_dict(epoch=2), steps_per_epoch=7)
    assert resumed.start_epoch == 3 and resumed.step == 14
    assert resumed.history == saved.history and resumed.train_s == 3.0
    assert resumed.best.epoch == 2 and resumed.best.val_loss == 0.5


def test_a_diverged_run_reports_its_last_epoch_and_keeps_its_weights():
    model = torch.nn.Linear(1, 1)
    best = BestEpoch(early_stopping=True, patience=3)
    with torch.no_grad():
        model.weight.fill_(1.0)
    best.update(1, 0.4, model)  # epoch 1's weights are kept as the best
    with torch.no_grad():
        model.weight.fill_(2.0)
    history = [{"epoch": 1, "val_loss": 0.4}, {"epoch": 2, "val_loss": 0.6}]
    parts = SimpleNamespace(model=model)
    diverged = Progress(best=best, history=history, status="diverged")
    assert select_final_epoch(parts, diverged)["epoch"] == 2
    assert float(model.weight.detach()) == 2.0
    finished = Progress(best=best, history=history)
    assert select_final_epoch(parts, finished)["epoch"] == 1  # early stopping: the best epoch
    assert float(model.weight.detach()) == 1.0
