"""Figures of one ablation, drawn from the aggregated tables and the run folders.

Every ablation gets ``learning_curves`` and ``test_accuracy``; its ``figures:`` list adds more from
:data:`FIGURES`. Each figure is written as ``<scale_dir>/figures/<ablation>/<name>.{png,svg}`` and
its caption (which quotes numbers from the data, so it is computed with the figure) goes into
``captions.json`` beside them, where the report reads it.

A variant keeps its colour in every figure of an ablation: colours follow the variant order of the
ablation file and the baseline is always :data:`BASELINE_COLOR`.

A figure whose inputs are absent raises :class:`FigureError` naming the missing file or column; a
half-drawn figure in a paper is worse than a failed job.

Usage::

    python -m study.figures --scale-dir results/default --ablation regularization \\
        --ablations conf/ablation
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

from study.outputs import atomic_path

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

__all__ = [
    "BASELINE_COLOR",
    "DEFAULT_FIGURES",
    "FIGURES",
    "PNG_DPI",
    "Context",
    "FigureError",
    "FigureSpec",
    "figure_names",
    "main",
    "make_figures",
    "variant_palette",
]

BASELINE_COLOR = "#3b3b3b"
"""The baseline's colour in every figure: dark grey, so the eye reads it as the reference."""

DEFAULT_FIGURES = ("learning_curves", "test_accuracy")
"""Figures every ablation gets."""

PNG_DPI = 150
"""Resolution of the PNGs: sharp on dense screens; the report shows them at 100 CSS px per inch."""

DIVERGED_COLOR = "#d62728"
WEIGHT_VARIANTS = ("none", "l1", "l2")
"""Variants compared by ``weight_histogram`` (the regularization ablation's names)."""

# Weights below this magnitude are drawn in the first bin of the log-scaled histogram: exact zeros
# (which L1 produces) have no place on a log axis but must still be counted.
WEIGHT_FLOOR = 1e-6
# Matches the sparsity threshold of metrics.json (``weight_sparsity``: |w| < 1e-3).
SPARSITY_THRESHOLD = 1e-3
# epochs_to_target: the target is this fraction of the baseline's mean best validation accuracy.
TARGET_FRACTION = 0.98
# A run whose status is this is excluded from means and marked in the figures.
DIVERGED = "diverged"


class FigureError(RuntimeError):
    """A requested figure cannot be drawn because an input is absent."""


# ------------------------------------------------------------------------------------------------
# Colours
# ------------------------------------------------------------------------------------------------


def variant_palette(variants: list[str], baseline: str) -> dict[str, str]:
    """Colour per variant: the baseline dark grey, the others in file order.

    The colour-blind-safe palette is used without its grey (which would look like the baseline);
    beyond its nine colours evenly spaced hues keep variants distinguishable.
    """
    others = [v for v in variants if v != baseline]
    base = [c for i, c in enumerate(sns.color_palette("colorblind", 10).as_hex()) if i != 7]
    colors = base if len(others) <= len(base) else sns.color_palette("husl", len(others)).as_hex()
    palette = {v: colors[i] for i, v in enumerate(others)}
    palette[baseline] = BASELINE_COLOR
    return palette


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------

_STR_COLUMNS = {"ablation": str, "variant": str, "status": str, "shift": str}


def _read_csv(path: Path) -> pd.DataFrame:
    # Variant names such as "1" or "0.5" must stay strings so they match the ablation file.
    return pd.read_csv(path, dtype=_STR_COLUMNS)


