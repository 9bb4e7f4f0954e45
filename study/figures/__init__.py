"""Figures of one ablation, drawn from the aggregated tables and the run folders.

Every ablation gets ``learning_curves`` and ``test_accuracy``; its ``figures:`` list adds more from
:data:`FIGURES`. Each figure is written as ``<scale_dir>/figures/<ablation>/<name>.{png,svg}`` and
its caption (which quotes numbers from the data, so it is computed with the figure) goes into
``captions.json`` beside them, where the report reads it.

A variant keeps its colour in every figure of an ablation: colours follow the variant order of the
ablation file and the baseline is always :data:`BASELINE_COLOR`.

A figure whose inputs are absent raises :class:`FigureError` naming the missing file or column; a
half-drawn figure in a paper is worse than a failed job.

Figures are drawn in modules by subject: ``curves`` (per epoch or step), ``comparisons`` (final
results per variant), ``weights``, ``tuning`` and ``shift``; ``common`` holds what they share
(inputs, colours, style, output). This module holds the registry and the command line.

Usage::

    python -m study.figures --scale-dir results/default --ablation regularization \\
        --ablations conf/ablation
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

# common first: it selects the Agg backend before the figure modules import pyplot. ``X as X``
# marks a re-export: a name of the former single module, kept importable from study.figures.
from study.figures.common import (
    BASELINE_COLOR,
    PNG_DPI,
    Context,
    FigureError,
    _save_figure,
    _style,
    _write_captions,
    variant_palette,
)
from study.figures.common import DIVERGED as DIVERGED
from study.figures.common import DIVERGED_COLOR as DIVERGED_COLOR
from study.figures.common import t_interval as t_interval
from study.figures.comparisons import TARGET_FRACTION as TARGET_FRACTION
from study.figures.comparisons import _parse_grid_variant as _parse_grid_variant
from study.figures.comparisons import (
    epochs_to_target,
    generalization_gap,
    grid_heatmap,
    test_accuracy,
    test_loss,
)
from study.figures.curves import learning_curves, lr_schedules, train_loss_curves
from study.figures.shift import drift, shift_severity
from study.figures.tuning import lr_sensitivity
from study.figures.weights import SPARSITY_THRESHOLD as SPARSITY_THRESHOLD
from study.figures.weights import WEIGHT_FLOOR as WEIGHT_FLOOR
from study.figures.weights import WEIGHT_VARIANTS as WEIGHT_VARIANTS
from study.figures.weights import weight_histogram

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

DEFAULT_FIGURES = ("learning_curves", "test_accuracy")
"""Figures every ablation gets."""


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
            _save_figure(fig, out_dir, name)
        captions[name] = caption
    _write_captions(out_dir, captions)
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
    from study.planning.ablation import load_ablations

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
