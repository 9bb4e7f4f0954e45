"""Figures of one ablation, drawn from the aggregated tables and the run folders.

Every ablation gets ``learning_curves``, ``test_accuracy`` and ``forest``; its ``figures:`` list
adds more from :data:`FIGURES`, where each figure module registers its figures with the
:func:`figure` decorator next to the drawing function. A figure an ablation cannot have (a grid
figure without a grid) is refused when the study is planned (:func:`check_figures`). Each figure is
written as ``<scale_dir>/figures/<ablation>/<name>.{png,svg}`` and its caption (which quotes numbers
from the data, so it is computed with the figure) goes into ``captions.json`` beside them, where the
report reads it.

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
from pathlib import Path
from typing import Any

from study.figure_catalog import DEFAULT_FIGURES, figure_names

# common first: it selects the Agg backend before the figure modules import pyplot. The figure
# modules are imported for their registrations; ``X as X`` marks a re-export.
from study.figures import comparisons, curves, forest, shift, tuning, weights  # noqa: F401
from study.figures.common import (
    BASELINE_COLOR,
    FIGURES,
    PNG_DPI,
    Context,
    FigureError,
    FigureNotPossible,
    FigureSpec,
    _save_figure,
    _style,
    _write_captions,
    figure,
    variant_palette,
)
from study.figures.common import DIVERGED as DIVERGED
from study.figures.common import DIVERGED_COLOR as DIVERGED_COLOR
from study.figures.common import t_interval as t_interval
from study.figures.comparisons import TARGET_FRACTION as TARGET_FRACTION
from study.figures.comparisons import _parse_grid_variant as _parse_grid_variant
from study.figures.weights import SPARSITY_THRESHOLD as SPARSITY_THRESHOLD
from study.figures.weights import WEIGHT_FLOOR as WEIGHT_FLOOR
from study.paths import ScaleDir

__all__ = [
    "BASELINE_COLOR",
    "DEFAULT_FIGURES",
    "FIGURES",
    "PNG_DPI",
    "Context",
    "FigureError",
    "FigureNotPossible",
    "FigureSpec",
    "check_figures",
    "figure",
    "figure_names",
    "main",
    "make_figures",
    "variant_palette",
]


def check_figures(ablation: Any, names: list[str] | None = None) -> list[str]:
    """The figures of ``ablation`` (or ``names``), each one it can have; else one clear line.

    Runs when the study is planned, so an ablation never asks for a figure that cannot be drawn
    (an unknown name, a grid figure without a grid, a tuning figure without tuning, ...).
    """
    names = figure_names(ablation) if names is None else list(names)
    where = f"{getattr(ablation, 'path', None) or ablation.name}"
    for name in names:
        if name not in FIGURES:
            raise FigureNotPossible(
                f"{where}: figures: unknown figure {name!r}; known: {', '.join(FIGURES)}"
            )
        requires = FIGURES[name].requires
        why = requires(ablation) if requires else None
        if why:
            raise FigureNotPossible(
                f"{where}: figures: {name} {why}; remove it from figures or fix the file"
            )
    return names


def make_figures(
    scale_dir: str | Path, ablation: Any, names: list[str] | None = None
) -> dict[str, str]:
    """Draw the figures of ``ablation``; returns figure name → caption (also in captions.json)."""
    ctx = Context(Path(scale_dir), ablation)
    try:
        names = check_figures(ablation, names)
    except FigureNotPossible as err:
        raise FigureError(str(err)) from None
    out_dir = ScaleDir(ctx.scale_dir).figures(ablation.name)
    captions: dict[str, str] = {}
    for name in names:
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
    out = ScaleDir(args.scale_dir).figures(args.ablation)
    for name in captions:
        print(out / f"{name}.png")
    return 0