def _boolish(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    return series.astype(str).str.strip().str.lower().isin(["true", "1", "1.0", "yes"])


@dataclass
class Context:
    """What a figure function may read: the ablation, its colours and its tables (cached)."""

    scale_dir: Path
    ablation: Any
    palette: dict[str, str] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.scale_dir = Path(self.scale_dir)
        if not self.palette:
            self.palette = variant_palette(self.variants, self.ablation.baseline)

    @property
    def name(self) -> str:
        return self.ablation.name

    @property
    def variants(self) -> list[str]:
        return list(self.ablation.variants)

    @property
    def tables(self) -> Path:
        return self.scale_dir / "tables"

    def color(self, variant: str) -> str:
        return self.palette.get(variant, "#999999")

    def order(self, present: Any) -> list[str]:
        """Variants of the ablation file that occur in ``present``, in file order."""
        present = set(map(str, present))
        ordered = [v for v in self.variants if v in present]
        return ordered + sorted(present - set(ordered))

    def _table(self, filename: str, what: str) -> pd.DataFrame:
        if filename in self._cache:
            return self._cache[filename]
        path = self.tables / filename
        if not path.is_file():
            raise FigureError(f"ablation {self.name!r}: {what} needs {path}, which does not exist")
        df = _read_csv(path)
        if "ablation" in df.columns:
            df = df[df["ablation"] == self.name]
        if df.empty:
            raise FigureError(f"ablation {self.name!r}: {path} has no rows for this ablation")
        df = df.reset_index(drop=True)
        self._cache[filename] = df
        return df

    def runs(self, what: str) -> pd.DataFrame:
        """``tables/runs.csv`` rows of this ablation."""
        return self._table("runs.csv", what)

    def history(self, what: str) -> pd.DataFrame:
        """Per-epoch history of this ablation's runs, with ``status`` joined from runs.csv.

        ``tables/history.csv`` is preferred; the run folders' own history.csv files are the
        fallback, so the curves can be drawn before the aggregation has run.
        """
        key = "history+status"
        if key in self._cache:
            return self._cache[key]
        if (self.tables / "history.csv").is_file():
            hist = self._table("history.csv", what)
        else:
            frames = []
            for path in sorted((self.scale_dir / "runs" / self.name).glob("*/seed*/history.csv")):
                frame = pd.read_csv(path)
                frame["variant"] = path.parent.parent.name
                frame["seed"] = int(path.parent.name.removeprefix("seed"))
                frames.append(frame)
            if not frames:
                raise FigureError(
                    f"ablation {self.name!r}: {what} needs {self.tables / 'history.csv'} or run "
                    f"folders with history.csv under {self.scale_dir / 'runs' / self.name}"
                )
            hist = pd.concat(frames, ignore_index=True)
        hist = hist.copy()
        hist["status"] = "ok"
        if (self.tables / "runs.csv").is_file():
            runs = self.runs(what)[["variant", "seed", "status"]]
            hist = hist.drop(columns="status").merge(runs, on=["variant", "seed"], how="left")
            hist["status"] = hist["status"].fillna("ok")
        else:
            for (variant, seed), _ in hist.groupby(["variant", "seed"]):
                status = _status_from_folder(self.run_dir(variant, seed))
                mask = (hist["variant"] == variant) & (hist["seed"] == seed)
                hist.loc[mask, "status"] = status
        self._cache[key] = hist
        return hist

    def shift(self, what: str) -> pd.DataFrame:
        return self._table("shift.csv", what)

    def tuning(self, what: str) -> pd.DataFrame:
        return self._table("tuning.csv", what)

    def summary(self) -> pd.DataFrame | None:
        """The per-variant summary table ``tables/<ablation>.csv``, if it exists."""
        path = self.tables / f"{self.name}.csv"
        return _read_csv(path) if path.is_file() else None

    def run_dir(self, variant: str, seed: int) -> Path:
        return self.scale_dir / "runs" / self.name / variant / f"seed{int(seed)}"

    def seed_dirs(self, variant: str) -> list[Path]:
        folder = self.scale_dir / "runs" / self.name / variant
        return sorted(folder.glob("seed*"), key=lambda p: int(p.name.removeprefix("seed") or 0))


def _status_from_folder(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "metrics.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return "ok"


def _require(df: pd.DataFrame, columns: list[str], source: str, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FigureError(f"{what} needs column(s) {', '.join(missing)} in {source}")


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def t_interval(values: Any, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval; the interval is NaN with fewer than two values."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def _mean_band(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Mean, min and max of ``y`` over seeds at each ``x`` (only finite values)."""
    finite = frame[np.isfinite(frame[y].astype(float))]
    return finite.groupby(x)[y].agg(["mean", "min", "max"]).reset_index()


def _plot_mean_band(ax: Any, frame: pd.DataFrame, x: str, y: str, **line: Any) -> None:
    stats_ = _mean_band(frame, x, y)
    if stats_.empty:
        return
    ax.plot(stats_[x], stats_["mean"], **line)
    if len(stats_) and (stats_["max"] > stats_["min"]).any():
        ax.fill_between(stats_[x], stats_["min"], stats_["max"], color=line["color"], alpha=0.15)


def _grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _percent_axis(ax: Any, axis: str = "y") -> None:
    fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}%")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _n_seeds(frame: pd.DataFrame) -> str:
    counts = frame.groupby("variant")["seed"].nunique()
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo} seed{'s' if hi != 1 else ''}" if lo == hi else f"{lo}–{hi} seeds"


def _diverged_note(frame: pd.DataFrame) -> str:
    runs = frame.drop_duplicates(["variant", "seed"])
    n = int((runs["status"] == DIVERGED).sum())
    return f" Diverged runs ({n}) are excluded." if n else ""


# ------------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------------


def learning_curves(ctx: Context) -> tuple[Figure, str]:
    what = "learning_curves"
    hist = ctx.history(what)
    _require(hist, ["epoch", "train_loss", "val_loss"], "history.csv", what)
    ok = hist[hist["status"] != DIVERGED]
    variants = ctx.order(hist["variant"].unique())
    rows, cols = _grid_shape(len(variants))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.0 * cols, 2.5 * rows + 0.5), sharex=True, sharey=True, squeeze=False
    )
    for ax, variant in zip(axes.flat, variants, strict=False):
        part = ok[ok["variant"] == variant]
        color = ctx.color(variant)
        _plot_mean_band(ax, part, "epoch", "train_loss", color=color, ls="--", lw=1.5)
        _plot_mean_band(ax, part, "epoch", "val_loss", color=color, ls="-", lw=1.8)
        n_div = hist[(hist["variant"] == variant) & (hist["status"] == DIVERGED)]["seed"].nunique()
        title = variant + (f"  (diverged {n_div})" if n_div else "")
        ax.set_title(title, fontsize=9, color=color)
        if part.empty:
            ax.text(0.5, 0.5, "all runs diverged", ha="center", va="center", transform=ax.transAxes)
    for ax in axes.flat[len(variants) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("cross-entropy")
    handles = [
        Line2D([], [], color="k", ls="--", label="training"),
        Line2D([], [], color="k", ls="-", label="validation"),
    ]
    fig.legend(handles=handles, loc="upper center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    caption = (
        "Training (dashed) and validation (solid) loss per epoch for each variant: mean over "
        f"{_n_seeds(hist)}, shaded band the range over seeds. A validation loss that rises while "
        "the training loss falls is overfitting." + _diverged_note(hist)
    )
    return fig, caption


def _summary_ci(ctx: Context, metric: str) -> dict[str, tuple[float, float, float]]:
    """Per-variant (mean, lo, hi) of ``metric`` from the summary table, when it has them."""
    summary = ctx.summary()
    cols = [f"{metric}_mean", f"{metric}_lo", f"{metric}_hi"]
    if summary is None or "variant" not in summary.columns or not set(cols) <= set(summary):
        return {}
    return {
        str(r["variant"]): (float(r[cols[0]]), float(r[cols[1]]), float(r[cols[2]]))
        for _, r in summary.iterrows()
    }


def _per_variant(ctx: Context, what: str, metric: str, label: str) -> tuple[Figure, str]:
    """Final ``metric`` per variant: seeds as dots, mean and 95% CI, diverged runs marked.

    Accuracies (and their gap) of diverged runs are real outcomes and count in the mean, as in the
    tables; losses of diverged runs are meaningless and are left out (also as in the tables).
    """
    runs = ctx.runs(what)
    _require(runs, ["variant", "seed", "status", metric], "runs.csv", what)
    percent = "acc" in metric
    scale = 100.0 if percent else 1.0
    keep_diverged = "loss" not in metric
    variants = ctx.order(runs["variant"].unique())
    from_summary = _summary_ci(ctx, metric)
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * len(variants) + 1.2))
    rng = np.random.default_rng(0)  # fixed jitter: the figure is byte-stable across reruns
    shown: list[float] = []  # every x drawn, for the axis limits
    diverged_total = 0
    for i, variant in enumerate(variants):
        part = runs[runs["variant"] == variant]
        ok = part[part["status"] != DIVERGED]
        div = part[part["status"] == DIVERGED]
        values = scale * pd.to_numeric(ok[metric], errors="coerce")
        values = values[np.isfinite(values)]
        ax.scatter(values, i + rng.uniform(-0.15, 0.15, len(values)), color=ctx.color(variant),
                   s=18, alpha=0.7)  # fmt: skip
        shown += list(values)
        counted = part if keep_diverged else ok
        mean, lo, hi = from_summary.get(variant) or t_interval(
            pd.to_numeric(counted[metric], errors="coerce")
        )
        if math.isfinite(mean):
            ax.plot([scale * mean], [i], marker="D", color="k", ms=5, zorder=3)
            if math.isfinite(lo) and math.isfinite(hi):
                ax.plot([scale * lo, scale * hi], [i, i], color="k", lw=1.5, zorder=2)
            shown += [scale * v for v in (mean, lo, hi) if math.isfinite(v)]
        if len(div):
            diverged_total += len(div)
            if keep_diverged:
                div_values = scale * pd.to_numeric(div[metric], errors="coerce")
                div_values = div_values[np.isfinite(div_values)]
                ax.scatter(div_values, [i] * len(div_values), marker="x", color=DIVERGED_COLOR,
                           s=30)  # fmt: skip
                shown += list(div_values)
            ax.annotate(
                f"diverged {len(div)}/{len(part)}",
                xy=(1.0, i),
                xycoords=("axes fraction", "data"),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=DIVERGED_COLOR,
            )
    ax.set_yticks(range(len(variants)), variants)
    for tick, variant in zip(ax.get_yticklabels(), variants, strict=True):
        tick.set_color(ctx.color(variant))
    if shown:
        lo, hi = min(shown), max(shown)
        pad = max(0.5 if percent else 0.0, 0.06 * (hi - lo)) or 0.05 * abs(hi) or 0.1
        left, right = lo - pad, hi + pad
        if percent:
            # A CI that includes a diverged run can reach past 0% or 100%; accuracy cannot.
            left, right = max(left, 0.0 if metric != "gap_acc" else -100.0), min(right, 100.0)
        ax.set_xlim(left, right)
    if metric == "gap_acc":
        ax.axvline(0, color="0.5", lw=1, ls=":")
    ax.set_xlabel(label)
    if metric.startswith("gap"):
        # A difference of two accuracies: percentage points, not a percentage.
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g} pp"))
    elif percent:
        _percent_axis(ax, "x")
    ax.set_ylim(len(variants) - 0.5, -0.5)
    fig.tight_layout()
    caption = (
        f"Final {label} per variant: dots are seeds, diamonds the mean and bars its 95% "
        f"confidence interval ({_n_seeds(runs)})."
    )
    if diverged_total and keep_diverged:
        caption += (
            f" Diverged runs ({diverged_total}) are drawn as red crosses and counted at the "
            "right; like the tables, the mean includes their value."
        )
    elif diverged_total:
        caption += (
            f" Diverged runs ({diverged_total}) are counted at the right and, like in the "
            "tables, left out: their loss is not meaningful."
        )
    return fig, caption


