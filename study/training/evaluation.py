"""Scores of a model on the study's splits, and the weight statistics the claims read."""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F

from study.components.data import normalize
from study.components.regularizers import weights


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast when asked for (GPU runs): matmuls in bf16, weights and loss in fp32.
    In fp32 no context at all: a disabled torch.autocast still costs its enter and exit (about
    1.5% of a small model's step on a CPU)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.inference_mode()
def evaluate(
    model, x, y, mean, std, batch_size: int, precision: str = "fp32", memory_format=None
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode (one host sync per split)."""
    model.eval()
    memory_format = memory_format or torch.contiguous_format
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        xb = normalize(x[i : i + batch_size], mean, std).contiguous(memory_format=memory_format)
        with autocast(x.device, precision):
            logits = model(xb).float()
        target = y[i : i + batch_size]
        loss += F.cross_entropy(logits, target, reduction="sum").double()
        correct += (logits.argmax(1) == target).sum()
    n = max(len(x), 1)
    return float(loss) / n, int(correct) / n


def score(parts, split: str) -> tuple[float, float]:
    """Loss and accuracy of the model as it is now on ``split``: train (the first ``eval_n``
    training images, a fixed subset), val or test."""
    splits = parts.splits
    if split == "train":
        x, y = splits.train_x[: parts.eval_n], splits.train_y[: parts.eval_n]
    else:
        x, y = getattr(splits, f"{split}_x"), getattr(splits, f"{split}_y")
    return evaluate(
        parts.model, x, y, splits.mean, splits.std, parts.cfg.train.eval_batch_size,
        parts.precision, parts.memory_format,
    )  # fmt: skip


def evaluate_splits(parts, names=("train", "val", "test")) -> dict:
    """``<split>_loss`` and ``<split>_acc`` of each split in ``names``, and ``eval_seconds``.

    Every epoch needs only the validation split (selection, early stopping); the test split and
    the training subset are scored once, for the model the run reports: scoring all three every
    epoch took a third of a run's time.
    """
    t0 = time.perf_counter()
    scores = {}
    for name in names:
        scores[f"{name}_loss"], scores[f"{name}_acc"] = score(parts, name)
    scores["eval_seconds"] = time.perf_counter() - t0
    return scores


def weight_statistics(model) -> tuple[float, float]:
    """Fraction of weights with |w| < 1e-3 (the L1-sparsity claim) and their total L2 norm."""
    flat = torch.cat([w.detach().flatten().float() for w in weights(model)])
    return float((flat.abs() < 1e-3).float().mean()), float(flat.norm())
