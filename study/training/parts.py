"""What a run is made of (built once) and how far it has come (changes every epoch).

Both hand their state to the epoch checkpoint, so a preempted job resumes with the model,
optimizer, random generators, history and timings of the epoch it stopped after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from study.components.augmentations import TrainingAugmentation
from study.training.checkpoint import BestEpoch, Checkpoint


@dataclass
class RunParts:
    """The run's data, model, optimizer and schedule, and the settings the steps read (resolved
    once: a config lookup per step would cost more than a small model's step)."""

    cfg: DictConfig
    out: Path
    device: torch.device
    digest: str  # the config hash: a checkpoint of another config is not resumed
    splits: object  # study.components.data.Splits, on ``device``
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # batch order and augmentation draws
    batch_order: Callable[[torch.Generator], torch.Tensor]  # one epoch's image indices
    batch_size: int
    augment: TrainingAugmentation | None  # None when no augmentation is active
    lr_factor: Callable[[int], float]  # the schedule, step -> factor of ``base_lr``
    base_lr: float
    steps_per_epoch: int
    epochs: int
    needs_closure: bool  # the optimizer re-evaluates the loss itself (L-BFGS line search)
    progress_aware: bool  # some layer anneals over the run (``set_progress``)
    penalties: dict[str, float]  # loss penalty → strength, the ones switched on
    memory_format: torch.memory_format
    precision: str  # fp32 | bf16 (autocast)
    diverge_at: float  # a training loss above this (or not finite) ends the run as diverged
    checkpoint: Checkpoint

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def eval_n(self) -> int:
        """Training images scored each epoch (the train columns of the history)."""
        return min(self.cfg.train.eval_train_max, len(self.splits.train_y))

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])


@dataclass
class Progress:
    """Epochs done so far: their history rows, the best epoch, the outcome and the seconds."""

    best: BestEpoch
    history: list[dict] = field(default_factory=list)
    status: str = "ok"  # ok | diverged | stopped_early
    diverged_step: int | None = None
    train_s: float = 0.0
    eval_s: float = 0.0
    start_epoch: int = 1  # the first epoch this job trains (after a resume, not 1)
    step: int = 0  # optimizer steps taken, over all epochs
    lr: float | None = None  # the last step's learning rate

    def state_dict(self, epoch: int) -> dict:
        return {
            "history": self.history,
            "best": self.best.state_dict(),
            "train_s": self.train_s,
            "eval_s": self.eval_s,
            "epoch": epoch,
        }

    def load_state_dict(self, state: dict, steps_per_epoch: int) -> None:
        self.history = state["history"]
        self.best.load_state_dict(state["best"])
        self.train_s, self.eval_s = state["train_s"], state["eval_s"]
        self.start_epoch = state["epoch"] + 1
        self.step = state["epoch"] * steps_per_epoch