def test_accuracy(ctx: Context) -> tuple[Figure, str]:
    return _per_variant(ctx, "test_accuracy", "test_acc", "test accuracy")


def test_loss(ctx: Context) -> tuple[Figure, str]:
    return _per_variant(ctx, "test_loss", "test_loss", "test loss (cross-entropy)")


def generalization_gap(ctx: Context) -> tuple[Figure, str]:
    fig, caption = _per_variant(
        ctx, "generalization_gap", "gap_acc", "generalization gap (train − test accuracy)"
    )
    return fig, caption + " Smaller is less overfitting."


def _load_weights(path: Path) -> np.ndarray:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    # Architecture contract: "weights" are the tensors with two or more dimensions.
    tensors = [
        t.detach().float().abs().flatten()
        for t in state.values()
        if torch.is_tensor(t) and t.is_floating_point() and t.ndim >= 2
    ]
    if not tensors:
        return np.empty(0)
    # float64: a float32 floor would round below the first bin edge and drop out of the plot.
    return torch.cat(tensors).numpy().astype(np.float64)


def weight_histogram(ctx: Context) -> tuple[Figure, str]:
    what = "weight_histogram"
    wanted = [v for v in ctx.variants if v in WEIGHT_VARIANTS or v == ctx.ablation.baseline]
    if not wanted:
        raise FigureError(
            f"ablation {ctx.name!r}: {what} needs variants named {', '.join(WEIGHT_VARIANTS)}"
        )
    weights: dict[str, np.ndarray] = {}
    missing = []
    for variant in wanted:
        paths = [d / "model.pt" for d in ctx.seed_dirs(variant) if (d / "model.pt").is_file()]
        if not paths:
            missing.append(str(ctx.scale_dir / "runs" / ctx.name / variant / "seed*" / "model.pt"))
            continue
        weights[variant] = np.concatenate([_load_weights(p) for p in paths])
    if missing:
        raise FigureError(f"ablation {ctx.name!r}: {what} needs {', '.join(missing)}")
    top = max(float(w.max()) for w in weights.values() if len(w))
    bins = np.logspace(math.log10(WEIGHT_FLOOR), math.log10(max(top, 10 * WEIGHT_FLOOR)), 60)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    notes = []
    for variant, w in weights.items():
        clipped = np.clip(w, WEIGHT_FLOOR, None)
        label = f"{variant} ({100 * float((w < SPARSITY_THRESHOLD).mean()):.3g}% < 1e-3)"
        ax.hist(
            clipped,
            bins=bins,
            histtype="step",
            lw=1.6,
            color=ctx.color(variant),
            label=label,
            weights=np.full(len(w), 1 / len(w)),
        )
        notes.append(variant)
    ax.set_xscale("log")
    ax.axvline(SPARSITY_THRESHOLD, color="0.5", ls=":", lw=1)
    ax.set_xlabel("|w| (first bin: |w| ≤ 1e-6, exact zeros included)")
    ax.set_ylabel("fraction of weights")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    caption = (
        "Distribution of weight magnitudes |w| (Linear and Conv weights, all seeds pooled) for "
        f"{', '.join(notes)}, on a log scale; the legend gives the fraction below 1e-3 (dotted "
        "line), the sparsity threshold of the run metrics."
    )
    return fig, caption


