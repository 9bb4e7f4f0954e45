"""Figures of training over time: loss curves per variant and the learning-rate schedules."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from study.figures.common import (
    DIVERGED,
    Context,
    FigureError,
    _diverged_note,
    _grid_shape,
    _n_seeds,
    _plot_mean_band,
    _require,
    figure,
)

AXES = {"epoch": "epoch", "step": "optimizer step", "examples": "training examples seen"}


def curve_axis(hist: pd.DataFrame, x: str = "auto") -> str:
    """The x-axis of the curves: ``x`` itself, or with "auto" the epoch when every variant runs
    the same steps per epoch for the same epochs, else the optimizer step (epochs of batch 8 and
    of batch 128 are not the same budget: counting epochs would hide 16 times more steps)."""
    if x != "auto":
        if x not in AXES:
            raise FigureError(f"curve x-axis {x!r} is unknown; use one of auto, {', '.join(AXES)}")
        return x
    if "step" not in hist.columns or hist.empty:
        return "epoch"
    last = hist.sort_values("epoch").groupby("variant")[["epoch", "step"]].max()
    uniform = last["epoch"].nunique() == 1 and last["step"].nunique() == 1
    return "epoch" if uniform else "step"


def with_examples(ctx: Context, hist: pd.DataFrame) -> pd.DataFrame:
    """``hist`` with an ``examples`` column: steps × each variant's batch size."""
    runs = ctx.runs("learning_curves") if (ctx.tables / "runs.csv").is_file() else None
    sizes = {}
    for variant in hist["variant"].unique():
        train = (_run_info(ctx, variant, runs).get("config") or {}).get("train") or {}
        sizes[variant] = _finite_number(train.get("batch_size"))
    if any(size is None for size in sizes.values()):
        raise FigureError("learning_curves by examples needs each variant's train.batch_size")
    hist = hist.copy()
    hist["examples"] = hist["step"].astype(float) * hist["variant"].map(sizes)
    return hist


