"""The run metrics the analysis summarizes and compares, and how diverged runs count in them.

Shared by the tables (per-variant summaries) and the claims (per-seed values), so both treat a
diverged run the same way.
"""

from __future__ import annotations

import pandas as pd

STATUSES = ("ok", "diverged", "stopped_early")

# Metrics summarized per variant, in table order.
METRICS = [
    "test_acc",
    "test_loss",
    "val_acc",
    "val_loss",
    "train_acc",
    "gap_acc",
    "gap_loss",
    "best_epoch",
    "epochs_run",
    "s_per_epoch",
    "weight_sparsity",
    "weight_norm",
]
# Metrics compared with the baseline variant, with whether a higher value is better.
DIFF_METRICS = {"test_acc": True, "test_loss": False, "gap_acc": False}

# Without these a metrics.json cannot be summarized at all; the other contract keys may be
# missing (their columns are then NaN) so that an older run still aggregates.
REQUIRED_METRICS = (
    "status",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "epochs_run",
)


def is_loss_metric(name: str) -> bool:
    return "loss" in name


def usable(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs with the loss metrics of diverged runs set to NaN.

    A diverged run's losses are non-finite or meaningless (the loss at the divergence check), so
    they are excluded from means and comparisons; its accuracies are real outcomes (near chance)
    and stay. Diverged runs are still counted in every summary.
    """
    out = runs.copy()
    if "status" not in out:
        return out
    diverged = out["status"] == "diverged"
    for col in out.columns:
        if is_loss_metric(col) and not col.startswith("config."):
            out[col] = pd.to_numeric(out[col], errors="coerce")
            out.loc[diverged, col] = float("nan")
    return out
