"""Figures comparing variants by their final results: test accuracy and loss, generalization
gap, a two-key grid as a heatmap, and the epochs needed to reach a target accuracy."""

from __future__ import annotations

import math
import re
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from study.figures.common import (
    DIVERGED,
    DIVERGED_COLOR,
    Context,
    FigureError,
    _margin_note,
    _n_seeds,
    _percent_axis,
    _require,
    _variant_ticks,
    figure,
    t_interval,
)

# epochs_to_target: the target is this fraction of the baseline's mean best validation accuracy.
TARGET_FRACTION = 0.98


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


def _variant_points(ctx: Context, runs: pd.DataFrame, metric: str, keep_diverged: bool,
                    scale: float) -> list[dict[str, Any]]:  # fmt: skip
    """Per variant (in the ablation's order): its seeds' values, mean and 95% CI, diverged runs."""
    from_summary = _summary_ci(ctx, metric)
    points = []
    for variant in ctx.order(runs["variant"].unique()):
        part = runs[runs["variant"] == variant]
        ok, div = part[part["status"] != DIVERGED], part[part["status"] == DIVERGED]
        values = scale * pd.to_numeric(ok[metric], errors="coerce")
        div_values = scale * pd.to_numeric(div[metric], errors="coerce")
        counted = part if keep_diverged else ok
        mean, lo, hi = from_summary.get(variant) or t_interval(
            pd.to_numeric(counted[metric], errors="coerce")
        )
        points.append({
            "variant": variant, "values": values[np.isfinite(values)].tolist(),
            "mean": scale * mean, "lo": scale * lo, "hi": scale * hi, "n": len(part),
            "diverged": div_values[np.isfinite(div_values)].tolist() if keep_diverged else [],
            "n_diverged": len(div),
        })  # fmt: skip
    return points


def _draw_points(ax: Any, ctx: Context, points: list[dict[str, Any]], notes: bool) -> None:
    rng = np.random.default_rng(0)  # fixed jitter: the figure is byte-stable across reruns
    for i, p in enumerate(points):
        jitter = i + rng.uniform(-0.15, 0.15, len(p["values"]))
        ax.scatter(p["values"], jitter, color=ctx.color(p["variant"]), s=18, alpha=0.7)
        if math.isfinite(p["mean"]):
            ax.plot([p["mean"]], [i], marker="D", color="k", ms=5, zorder=3)
            if math.isfinite(p["lo"]) and math.isfinite(p["hi"]):
                ax.plot([p["lo"], p["hi"]], [i, i], color="k", lw=1.5, zorder=2)
        ax.scatter(p["diverged"], [i] * len(p["diverged"]), marker="x", color=DIVERGED_COLOR,
                   s=30)  # fmt: skip
        if p["n_diverged"] and notes:
            _margin_note(ax, i, f"diverged {p['n_diverged']}/{p['n']}")
    ax.set_ylim(len(points) - 0.5, -0.5)


def _x_ranges(points: list[dict[str, Any]], percent: bool, metric: str) -> list[tuple]:
    """One x range, or two when the values form two clusters far apart (a broken axis): a
    diverged variant at chance would otherwise squeeze every other variant into a sliver."""
    # The groups are those of the seeds and means; an interval that spans the break is drawn
    # across it (clipped in each panel), as wide as it is.
    shown = [v for p in points for k in ("values", "diverged") for v in p[k]]
    shown = sorted(shown + [p["mean"] for p in points if math.isfinite(p["mean"])])
    if not shown:
        return [(0.0, 1.0)]
    clusters = [(shown[0], shown[-1])]
    if len(shown) > 2:
        gaps = np.diff(shown)
        k = int(np.argmax(gaps))
        if gaps[k] > 0.5 * (shown[-1] - shown[0]):
            clusters = [(shown[0], shown[k]), (shown[k + 1], shown[-1])]
    if len(clusters) == 1:  # one axis: the intervals fit in it
        bounds = [p[k] for p in points for k in ("lo", "hi") if math.isfinite(p[k])]
        clusters = [(min([shown[0], *bounds]), max([shown[-1], *bounds]))]
    ranges = []
    for lo, hi in clusters:
        pad = max(0.5 if percent else 0.0, 0.06 * (hi - lo)) or 0.05 * abs(hi) or 0.1
        left, right = lo - pad, hi + pad
        if percent:
            # A CI that includes a diverged run can reach past 0% or 100%; accuracy cannot.
            left, right = max(left, 0.0 if metric != "gap_acc" else -100.0), min(right, 100.0)
        ranges.append((left, right))
    return ranges


