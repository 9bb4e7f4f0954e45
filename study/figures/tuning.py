"""The learning-rate sensitivity of the tuning runs (validation loss against learning rate)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from study.figures.common import DIVERGED, Context, FigureError, _boolish, _require, figure

_LR_COLUMNS = ("lr", "config.optim.lr", "optim.lr")


def _tuned(ablation) -> str | None:
    return None if getattr(ablation, "tune", None) else "its file has no tune block"


@figure("lr_sensitivity", needs="tables/tuning.csv", requires=_tuned)
def lr_sensitivity(ctx: Context) -> tuple[Figure, str]:
    what = "lr_sensitivity"
    tuning = ctx.tuning(what)
    lr_col = next((c for c in _LR_COLUMNS if c in tuning.columns), None)
    if lr_col is None:
        raise FigureError(f"{what} needs a learning-rate column ({' or '.join(_LR_COLUMNS)})")
    _require(tuning, ["variant", "val_loss"], "tuning.csv", what)
    df = tuning.copy()
    df["lr_"] = df[lr_col].astype(float)
    df["val_loss"] = df["val_loss"].astype(float)
    status = df["status"] if "status" in df.columns else pd.Series("ok", index=df.index)
    df["diverged_"] = (status == DIVERGED) | ~np.isfinite(df["val_loss"])
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    finite = df.loc[~df["diverged_"], "val_loss"]
    # Diverged points have no meaningful loss: they sit above the highest finite loss, one row
    # per variant, so crosses of variants that diverged at the same rate do not hide each other.
    ceiling = float(finite.max()) * 1.08 if len(finite) else 1.0
    variants = ctx.order(df["variant"].unique())
    for k, variant in enumerate(variants):
        part = df[df["variant"] == variant]
        color = ctx.color(variant)
        good = part[~part["diverged_"]].groupby("lr_")["val_loss"].mean().sort_index()
        ax.plot(good.index, good.values, marker="o", ms=4, color=color, label=variant)
        bad = part[part["diverged_"]]["lr_"]
        ax.scatter(bad, [ceiling * (1 + 0.04 * k)] * len(bad), marker="x", color=color, s=40,
                   zorder=3)  # fmt: skip
        if "selected" in part.columns:
            chosen = part[_boolish(part["selected"]) & ~part["diverged_"]]
            chosen = chosen.groupby("lr_")["val_loss"].mean()
            ax.scatter(
                chosen.index, chosen.values, s=110, facecolors="none", edgecolors=color, lw=1.5
            )
    n_div = int(df["diverged_"].sum())
    handles, labels = ax.get_legend_handles_labels()
    if n_div:
        handles.append(Line2D([], [], ls="", marker="x", color="0.3", ms=7))
        labels.append(f"diverged ({n_div} runs)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final validation loss")
    ax.legend(handles, labels, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    seeds = int(df.groupby(["variant", "lr_"])["seed"].nunique().max()) if "seed" in df else 1
    per_point = "one tuning run" if seeds == 1 else f"mean over {seeds} seeds"
    caption = (
        f"Final validation loss against the learning rate of each tuning run ({per_point} per "
        "point); crosses above the curves, one row per variant, mark learning rates that diverged"
        + (f" ({n_div} runs)" if n_div else " (none did)")
        + (", open circles the selected learning rate" if "selected" in df.columns else "")
        + ". Only the validation split is used for the selection."
    )
    return fig, caption