_LR_COLUMNS = ("lr", "config.optim.lr", "optim.lr")


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
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    finite = df.loc[~df["diverged_"], "val_loss"]
    # Diverged points have no meaningful loss: they sit just above the highest finite loss.
    ceiling = float(finite.max()) * 1.08 if len(finite) else 1.0
    variants = ctx.order(df["variant"].unique())
    for variant in variants:
        part = df[df["variant"] == variant]
        color = ctx.color(variant)
        good = part[~part["diverged_"]].groupby("lr_")["val_loss"].mean().sort_index()
        ax.plot(good.index, good.values, marker="o", ms=4, color=color, label=variant)
        bad = part[part["diverged_"]]["lr_"].unique()
        ax.scatter(bad, [ceiling] * len(bad), marker="x", color=color, s=40, zorder=3)
        if "selected" in part.columns:
            chosen = part[_boolish(part["selected"]) & ~part["diverged_"]]
            chosen = chosen.groupby("lr_")["val_loss"].mean()
            ax.scatter(
                chosen.index, chosen.values, s=110, facecolors="none", edgecolors=color, lw=1.5
            )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final validation loss")
    ax.legend(frameon=False, fontsize=8, ncol=2)
    fig.tight_layout()
    n_div = int(df["diverged_"].sum())
    caption = (
        "Final validation loss against the learning rate of each tuning run (mean over seeds); "
        "crosses at the top mark learning rates that diverged"
        + (f" ({n_div} runs)" if n_div else " (none did)")
        + (", open circles the selected learning rate" if "selected" in df.columns else "")
        + ". Only the validation split is used for the selection."
    )
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