def _format_x(ax: Any, metric: str, percent: bool) -> None:
    if metric == "gap_acc":
        ax.axvline(0, color="0.5", lw=1, ls=":")
    if metric.startswith("gap"):
        # A difference of two accuracies: percentage points, not a percentage.
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g} pp"))
    elif percent:
        _percent_axis(ax, "x")


def _per_variant(ctx: Context, what: str, metric: str, label: str) -> tuple[Figure, str]:
    """Final ``metric`` per variant: seeds as dots, mean and 95% CI, diverged runs marked.

    Accuracies (and their gap) of diverged runs are real outcomes and count in the mean, as in the
    tables; losses of diverged runs are meaningless and are left out (also as in the tables).
    """
    runs = ctx.runs(what)
    _require(runs, ["variant", "seed", "status", metric], "runs.csv", what)
    percent = "acc" in metric
    keep_diverged = "loss" not in metric
    points = _variant_points(ctx, runs, metric, keep_diverged, 100.0 if percent else 1.0)
    ranges = _x_ranges(points, percent, metric)
    widths = [1.0] if len(ranges) == 1 else [1.0, 3.0]
    fig, axes = plt.subplots(1, len(ranges), figsize=(6.0, 0.45 * len(points) + 1.2),
                             sharey=True, squeeze=False, width_ratios=widths)  # fmt: skip
    for j, (ax, xlim) in enumerate(zip(axes[0], ranges, strict=True)):
        _draw_points(ax, ctx, points, notes=j == len(ranges) - 1)
        ax.set_xlim(*xlim)
        _format_x(ax, metric, percent)
    _variant_ticks(axes[0, 0], [p["variant"] for p in points], ctx)
    if len(ranges) == 2:
        _break_marks(axes[0, 0], axes[0, 1])
    fig.supxlabel(label, fontsize=10)
    fig.tight_layout()
    caption = (
        f"Final {label} per variant: dots are seeds, diamonds the mean and bars its 95% "
        f"confidence interval ({_n_seeds(runs)})."
        + (" The axis is broken between the two groups of values." if len(ranges) == 2 else "")
    )
    diverged_total = sum(p["n_diverged"] for p in points)
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


def _break_marks(left: Any, right: Any) -> None:
    """The two panels of a broken axis: no spine between them, diagonal marks at the break."""
    left.spines["right"].set_visible(False)
    right.spines["left"].set_visible(False)
    right.tick_params(axis="y", left=False)
    marks = {"marker": [(-1, -1), (1, 1)], "markersize": 8, "linestyle": "none", "color": "k",
             "mec": "k", "mew": 1, "clip_on": False}  # fmt: skip
    left.plot([1, 1], [0, 1], transform=left.transAxes, **marks)
    right.plot([0, 0], [0, 1], transform=right.transAxes, **marks)


@figure("test_accuracy", needs="tables/runs.csv")
def test_accuracy(ctx: Context) -> tuple[Figure, str]:
    return _per_variant(ctx, "test_accuracy", "test_acc", "test accuracy")


@figure("test_loss", needs="tables/runs.csv")
def test_loss(ctx: Context) -> tuple[Figure, str]:
    return _per_variant(ctx, "test_loss", "test_loss", "test loss (cross-entropy)")


@figure("generalization_gap", needs="tables/runs.csv")
def generalization_gap(ctx: Context) -> tuple[Figure, str]:
    fig, caption = _per_variant(
        ctx, "generalization_gap", "gap_acc", "generalization gap (train − test accuracy)"
    )
    return fig, caption + " Smaller is less overfitting."


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


def _grid_axes(ablation: Any) -> dict[str, list]:
    """The ablation's grid, or the keys its variant names spell (``optim-adam_schedule-cosine``)."""
    grid = dict(getattr(ablation, "grid", None) or {})
    if not grid:
        keys: list[str] = []
        for variant in ablation.variants:
            for key in _parse_grid_variant(variant):
                if key not in keys:
                    keys.append(key)
        grid = {k: [] for k in keys}
    return grid


def _two_grid_axes(ablation: Any) -> str | None:
    grid = _grid_axes(ablation)
    if len(grid) == 2:
        return None
    return f"needs a grid over exactly two keys, got {list(grid) or 'none'}"