@figure("learning_curves", needs="tables/history.csv (or run history.csv)")
def learning_curves(ctx: Context, x: str = "auto") -> tuple[Figure, str]:
    """Loss curves per variant against ``x``: epoch, step, examples, or "auto" (the step when
    the variants' budgets differ, see :func:`curve_axis`)."""
    what = "learning_curves"
    hist = ctx.history(what)
    _require(hist, ["epoch", "train_loss", "val_loss"], "history.csv", what)
    axis = curve_axis(hist, x)
    if axis == "examples":
        hist = with_examples(ctx, hist)
    ok = hist[hist["status"] != DIVERGED]
    variants = ctx.order(hist["variant"].unique())
    rows, cols = _grid_shape(len(variants))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.0 * cols, 2.5 * rows + 0.5), sharex=True, sharey=True, squeeze=False
    )
    for ax, variant in zip(axes.flat, variants, strict=False):
        part = ok[ok["variant"] == variant]
        color = ctx.color(variant)
        _plot_mean_band(ax, part, axis, "train_loss", color=color, ls="--", lw=1.5)
        _plot_mean_band(ax, part, axis, "val_loss", color=color, ls="-", lw=1.8)
        n_div = hist[(hist["variant"] == variant) & (hist["status"] == DIVERGED)]["seed"].nunique()
        title = variant + (f"  (diverged {n_div})" if n_div else "")
        # Black titles: a light variant colour is hard to read as text; the lines carry it.
        ax.set_title(title, fontsize=9, color="k")
        ax.tick_params(labelbottom=True, labelleft=True)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if part.empty:
            ax.text(0.5, 0.5, "all runs diverged", ha="center", va="center", transform=ax.transAxes)
    for ax in axes.flat[len(variants) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(AXES[axis])
    for ax in axes[:, 0]:
        ax.set_ylabel("cross-entropy")
    handles = [
        Line2D([], [], color="k", ls="--", label="training"),
        Line2D([], [], color="k", ls="-", label="validation"),
    ]
    fig.legend(handles=handles, loc="upper center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    caption = (
        f"Training (dashed) and validation (solid) loss against the {AXES[axis]} for each "
        f"variant (evaluated once per epoch): mean over {_n_seeds(hist)}, shaded band the range "
        "over seeds. A validation loss that rises while the training loss falls is overfitting."
        + (" The variants' budgets differ, hence steps, not epochs." if x == "auto" and axis ==
           "step" else "")
        + _diverged_note(hist)
    )  # fmt: skip
    return fig, caption


def _nested(flat: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``{"config.schedule.name": "step", ...}`` → ``{"name": "step", ...}`` (values parsed)."""
    import yaml

    out: dict[str, Any] = {}
    for key, value in flat.items():
        if not key.startswith(prefix) or value is None:
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        if isinstance(value, str):
            # runs.csv stores lists as their text, e.g. "[0.5, 0.75]".
            with contextlib.suppress(yaml.YAMLError):
                value = yaml.safe_load(value)
        out[key[len(prefix) :]] = value
    return out


def _run_info(ctx: Context, variant: str, runs: pd.DataFrame | None) -> dict[str, Any]:
    """Config, base LR and steps per epoch of a variant's first run that records them."""
    for run_dir in ctx.seed_dirs(variant):
        path = run_dir / "metrics.json"
        if path.is_file():
            metrics = json.loads(path.read_text())
            if metrics.get("config"):
                return metrics
    if runs is not None:
        part = runs[runs["variant"] == variant]
        if len(part):
            row = part.iloc[0].to_dict()
            info = {k: row.get(k) for k in ("lr", "steps_per_epoch")}
            info["config"] = {
                "schedule": _nested(row, "config.schedule."),
                "optim": _nested(row, "config.optim."),
                "train": _nested(row, "config.train."),
            }
            return info
    return {}


def _finite_number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _steps_per_epoch(hist: pd.DataFrame) -> int | None:
    if "step" not in hist.columns or hist.empty:
        return None
    h = hist.sort_values("epoch")
    steps = h["step"].astype(float).to_numpy()
    epochs = h["epoch"].astype(float).to_numpy()
    if len(steps) >= 2 and epochs[1] > epochs[0]:
        return int(round((steps[1] - steps[0]) / (epochs[1] - epochs[0])))
    return int(round(steps[0] / epochs[0])) if epochs[0] > 0 else None


def _schedule_curve(ctx: Context, variant: str, runs, hist, lr_curve) -> tuple | None:
    """(x, learning rate / base rate, base rate, x label, source) of one variant's schedule: from
    the schedule function when its config is known, else from the per-epoch LR of history.csv."""
    info = _run_info(ctx, variant, runs)
    config = info.get("config") or {}
    part = hist[hist["variant"] == variant] if hist is not None else pd.DataFrame()
    first_seed = part[part["seed"] == part["seed"].min()] if len(part) else part
    spe = _finite_number(info.get("steps_per_epoch")) or _steps_per_epoch(first_seed)
    epochs = (config.get("train") or {}).get("epochs")
    schedule = config.get("schedule")
    # The LR the run used (a tuned one if the variant was tuned), else the configured one.
    base_lr = _finite_number(info.get("lr"))
    if base_lr is None:
        base_lr = _finite_number((config.get("optim") or {}).get("lr"))
    if lr_curve is not None and schedule and spe and epochs and base_lr is not None:
        total = int(spe) * int(epochs)
        factors = np.asarray(lr_curve(total, int(spe), dict(schedule)), dtype=float)
        return np.arange(total), factors, base_lr, "optimizer step", "the schedule functions"
    if len(first_seed) and "lr" in first_seed.columns:
        h = first_seed.sort_values("epoch")
        x = h["step"] if "step" in h.columns else h["epoch"]
        lr = h["lr"].astype(float)
        scale = base_lr if base_lr else float(lr.max())
        xlabel = "optimizer step" if "step" in h.columns else "epoch"
        return x, lr / scale, scale, xlabel, "the per-epoch learning rate recorded in history.csv"
    return None


@figure("lr_schedules", needs="run configs + history.csv (steps per epoch)")
def lr_schedules(ctx: Context) -> tuple[Figure, str]:
    what = "lr_schedules"
    try:
        from study.components.schedules import lr_curve
    except ImportError:
        lr_curve = None
    runs = ctx.runs(what) if (ctx.tables / "runs.csv").is_file() else None
    try:
        hist = ctx.history(what)
    except FigureError:
        hist = None
    curves = {v: c for v in ctx.variants if (c := _schedule_curve(ctx, v, runs, hist, lr_curve))}
    if not curves:
        raise FigureError(
            f"ablation {ctx.name!r}: {what} needs each variant's config (metrics.json or "
            "config.* columns in runs.csv) and history.csv (steps per epoch), or an lr column "
            "in history.csv"
        )
    # Small multiples: overlaid, step hides under piecewise and constant under constant_warmup.
    rows, cols = _grid_shape(len(curves), max_cols=3)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.9 * rows + 0.4), sharex=True,
                             sharey=True, squeeze=False)  # fmt: skip
    bases = {c[2] for c in curves.values()}
    for ax, (variant, (x, y, base, *_)) in zip(axes.flat, curves.items(), strict=False):
        ax.plot(x, y, color=ctx.color(variant), lw=1.8, marker="." if len(x) < 50 else None)
        note = f" (base {base:.3g})" if len(bases) > 1 else ""
        ax.set_title(variant + note, fontsize=9)
        ax.set_ylim(0, 1.08)
        ax.tick_params(labelbottom=True, labelleft=True)
    for ax in axes.flat[len(curves) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(next(iter(curves.values()))[3])
    for ax in axes[:, 0]:
        ax.set_ylabel("LR / base LR")
    fig.tight_layout()
    source = next(iter(curves.values()))[4]
    base_note = (
        f"the base learning rate is {next(iter(bases)):.3g} for every schedule"
        if len(bases) == 1
        else "each panel's title gives its base learning rate"
    )
    caption = (
        "Learning rate relative to the base learning rate against the optimizer step, one panel "
        f"per schedule, from {source}; {base_note}."
    )
    return fig, caption


@figure("train_loss_curves", needs="tables/history.csv")
def train_loss_curves(ctx: Context) -> tuple[Figure, str]:
    what = "train_loss_curves"
    hist = ctx.history(what)
    _require(hist, ["epoch", "train_loss"], "history.csv", what)
    ok = hist[hist["status"] != DIVERGED]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for variant in ctx.order(hist["variant"].unique()):
        part = ok[(ok["variant"] == variant) & (ok["train_loss"].astype(float) > 0)]
        _plot_mean_band(ax, part, "epoch", "train_loss", color=ctx.color(variant), lw=1.6)
        ax.plot([], [], color=ctx.color(variant), label=variant)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend(frameon=False, fontsize=8, ncol=2)
    fig.tight_layout()
    caption = (
        f"Training loss per epoch (log scale): mean over {_n_seeds(hist)}, shaded band the range "
        "over seeds." + _diverged_note(hist)
    )
    return fig, caption