def lr_schedules(ctx: Context) -> tuple[Figure, str]:
    what = "lr_schedules"
    try:
        from study.schedules import lr_curve
    except ImportError:
        lr_curve = None
    runs = ctx.runs(what) if (ctx.tables / "runs.csv").is_file() else None
    try:
        hist = ctx.history(what)
    except FigureError:
        hist = None
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    source = "the schedule functions"
    xlabel = "optimizer step"
    drawn = 0
    for variant in ctx.variants:
        info = _run_info(ctx, variant, runs)
        config = info.get("config") or {}
        part = hist[hist["variant"] == variant] if hist is not None else pd.DataFrame()
        first_seed = part[part["seed"] == part["seed"].min()] if len(part) else part
        spe = _finite_number(info.get("steps_per_epoch")) or _steps_per_epoch(first_seed)
        color = ctx.color(variant)
        epochs = (config.get("train") or {}).get("epochs")
        schedule = config.get("schedule")
        # The LR the run used (a tuned one if the variant was tuned), else the configured one.
        base_lr = _finite_number(info.get("lr"))
        if base_lr is None:
            base_lr = _finite_number((config.get("optim") or {}).get("lr"))
        if lr_curve is not None and schedule and spe and epochs and base_lr is not None:
            total = int(spe) * int(epochs)
            factors = np.asarray(lr_curve(total, int(spe), dict(schedule)), dtype=float)
            label = f"{variant} (base {base_lr:.3g})"
            ax.plot(np.arange(total), factors, color=color, lw=1.6, label=label)
            drawn += 1
        elif len(first_seed) and "lr" in first_seed.columns:
            # Without the schedule module only the per-epoch LR of the history is known.
            source = "the per-epoch learning rate recorded in history.csv"
            h = first_seed.sort_values("epoch")
            x = h["step"] if "step" in h.columns else h["epoch"]
            xlabel = "optimizer step" if "step" in h.columns else "epoch"
            lr = h["lr"].astype(float)
            scale = base_lr if base_lr else float(lr.max())
            label = f"{variant} (base {scale:.3g})"
            ax.plot(x, lr / scale, color=color, lw=1.6, marker=".", label=label)
            drawn += 1
    if not drawn:
        raise FigureError(
            f"ablation {ctx.name!r}: {what} needs each variant's config (metrics.json or "
            "config.* columns in runs.csv) and history.csv (steps per epoch), or an lr column "
            "in history.csv"
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate / base learning rate")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8, ncol=2)
    fig.tight_layout()
    # Relative to the base LR: base LRs of different optimizers differ by orders of magnitude and
    # would flatten every other curve; the legend gives each base LR.
    caption = (
        "Learning rate relative to each variant's base learning rate (in the legend) against the "
        f"optimizer step, for every schedule, from {source}."
    )
    return fig, caption


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


_GRID_PART = re.compile(r"_(?=[a-z0-9.]+-)")


def _parse_grid_variant(name: str) -> dict[str, str]:
    """``optim-adam_schedule-inverse_sqrt`` → ``{optim: adam, schedule: inverse_sqrt}``."""
    out = {}
    for part in _GRID_PART.split(name):
        key, sep, value = part.partition("-")
        if sep:
            out[key] = value
    return out


def _config_column(columns: Any, key: str) -> str | None:
    # A grid over a config group (optim) varies the group's name; over a key, the key itself.
    for col in (f"config.{key}", f"config.{key}.name"):
        if col in columns:
            return col
    return None


def _value_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def grid_heatmap(ctx: Context) -> tuple[Figure, str]:
    what = "grid_heatmap"
    runs = ctx.runs(what)
    _require(runs, ["variant", "seed", "status", "test_acc"], "runs.csv", what)
    grid = dict(getattr(ctx.ablation, "grid", None) or {})
    if not grid:
        keys: list[str] = []
        for variant in ctx.variants:
            for key in _parse_grid_variant(variant):
                if key not in keys:
                    keys.append(key)
        grid = {k: [] for k in keys}
    if len(grid) != 2:
        raise FigureError(
            f"ablation {ctx.name!r}: {what} needs a grid over exactly two keys, got "
            f"{list(grid) or 'none'}"
        )
    (row_key, row_vals), (col_key, col_vals) = grid.items()
    df = runs.copy()
    for axis, key in (("row_", row_key), ("col_", col_key)):
        col = _config_column(df.columns, key)
        # Variant names carry only the last part of a dotted key (model.norm → norm-...).
        short = key.split(".")[-1].lower()
        parsed = df["variant"].map(lambda v, k=short: _parse_grid_variant(v).get(k))
        df[axis] = df[col].map(_value_text) if col else parsed
        df[axis] = df[axis].fillna(parsed)
        if df[axis].isna().any():
            raise FigureError(
                f"ablation {ctx.name!r}: {what} needs config.{key} (or config.{key}.name) in "
                f"runs.csv, or variant names like {key}-<value>_..."
            )

    def axis_order(values: list[Any], present: pd.Series) -> list[str]:
        listed = [_value_text(v) for v in values]
        seen = list(dict.fromkeys(present))
        return [v for v in listed if v in seen] + [v for v in seen if v not in listed]

    rows = axis_order(list(row_vals), df["row_"])
    cols = axis_order(list(col_vals), df["col_"])
    mean = df.groupby(["row_", "col_"])["test_acc"].mean().unstack()
    mean = mean.reindex(index=rows, columns=cols)
    n_div = (df["status"] == DIVERGED).groupby([df["row_"], df["col_"]]).sum()
    n_all = df.groupby(["row_", "col_"]).size()
    labels = np.empty(mean.shape, dtype=object)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            value = mean.iat[i, j]
            text = f"{100 * value:.3g}" if np.isfinite(value) else "–"
            d = int(n_div.get((r, c), 0))
            if d:
                text += f"\ndiv. {d}/{int(n_all.get((r, c), 0))}"
            labels[i, j] = text
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 2.4, 0.6 * len(rows) + 1.6))
    sns.heatmap(
        100 * mean.astype(float),
        annot=labels,
        fmt="",
        cmap="viridis",
        cbar_kws={"label": "test accuracy (%)"},
        linewidths=0.5,
        ax=ax,
        annot_kws={"fontsize": 8},
    )
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    caption = (
        f"Mean test accuracy (%) over {_n_seeds(df)} for each combination of {row_key} (rows) and "
        f"{col_key} (columns); cells count diverged runs, whose accuracy is included in the mean "
        "as in the tables."
    )
    return fig, caption


