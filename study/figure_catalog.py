"""Which figures an ablation has and at what resolution they are drawn, without any plotting.

The report and the workflow read this; drawing lives in :mod:`study.figures`, whose registry
checks the names (and whether an ablation can have a figure) when the study is planned.
"""

from __future__ import annotations

from typing import Any

PNG_DPI = 150
"""Resolution of the PNGs: sharp on dense screens; the report shows them at 100 CSS px per inch."""

DEFAULT_FIGURES = ("learning_curves", "test_accuracy", "forest")
"""Figures every ablation gets."""


def figure_names(ablation: Any) -> list[str]:
    """The figures of an ablation: the defaults, then its ``figures:`` list, each once."""
    return list(dict.fromkeys([*DEFAULT_FIGURES, *(getattr(ablation, "figures", None) or [])]))
