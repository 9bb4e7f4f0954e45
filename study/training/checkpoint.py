"""Run state that outlives an epoch: the best validation epoch (early stopping) and the epoch
checkpoint a preempted job resumes from."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from study.outputs import atomic_path

log = logging.getLogger("study.train")


class BestEpoch:
    """Tracks the epoch with the lowest validation loss; with early stopping, also its weights.

    ``update`` returns True when training should stop: ``patience`` epochs have passed without a
    lower validation loss. ``restore`` then loads the best epoch's weights (Prechelt 1998).
    """

    def __init__(self, early_stopping: bool, patience: int):
        self.early_stopping = early_stopping
        self.patience = patience
        self.epoch = 0
        self.val_loss = math.inf
        self.state = None

    def update(self, epoch: int, val_loss: float, model) -> bool:
        if val_loss < self.val_loss:
            self.epoch, self.val_loss = epoch, val_loss
            if self.early_stopping:
                self.state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            return False
        return self.early_stopping and epoch - self.epoch >= self.patience

    def restore(self, model) -> bool:
        if self.state is None:
            return False
        model.load_state_dict(self.state)
        return True

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "val_loss": self.val_loss, "state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.val_loss, self.state = state["epoch"], state["val_loss"], state["state"]


class Checkpoint:
    """Epoch checkpoint for long runs: a preempted job continues where it stopped, with every
    random generator restored, so the resumed run gives the numbers an uninterrupted one would."""

    def __init__(self, out: Path, enabled: bool, digest: str):
        self.path = out / "checkpoint.pt"
        self.enabled = enabled
        self.digest = digest

    def load(self):
        if not (self.enabled and self.path.is_file()):
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("config_hash") != self.digest:
            log.warning("ignoring %s: written by a different config", self.path)
            return None
        return state

    def save(self, **state) -> None:
        if self.enabled:
            state["config_hash"] = self.digest
            with atomic_path(self.path) as tmp:
                torch.save(state, tmp)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
