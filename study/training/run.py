"""One training run as named steps: set up, build, resume, train, evaluate, write.

A run is a pure function of its composed config and seed: the data split is fixed, the model's
initialization and every random draw (batch order, augmentation, dropout masks) come from seeded
generators, so the same config on the same machine gives the same numbers.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from study.components.augmentations import TrainingAugmentation, is_active
from study.components.data import load_splits
from study.components.models import MODELS, build_model
from study.components.optimizers import OPTIMIZERS, build_optimizer
from study.components.regularizers import loss_penalties
from study.components.schedules import schedule_fn
from study.config import ConfigError, config_hash, validate
from study.training.batches import iid_order, non_iid_order
from study.training.checkpoint import BestEpoch, Checkpoint
from study.training.loop import train_epochs
from study.training.parts import Progress, RunParts
from study.training.results import assemble_metrics, final_scores, write_run

log = logging.getLogger("study.train")


def train_run(cfg: DictConfig) -> dict:
    """Train (validation every epoch), score the reported model, write the run folder; returns
    the metrics."""
    wall_start = time.perf_counter()
    device = setup(cfg)
    parts = build(cfg, device)
    progress = resume(parts)
    log.info(
        "%s/%s seed %d: %s (%d parameters) on %d %s images, %d epochs × %d steps, %s at lr %g",
        cfg.run.ablation, cfg.run.variant, cfg.seed, cfg.model.name, parts.n_params,
        len(parts.splits.train_y), cfg.data.name, parts.epochs, parts.steps_per_epoch,
        cfg.optim.name, parts.base_lr,
    )  # fmt: skip
    train_epochs(parts, progress)
    final = final_scores(parts, progress)
    metrics = assemble_metrics(parts, progress, final, time.perf_counter() - wall_start)
    write_run(parts, progress.history, metrics)
    parts.checkpoint.remove()
    nan = math.nan
    log.info(
        "%s: test acc %.4f, val loss %.4f (best epoch %s), %.1f s",
        metrics["status"], metrics["test_acc"] or nan, metrics["val_loss"] or nan,
        metrics["best_epoch"], metrics["wall_s"],
    )  # fmt: skip
    return metrics


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible; use device=cpu or auto")
    return torch.device(name)


def apply_tuned_lr(cfg: DictConfig) -> None:
    """Take the value chosen on the validation split by the ablation's tuning step: the learning
    rate, or whichever key the variant searched (``key`` and ``chosen`` of its selection).

    ``<selection.json>@<entry>`` takes another variant's entry (an ablation that reuses another
    one's tuning, ``tuned_from``); without ``@<entry>`` it is the run's own variant's."""
    path, name = Path(cfg.train.lr_from), cfg.run.variant
    head, sep, tail = str(cfg.train.lr_from).rpartition("@")
    if sep and "/" not in tail:  # an "@" inside a folder name is part of the path
        path, name = Path(head), tail
    try:
        entry = json.loads(path.read_text())[name]
        key = entry.get("key", "optim.lr")
        value = entry["chosen"] if "chosen" in entry else float(entry["lr"])
        OmegaConf.update(cfg, key, value, merge=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(
            f"train.lr_from={path}: no tuned value for variant {name!r} "
            f"({type(err).__name__}); rerun the tuning step"
        ) from None


def setup(cfg: DictConfig) -> torch.device:
    """Tuned learning rate, validation, the run folder without a stale result, threads, device
    and deterministic kernels; returns the device."""
    if cfg.train.lr_from:
        apply_tuned_lr(cfg)
    validate(cfg)
    out = Path(cfg.run.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)  # a stale result must not outlive a rerun
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if device.type == "cuda":
        # Same config, same numbers on a GPU too: deterministic kernels, no autotuning.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    return device


def count_steps(train_y: torch.Tensor, train_cfg, device: torch.device) -> int:
    """Optimizer steps per epoch: full batches only. Non-i.i.d. batches lose the images that do
    not fill a class chunk; their count is the same every epoch, so a fixed draw measures it."""
    n_train, batch_size = len(train_y), train_cfg.batch_size
    if n_train < batch_size:
        raise ConfigError(
            f"train.batch_size={batch_size} exceeds the {n_train} training images; lower it"
        )
    if train_cfg.batches != "non_iid":
        return n_train // batch_size
    probe = torch.Generator(device=device).manual_seed(0)
    order = non_iid_order(train_y, batch_size, train_cfg.classes_per_batch, probe)
    return len(order) // batch_size


def batch_order_fn(train_y: torch.Tensor, train_cfg):
    """The epoch's batch order as a function of the run's generator."""
    if train_cfg.batches == "non_iid":
        return functools.partial(
            non_iid_order, train_y, train_cfg.batch_size, train_cfg.classes_per_batch
        )
    return functools.partial(iid_order, len(train_y), train_cfg.batch_size)


def build(cfg: DictConfig, device: torch.device) -> RunParts:
    """Data splits, seeded generators, model, optimizer, step counts and schedule."""
    splits = load_splits(cfg.data, cfg.run.get("cache")).to(device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the model's initialization and dropout masks
    model = build_model(cfg.model, splits.in_shape, splits.n_classes).to(device)
    # channels_last lets cuDNN pick its fastest convolution kernels on tensor-core GPUs.
    channels_last = device.type == "cuda" and MODELS.get(cfg.model.name).channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = build_optimizer(cfg.optim, model)
    steps_per_epoch = count_steps(splits.train_y, cfg.train, device)
    epochs = min(cfg.train.epochs, cfg.train.max_epochs or cfg.train.epochs)
    out, digest = Path(cfg.run.out), config_hash(cfg)
    return RunParts(
        cfg=cfg,
        out=out,
        device=device,
        digest=digest,
        splits=splits,
        model=model,
        optimizer=optimizer,
        generator=generator,
        batch_order=batch_order_fn(splits.train_y, cfg.train),
        batch_size=cfg.train.batch_size,
        augment=TrainingAugmentation(splits.train_x, cfg.augment)
        if is_active(cfg.augment)
        else None,
        lr_factor=schedule_fn(steps_per_epoch * epochs, steps_per_epoch, cfg.schedule),
        base_lr=float(cfg.optim.lr),
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        needs_closure=OPTIMIZERS.get(cfg.optim.name).needs_closure,
        progress_aware=any(hasattr(m, "set_progress") for m in model.modules()),
        penalties=loss_penalties(cfg),
        memory_format=memory_format,
        precision=cfg.train.precision,
        # A loss this far above chance level (ln C) means the run has left any sensible basin.
        diverge_at=cfg.train.diverge_factor * math.log(splits.n_classes),
        checkpoint=Checkpoint(out, cfg.train.checkpoint, digest),
    )


def resume(parts: RunParts) -> Progress:
    """The progress of an earlier, interrupted job of the same config, or a fresh start."""
    progress = Progress(best=BestEpoch(parts.cfg.train.early_stopping, parts.cfg.train.patience))
    state = parts.checkpoint.load()
    if state:
        parts.load_state_dict(state)
        progress.load_state_dict(state, parts.steps_per_epoch)
        log.info("resumed from %s at epoch %d", parts.checkpoint.path, progress.start_epoch)
    return progress
