"""Scores of a model on the study's splits, and the weight statistics the claims read."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from study.components.data import normalize
from study.components.regularizers import weights


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast when asked for (GPU runs): matmuls in bf16, weights and loss in fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


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


def evaluate_splits(parts) -> dict:
    """Loss and accuracy on the first ``eval_n`` training images, validation and test, and the
    seconds it took, as the history row's columns."""
    splits, cfg = parts.splits, parts.cfg
    t0 = time.perf_counter()
    scores = {}
    for name, x, y in (
        ("train", splits.train_x[: parts.eval_n], splits.train_y[: parts.eval_n]),
        ("val", splits.val_x, splits.val_y),
        ("test", splits.test_x, splits.test_y),
    ):
        scores[f"{name}_loss"], scores[f"{name}_acc"] = evaluate(
            parts.model, x, y, splits.mean, splits.std, cfg.train.eval_batch_size,
            parts.precision, parts.memory_format,
        )  # fmt: skip
    scores["eval_seconds"] = time.perf_counter() - t0
    return scores


def weight_statistics(model) -> tuple[float, float]:
    """Fraction of weights with |w| < 1e-3 (the L1-sparsity claim) and their total L2 norm."""
    flat = torch.cat([w.detach().flatten().float() for w in weights(model)])
    return float((flat.abs() < 1e-3).float().mean()), float(flat.norm())
