"""The epochs of a run: steps, the divergence check, evaluation, early stopping, checkpoints."""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.nn.functional as F

from study.components.data import normalize
from study.components.layers import set_progress
from study.components.optimizers import OPTIMIZERS
from study.components.regularizers import penalty
from study.training import evaluation
from study.training.parts import Progress, RunParts

log = logging.getLogger("study.train")

# On a GPU a divergence check syncs with the host, so it looks back over this many steps at once.
GPU_CHECK_EVERY = 50

# The training images of this many steps are gathered, augmented and normalized in one go. Per
# step, preparing the batch pushed the model's weights out of the CPU's caches: a step with
# freshly augmented data took 8-10% longer than one on pre-made batches; in blocks of 16 the gap
# is a few percent at most (benchmarks.throughput), and a block of 16 batches stays small
# (16 × 128 × 3×32×32 float32 is 25 MB) where a whole epoch would not.
BATCHES_PER_BLOCK = 16


def first_diverged(losses: torch.Tensor, limit: float) -> int | None:
    """Index of the first loss that is not finite or above ``limit``, or None."""
    bad = ~torch.isfinite(losses) | (losses > limit)
    return int(bad.nonzero()[0]) if bool(bad.any()) else None


def check_due(device: torch.device, i: int, steps: int) -> bool:
    """On the CPU a check per step is free; on a GPU only every ``GPU_CHECK_EVERY`` steps."""
    return device.type == "cpu" or i % GPU_CHECK_EVERY == GPU_CHECK_EVERY - 1 or i == steps - 1