def _shift_frame(ctx: Context, what: str) -> pd.DataFrame:
    df = ctx.shift(what)
    _require(
        df,
        ["variant", "seed", "shift", "severity", "adapted", "slice", "accuracy"],
        "shift.csv",
        what,
    )
    df = df.copy()
    df["adapted"] = _boolish(df["adapted"])
    df["accuracy"] = 100 * df["accuracy"].astype(float)
    return df


def _adapted_handles() -> list[Line2D]:
    return [
        # Light grey: black would read as the baseline's colour.
        Line2D([], [], color="0.6", ls="-", label="not adapted"),
        Line2D([], [], color="0.6", ls="--", label="adapted (test-time statistics)"),
    ]


def shift_severity(ctx: Context) -> tuple[Figure, str]:
    what = "shift_severity"
    df = _shift_frame(ctx, what)
    df = df[df["severity"].notna() & df["slice"].isna()].copy()
    df["severity"] = df["severity"].astype(float)
    # The clean test set (shift "clean", severity 0) is every corruption's starting point.
    clean = df[(df["shift"] == "clean") | (df["severity"] == 0)]
    df = df.drop(clean.index)
    if df.empty:
        raise FigureError(f"ablation {ctx.name!r}: {what} needs corruption rows in shift.csv")
    df = pd.concat(
        [df] + [clean.assign(shift=name) for name in df["shift"].unique()], ignore_index=True
    )
    per_seed = df.groupby(["variant", "seed", "shift", "severity", "adapted"], as_index=False)[
        "accuracy"
    ].mean()
    averaged = per_seed.groupby(["variant", "seed", "severity", "adapted"], as_index=False)[
        "accuracy"
    ].mean()
    averaged["shift"] = "mean over corruptions"
    panels = sorted(per_seed["shift"].unique()) + ["mean over corruptions"]
    data = pd.concat([per_seed, averaged], ignore_index=True)
    rows, cols = _grid_shape(len(panels))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.0 * cols, 2.5 * rows + 0.8), sharex=True, sharey=True, squeeze=False
    )
    variants = ctx.order(data["variant"].unique())
    for ax, panel in zip(axes.flat, panels, strict=False):
        part = data[data["shift"] == panel]
        for variant in variants:
            for adapted, ls in ((False, "-"), (True, "--")):
                sel = part[(part["variant"] == variant) & (part["adapted"] == adapted)]
                _plot_mean_band(
                    ax, sel, "severity", "accuracy", color=ctx.color(variant), ls=ls, marker="."
                )
        ax.set_title(panel.replace("_", " "), fontsize=9)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        _percent_axis(ax)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("severity")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    handles = [Line2D([], [], color=ctx.color(v), label=v) for v in variants] + _adapted_handles()
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 4), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.1 / rows - 0.02 * math.ceil(len(handles) / 4)))
    caption = (
        "Test accuracy against corruption severity for each normalization variant, per corruption "
        "and averaged over corruptions (last panel): solid without adaptation, dashed with "
        f"test-time adaptation of the normalization statistics; mean over {_n_seeds(data)}, "
        "shaded band the range over seeds. The models are not retrained."
    )
    return fig, caption


