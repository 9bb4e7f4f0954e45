"""A run's results: the final epoch, the metrics, and the files of the run folder.

Every file is written atomically, ``metrics.json`` last, so a killed job never leaves a folder
that looks complete.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from omegaconf import OmegaConf

from study.contracts import HISTORY_COLUMNS
from study.outputs import atomic_path, write_text
from study.provenance import git_state, hardware, package_versions
from study.training import evaluation
from study.training.parts import Progress, RunParts

SCORES = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def finite_or_none(value):
    """JSON has no NaN: a diverged run's missing numbers are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_history(path: Path, rows: list[dict]) -> None:
    def fmt(v):
        v = finite_or_none(v)
        return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))

    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(fmt(row[c]) for c in HISTORY_COLUMNS) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def final_scores(parts: RunParts, progress: Progress) -> dict:
    """Scores of the model the run reports, measured once, after training.

    - A diverged run is a failed run: it reports the model at divergence (accuracy near chance,
      a non-finite loss written as null), never an earlier epoch's, and model.pt holds those
      weights (``weights: diverged``).
    - With early stopping the best validation epoch's weights are restored and reported.
    - Otherwise the last epoch's model.

    The reported epoch's history row gets the test scores; every other row leaves them empty.
    """
    best, history = progress.best, progress.history
    diverged = progress.status == "diverged"
    restored = not diverged and best.restore(parts.model)
    row = history[best.epoch - 1] if restored else (history[-1] if history else None)
    if row is not None and diverged and progress.diverged_step != row["step"]:
        row = None  # the model diverged after the last epoch row: no row is its
    # The reported epoch's validation scores are in its row: the same weights, the same numbers.
    final = evaluation.evaluate_splits(
        parts, ("train", "test") if row else ("train", "val", "test")
    )
    progress.eval_s += final.pop("eval_seconds")
    if row is not None:
        final |= {"val_loss": row["val_loss"], "val_acc": row["val_acc"]}
        row["test_loss"], row["test_acc"] = final["test_loss"], final["test_acc"]
    final["weights"] = "diverged" if diverged else "final"
    return final


def assemble_metrics(parts: RunParts, progress: Progress, final: dict, wall_s: float) -> dict:
    """metrics.json's content: scores, outcome, timings, sizes, config and provenance."""
    cfg, best, nan = parts.cfg, progress.best, math.nan
    epochs_run, train_s = len(progress.history), progress.train_s
    sparsity, norm = evaluation.weight_statistics(parts.model)
    best_row = progress.history[best.epoch - 1] if best.epoch else {}
    steps_this_job = progress.step - (progress.start_epoch - 1) * parts.steps_per_epoch
    metrics = {
        "status": progress.status,
        "ablation": cfg.run.ablation,
        "variant": cfg.run.variant,
        "seed": cfg.seed,
        "scale": OmegaConf.select(cfg, "run.scale", default=None),
        **{k: final.get(k, nan) for k in SCORES},
        "gap_acc": final.get("train_acc", nan) - final.get("test_acc", nan),
        "gap_loss": final.get("test_loss", nan) - final.get("train_loss", nan),
        "best_epoch": best.epoch or None,
        "best_val_loss": best_row.get("val_loss", nan),
        "best_val_acc": best_row.get("val_acc", nan),
        "epochs_run": epochs_run,
        "diverged_step": progress.diverged_step,
        "weights": final.get("weights", "final"),
        "wall_s": wall_s,
        "train_s": train_s,
        "eval_s": progress.eval_s,
        "s_per_epoch": train_s / max(epochs_run, 1),
        "images_per_s": steps_this_job * parts.batch_size / train_s if train_s > 0 else nan,
        "n_params": parts.n_params,
        "weight_sparsity": sparsity,
        "weight_norm": norm,
        "lr": parts.base_lr,
        "steps_per_epoch": parts.steps_per_epoch,
        # The training budget actually spent, comparable across batch sizes and early stops.
        "steps": progress.step,
        "examples_seen": progress.step * parts.batch_size,
        "config_hash": parts.digest,
    }
    metrics = {k: finite_or_none(v) for k, v in metrics.items()}
    metrics["config"] = OmegaConf.to_container(cfg, resolve=True)
    metrics["versions"] = {**package_versions(), **git_state()}
    metrics["hardware"] = hardware(parts.device, torch.get_num_threads())
    return metrics


def write_run(parts: RunParts, history: list[dict], metrics: dict) -> None:
    """history.csv, model.pt, config.yaml, then metrics.json: its presence marks a finished run."""
    out = parts.out
    write_history(out / "history.csv", history)
    with atomic_path(out / "model.pt") as tmp:
        torch.save(parts.model.state_dict(), tmp)
    write_text(out / "config.yaml", OmegaConf.to_yaml(parts.cfg, resolve=True))
    write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