@figure("grid_heatmap", needs="tables/runs.csv + a two-key grid", requires=_two_grid_axes)
def grid_heatmap(ctx: Context) -> tuple[Figure, str]:
    what = "grid_heatmap"
    runs = ctx.runs(what)
    _require(runs, ["variant", "seed", "status", "test_acc"], "runs.csv", what)
    grid = _grid_axes(ctx.ablation)
    if len(grid) != 2:
        raise FigureError(f"ablation {ctx.name!r}: {what} {_two_grid_axes(ctx.ablation)}")
    (row_key, row_vals), (col_key, col_vals) = grid.items()
    order = {v: i for i, v in enumerate(ctx.ablation.variants)}  # extra rows in file order
    df = runs.sort_values("variant", key=lambda v: v.map(order).fillna(len(order)), kind="stable")
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
    cells = _grid_cells(ctx, df)
    fig, ax = plt.subplots(figsize=(1.5 * len(cols) + 2.6, 0.8 * len(rows) + 1.6))
    _draw_grid(ax, cells, rows, cols)
    ax.set(xlabel=col_key, ylabel=row_key)
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig, _grid_caption(ctx, df, cells, len(rows) * len(cols), (row_key, col_key))


def _grid_caption(ctx: Context, df: pd.DataFrame, cells: dict, n_cells: int, keys: tuple) -> str:
    n_div = int(sum(c["n_diverged"] for c in cells.values()))
    n_missing = n_cells - len(cells)  # a grid completed by listed variants may leave cells out
    return (
        f"Mean test accuracy (%) ± the half-width of its 95% interval over {_n_seeds(df)} for "
        f"each combination of {keys[0]} (rows) and {keys[1]} (columns). Colour: the paired "
        f"difference to the cell's reference (the baseline {ctx.ablation.baseline}, or the "
        "variant the ablation's compare measures it against) in percentage points, only where "
        "it is significant (better or worse); grey cells are inconclusive, the baseline is white."
        + (f" {n_missing} not run: not in the ablation (its file says why)." if n_missing else "")
        + (
            f" {n_div} runs diverged, counted in their cells (div. k/n); their accuracy is in the "
            "mean, as in the tables."
            if n_div
            else " No run diverged."
        )
    )


def _grid_cells(ctx: Context, df: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """Per cell: test accuracy's mean and CI half-width, difference, verdict, diverged runs."""
    summary = ctx.summary()
    verdicts = {}
    if summary is not None and {"test_acc_diff", "test_acc_verdict"} <= set(summary.columns):
        for _, r in summary.iterrows():
            verdicts[str(r["variant"])] = (float(r["test_acc_diff"]), str(r["test_acc_verdict"]))
    cells = {}
    for (row, col), part in df.groupby(["row_", "col_"]):
        variant = str(part["variant"].iloc[0])
        mean, lo, _ = t_interval(pd.to_numeric(part["test_acc"], errors="coerce"))
        diff, verdict = verdicts.get(variant, (math.nan, "inconclusive"))
        cells[(row, col)] = {
            "mean": 100 * mean, "half": 100 * (mean - lo), "diff": 100 * diff,
            "verdict": "baseline" if variant == ctx.ablation.baseline else verdict,
            "n_diverged": int((part["status"] == DIVERGED).sum()), "n": len(part),
        }  # fmt: skip
    return cells


def _draw_grid(ax: Any, cells: dict, rows: list[str], cols: list[str]) -> None:
    """Coloured by the significant differences only: a colour scale over every mean would make
    differences inside the noise look as large as real ones."""
    diff = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            cell = cells.get((r, c))
            if cell and cell["verdict"] in ("better", "worse", "baseline"):
                diff[i, j] = 0.0 if cell["verdict"] == "baseline" else cell["diff"]
    bound = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 1.0
    ax.set_facecolor("0.88")
    ax.grid(False)
    sns.heatmap(pd.DataFrame(diff, index=rows, columns=cols), cmap="RdBu", center=0,
                vmin=-(bound or 1.0), vmax=bound or 1.0, linewidths=0.5, ax=ax,
                cbar_kws={"label": "Δ test accuracy vs reference (pp)"})  # fmt: skip
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            cell = cells.get((r, c))
            if not cell:
                ax.text(j + 0.5, i + 0.5, "not run", ha="center", va="center", fontsize=7.5,
                        color="0.45", style="italic")  # fmt: skip
                continue
            text = f"{cell['mean']:.3g} ± {cell['half']:.2g}" if math.isfinite(cell["half"]) else (
                f"{cell['mean']:.3g}")  # fmt: skip
            text += "\n" + cell["verdict"]
            if cell["n_diverged"]:
                text += f"\ndiv. {cell['n_diverged']}/{cell['n']}"
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7.5)


@figure("epochs_to_target", needs="tables/history.csv (val_acc)")
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
            _margin_note(ax, i, ", ".join(notes))
    _variant_ticks(ax, variants, ctx)
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