def drift(ctx: Context) -> tuple[Figure, str]:
    what = "drift"
    df = _shift_frame(ctx, what)
    df = df[df["slice"].notna()]
    if df.empty:
        raise FigureError(f"ablation {ctx.name!r}: {what} needs drift rows (slice) in shift.csv")
    df["slice"] = df["slice"].astype(float)
    streams = sorted(df["shift"].unique())
    fig, axes = plt.subplots(
        1, len(streams), figsize=(5.0 * len(streams) + 1, 3.6), sharey=True, squeeze=False
    )
    variants = ctx.order(df["variant"].unique())
    for ax, stream in zip(axes.flat, streams, strict=True):
        part = df[df["shift"] == stream]
        for variant in variants:
            for adapted, ls in ((False, "-"), (True, "--")):
                sel = part[(part["variant"] == variant) & (part["adapted"] == adapted)]
                _plot_mean_band(
                    ax, sel, "slice", "accuracy", color=ctx.color(variant), ls=ls, marker="."
                )
        if len(streams) > 1:
            ax.set_title(stream.replace("_", " "), fontsize=9)
        ax.set_xlabel("time slice")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        _percent_axis(ax)
    axes[0, 0].set_ylabel("accuracy")
    handles = [Line2D([], [], color=ctx.color(v), label=v) for v in variants] + _adapted_handles()
    axes[0, -1].legend(handles=handles, frameon=False, fontsize=8, loc="best")
    fig.tight_layout()
    caption = (
        "Accuracy on each time slice of the drift stream, for each variant: solid without "
        "adaptation, dashed with test-time adaptation; mean over "
        f"{_n_seeds(df)}, shaded band the range over seeds."
    )
    return fig, caption


def epochs_to_target(ctx: Context, target: float | None = None) -> tuple[Figure, str]:
    what = "epochs_to_target"
    hist = ctx.history(what)
    _require(hist, ["epoch", "val_acc"], "history.csv", what)
    ok = hist[hist["status"] != DIVERGED]
    if target is None:
        base = ok[ok["variant"] == ctx.ablation.baseline]
        if base.empty:
            raise FigureError(
                f"ablation {ctx.name!r}: {what} needs non-diverged baseline runs "
                f"({ctx.ablation.baseline!r}) in history.csv to set the target"
            )
        target = TARGET_FRACTION * float(base.groupby("seed")["val_acc"].max().mean())
    max_epoch = float(hist["epoch"].max())
    variants = ctx.order(hist["variant"].unique())
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * len(variants) + 1.3))
    rng = np.random.default_rng(0)
    for i, variant in enumerate(variants):
        color = ctx.color(variant)
        reached, missed = [], 0
        for _, run in ok[ok["variant"] == variant].groupby("seed"):
            hit = run[run["val_acc"].astype(float) >= target]
            if len(hit):
                reached.append(float(hit["epoch"].min()))
            else:
                missed += 1
        jitter = rng.uniform(-0.15, 0.15, len(reached))
        ax.scatter(reached, i + jitter, color=color, s=22, alpha=0.8, zorder=3)
        if reached:
            ax.plot([np.mean(reached)], [i], marker="D", mfc="none", mec="k", ms=7, zorder=2)
        n_div = hist[(hist["variant"] == variant) & (hist["status"] == DIVERGED)]["seed"].nunique()
        notes = [f"not reached {missed}"] if missed else []
        notes += [f"diverged {n_div}"] if n_div else []
        if notes:
            ax.annotate(
                ", ".join(notes),
                xy=(1.0, i),
                xycoords=("axes fraction", "data"),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=DIVERGED_COLOR,
            )
    ax.set_yticks(range(len(variants)), variants)
    for tick, variant in zip(ax.get_yticklabels(), variants, strict=True):
        tick.set_color(ctx.color(variant))
    ax.set_ylim(len(variants) - 0.5, -0.5)
    ax.set_xlim(0, max_epoch + 1)
    ax.set_xlabel(f"epochs to reach {100 * target:.3g}% validation accuracy")
    fig.tight_layout()
    caption = (
        f"Epochs until the validation accuracy first reaches {100 * target:.3g}% "
        f"({100 * TARGET_FRACTION:g}% of the baseline's mean best validation accuracy): dots are "
        "seeds, open diamonds the mean over the seeds that reached it; runs that never reached "
        "it or diverged are counted at the right."
    )
    return fig, caption