def training_batch(parts: RunParts, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (augmented, normalized, in the model's memory format) and labels of ``idx``: one
    batch, or a block of consecutive batches (each image's augmentation is drawn on its own)."""
    splits = parts.splits
    if parts.augment is not None:
        xb = parts.augment(idx, parts.generator)
    else:
        xb = splits.train_x.index_select(0, idx)
    xb = normalize(xb, splits.mean, splits.std).contiguous(memory_format=parts.memory_format)
    return xb, splits.train_y.index_select(0, idx)


def epoch_batches(parts: RunParts, order: torch.Tensor):
    """The epoch's (images, labels) batches in ``order``, prepared ``BATCHES_PER_BLOCK`` at a
    time and handed out as views of their block."""
    steps, batch_size = parts.steps_per_epoch, parts.batch_size
    for start in range(0, steps, BATCHES_PER_BLOCK):
        stop = min(start + BATCHES_PER_BLOCK, steps)
        xs, ys = training_batch(parts, order[start * batch_size : stop * batch_size])
        yield from zip(xs.split(batch_size), ys.split(batch_size), strict=True)


def set_learning_rate(parts: RunParts, step: int) -> float:
    lr = parts.base_lr * parts.lr_factor(step)
    for group in parts.optimizer.param_groups:
        group["lr"] = lr
    if parts.progress_aware:
        set_progress(parts.model, step, parts.total_steps)  # layers annealed over the run
    return lr


# --------------------------------------------------------------------------------------------
# Optimizers whose evaluated weights differ from the trained ones (schedule-free: an average of
# the iterates) say so through their OptimizerSpec; the loop switches them here and nowhere else.
# --------------------------------------------------------------------------------------------


def switch_optimizer_mode(parts: RunParts, training: bool) -> None:
    """Before training: the weights the gradient is taken at; before evaluating: the ones that
    are evaluated, checkpointed and reported. A no-op for optimizers without such a switch."""
    spec = OPTIMIZERS.get(parts.cfg.optim.name)
    switch = spec.train_mode if training else spec.eval_mode
    if switch is not None:
        switch(parts.optimizer)


def train_step(
    parts: RunParts, xb: torch.Tensor, yb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on one batch; returns the batch's cross-entropy (without penalty) and
    its number of correct predictions, both as tensors on the device (no host sync)."""
    model, optimizer, penalties = parts.model, parts.optimizer, parts.penalties

    def closure():
        optimizer.zero_grad(set_to_none=True)
        with evaluation.autocast(parts.device, parts.precision):
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), yb)
        objective = loss + penalty(model, **penalties) if penalties else loss
        objective.backward()
        closure.loss = loss.detach()
        closure.correct = (logits.detach().argmax(1) == yb).sum()
        return objective

    if parts.needs_closure:
        optimizer.step(closure)  # evaluates the loss as often as its line search needs
    else:
        closure()
        optimizer.step()
    return closure.loss, closure.correct


def train_epoch(parts: RunParts, progress: Progress) -> tuple[int, float] | dict:
    """One epoch of steps. On divergence, stops and returns (run step, loss) of the first bad
    step (a loss not finite or above ``diverge_at``); else the epoch's training loss and accuracy
    as running averages over its steps (free: the steps computed them; train mode, so with
    dropout and augmentation, as in the training objective)."""
    parts.model.train()
    switch_optimizer_mode(parts, training=True)
    order = parts.batch_order(parts.generator)
    steps, batch_size = parts.steps_per_epoch, parts.batch_size
    losses = torch.empty(steps, device=parts.device)
    correct = torch.zeros((), dtype=torch.long, device=parts.device)
    checked, first_step = 0, progress.step
    on_cpu = parts.device.type == "cpu"
    for i, (xb, yb) in enumerate(epoch_batches(parts, order)):
        progress.lr = set_learning_rate(parts, progress.step)
        loss, batch_correct = train_step(parts, xb, yb)
        losses[i] = loss
        correct += batch_correct
        progress.step += 1
        if on_cpu:
            # One float comparison instead of five tensor ops: NaN fails ``<=`` as it must.
            value = float(loss)
            if not value <= parts.diverge_at:
                return progress.step - 1, value
            continue
        if check_due(parts.device, i, steps):
            bad = first_diverged(losses[checked : i + 1], parts.diverge_at)
            if bad is not None:
                return first_step + checked + bad, float(losses[checked + bad])
            checked = i + 1
    return {"train_loss": float(losses.mean()), "train_acc": int(correct) / (steps * batch_size)}


def train_epochs(parts: RunParts, progress: Progress) -> None:
    """Train from ``progress.start_epoch`` until the last epoch, divergence or early stop.

    Each epoch is scored on the validation split only; the test split is scored once, for the
    model the run reports (study.training.results.finish)."""
    for epoch in range(progress.start_epoch, parts.epochs + 1):
        t0 = time.perf_counter()
        outcome = train_epoch(parts, progress)
        epoch_s = time.perf_counter() - t0
        progress.train_s += epoch_s
        if isinstance(outcome, tuple):
            progress.status, progress.diverged_step = "diverged", outcome[0]
            log.warning("diverged at step %d (epoch %d): loss %s", outcome[0], epoch, outcome[1])
            return
        row = {"epoch": epoch, "step": progress.step, "lr": progress.lr, **outcome}
        switch_optimizer_mode(parts, training=False)
        row |= evaluation.evaluate_splits(parts, ("val",))
        row |= {"test_loss": math.nan, "test_acc": math.nan, "seconds": epoch_s}
        progress.eval_s += row["eval_seconds"]
        progress.history.append(row)
        log.info(
            "epoch %d/%d  train %.4f/%.3f  val %.4f/%.3f  %.1fs (+%.1fs eval)",
            epoch, parts.epochs, row["train_loss"], row["train_acc"], row["val_loss"],
            row["val_acc"], epoch_s, row["eval_seconds"],
        )  # fmt: skip
        if not math.isfinite(row["val_loss"]):
            progress.status, progress.diverged_step = "diverged", progress.step
            return
        if progress.best.update(epoch, row["val_loss"], parts.model):
            progress.status = "stopped_early"
            log.info("early stop: no lower validation loss for %d epochs", progress.best.patience)
            return
        parts.checkpoint.save(**parts.state_dict(), **progress.state_dict(epoch))
