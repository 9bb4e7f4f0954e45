"""Figures of the normalization variants under distribution shift: corruption severity and
drift over time slices, each with and without test-time adaptation."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from study.figures.common import (
    Context,
    FigureError,
    _boolish,
    _grid_shape,
    _n_seeds,
    _percent_axis,
    _plot_mean_band,
    _require,
    figure,
)


def _evaluated_under_shift(ablation) -> str | None:
    return None if getattr(ablation, "shift", False) else "its file does not set shift: true"


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


@figure(
    "shift_severity",
    needs="tables/shift.csv (corruption rows)",
    requires=_evaluated_under_shift,
)
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
    variants = ctx.order(averaged["variant"].unique())
    fig = _severity_panels(ctx, averaged, variants)
    corruptions = ", ".join(sorted(per_seed["shift"].unique()))
    caption = (
        "Test accuracy against corruption severity, averaged over the corruptions "
        f"({corruptions}), one panel per normalization variant: solid without adaptation, dashed "
        "with test-time adaptation of the normalization statistics (AdaBN); the dotted grey "
        "line is the "
        f"baseline ({ctx.ablation.baseline}) without adaptation. Mean over {_n_seeds(averaged)}, "
        "shaded band the range over seeds. The models are not retrained; per-corruption numbers "
        "are in tables/shift.csv."
    )
    return fig, caption


def _severity_panels(ctx: Context, data: pd.DataFrame, variants: list[str]) -> Figure:
    """Small multiples, one variant each: two lines per panel instead of eighteen in one."""
    rows, cols = _grid_shape(len(variants), max_cols=3)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 2.3 * rows + 0.6), sharex=True,
                             sharey=True, squeeze=False)  # fmt: skip
    reference = data[(data["variant"] == ctx.ablation.baseline) & ~data["adapted"]]
    for ax, variant in zip(axes.flat, variants, strict=False):
        if variant != ctx.ablation.baseline:
            _plot_mean_band(ax, reference, "severity", "accuracy", color="0.55", lw=1.2, ls=":")
        for adapted, ls in ((False, "-"), (True, "--")):
            sel = data[(data["variant"] == variant) & (data["adapted"] == adapted)]
            _plot_mean_band(ax, sel, "severity", "accuracy", color=ctx.color(variant), ls=ls,
                            marker=".", lw=1.8)  # fmt: skip
        ax.set_title(variant, fontsize=9)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.tick_params(labelbottom=True, labelleft=True)
        _percent_axis(ax)
    for ax in axes.flat[len(variants) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("severity")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    handles = [
        *_adapted_handles(),
        Line2D([], [], color="0.55", ls=":", label="baseline, not adapted"),
    ]
    fig.legend(handles=handles, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (2.3 * rows + 0.6)))
    return fig


@figure("drift", needs="tables/shift.csv (drift rows with slice)", requires=_evaluated_under_shift)
def drift(ctx: Context) -> tuple[Figure, str]:
    what = "drift"
    df = _shift_frame(ctx, what)
    df = df[df["slice"].notna()]
    if df.empty:
        raise FigureError(f"ablation {ctx.name!r}: {what} needs drift rows (slice) in shift.csv")
    df["slice"] = df["slice"].astype(float)
    streams = sorted(df["shift"].unique())
    fig, axes = plt.subplots(
        1, len(streams), figsize=(6.0 * len(streams) + 2.5, 3.8), sharey=True, squeeze=False
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
    # Outside the axes: inside, the legend covers the curves of the non-i.i.d. variants.
    axes[0, -1].legend(handles=handles, frameon=False, fontsize=8, loc="upper left",
                       bbox_to_anchor=(1.01, 1))  # fmt: skip
    fig.tight_layout()
    caption = (
        "Accuracy on each time slice of the drift stream, for each variant: solid without "
        "adaptation, dashed with test-time adaptation; mean over "
        f"{_n_seeds(df)}, shaded band the range over seeds."
    )
    return fig, caption