# ------------------------------------------------------------------------------------------------
# Registry and output
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureSpec:
    """A figure: ``draw(ctx) -> (figure, caption)`` and what it needs, for error messages."""

    draw: Callable[[Context], tuple[Figure, str]]
    needs: str


FIGURES: dict[str, FigureSpec] = {
    "learning_curves": FigureSpec(learning_curves, "tables/history.csv (or run history.csv)"),
    "test_accuracy": FigureSpec(test_accuracy, "tables/runs.csv"),
    "test_loss": FigureSpec(test_loss, "tables/runs.csv"),
    "generalization_gap": FigureSpec(generalization_gap, "tables/runs.csv"),
    "weight_histogram": FigureSpec(weight_histogram, "model.pt of variants none, l1, l2"),
    "lr_sensitivity": FigureSpec(lr_sensitivity, "tables/tuning.csv"),
    "lr_schedules": FigureSpec(lr_schedules, "run configs + history.csv (steps per epoch)"),
    "train_loss_curves": FigureSpec(train_loss_curves, "tables/history.csv"),
    "grid_heatmap": FigureSpec(grid_heatmap, "tables/runs.csv + a two-key grid"),
    "shift_severity": FigureSpec(shift_severity, "tables/shift.csv (corruption rows)"),
    "drift": FigureSpec(drift, "tables/shift.csv (drift rows with slice)"),
    "epochs_to_target": FigureSpec(epochs_to_target, "tables/history.csv (val_acc)"),
}
"""Figure name → how to draw it. Ablation files name extra figures from these keys."""


def figure_names(ablation: Any) -> list[str]:
    """The figures of an ablation: the defaults, then its ``figures:`` list (unknown names fail)."""
    extra = list(getattr(ablation, "figures", None) or [])
    unknown = [n for n in extra if n not in FIGURES]
    if unknown:
        raise FigureError(
            f"ablation {ablation.name!r} asks for unknown figure(s) {', '.join(unknown)}; "
            f"known: {', '.join(FIGURES)}"
        )
    return list(dict.fromkeys([*DEFAULT_FIGURES, *extra]))


def _style() -> contextlib.AbstractContextManager:
    rc = {
        **sns.axes_style("whitegrid"),
        **sns.plotting_context("paper", font_scale=1.1),
        "svg.hashsalt": "study",  # stable SVG element ids, so reruns give identical files
        "figure.dpi": 100,
    }
    return plt.rc_context(rc)


def make_figures(
    scale_dir: str | Path, ablation: Any, names: list[str] | None = None
) -> dict[str, str]:
    """Draw the figures of ``ablation``; returns figure name → caption (also in captions.json)."""
    ctx = Context(Path(scale_dir), ablation)
    names = figure_names(ablation) if names is None else names
    out_dir = ctx.scale_dir / "figures" / ablation.name
    captions: dict[str, str] = {}
    for name in names:
        if name not in FIGURES:
            raise FigureError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
        with _style():
            fig, caption = FIGURES[name].draw(ctx)
            try:
                for ext in ("png", "svg"):
                    with atomic_path(out_dir / f"{name}.{ext}") as tmp:
                        # No timestamps in the metadata: unchanged data gives unchanged files.
                        meta = {"Software": None} if ext == "png" else {"Date": None}
                        fig.savefig(tmp, format=ext, dpi=PNG_DPI, metadata=meta)
            finally:
                plt.close(fig)
        captions[name] = caption
    path = out_dir / "captions.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({**previous, **captions}, indent=2, ensure_ascii=False) + "\n")
    return captions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m study.figures", description="Draw the figures of one ablation."
    )
    parser.add_argument("--scale-dir", required=True, type=Path, help="results/<scale>")
    parser.add_argument("--ablation", required=True, help="ablation name (conf/ablation/<name>)")
    parser.add_argument("--ablations", default=Path("conf/ablation"), type=Path)
    parser.add_argument(
        "--figure",
        action="append",
        dest="figures",
        help="draw only this figure (repeatable); default: all figures of the ablation",
    )
    args = parser.parse_args(argv)
    from study.ablation import load_ablations

    ablations = load_ablations(args.ablations)
    if args.ablation not in ablations:
        parser.error(f"no ablation {args.ablation!r} in {args.ablations}")
    try:
        captions = make_figures(args.scale_dir, ablations[args.ablation], args.figures)
    except FigureError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = args.scale_dir / "figures" / args.ablation
    for name in captions:
        print(out / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
