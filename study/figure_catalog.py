"""Which figures an ablation has and at what resolution they are drawn, without any plotting.

The report and the workflow read this; drawing lives in :mod:`study.figures`, whose registry
checks the names (and whether an ablation can have a figure) when the study is planned.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from study.errors import ConfigError

PNG_DPI = 150
"""Resolution of the PNGs: sharp on dense screens; the report shows them at 100 CSS px per inch."""

DEFAULT_FIGURES = ("learning_curves", "test_accuracy", "forest")
"""Figures every ablation gets."""


def figure_names(ablation: Any) -> list[str]:
    """The figures of an ablation: the defaults, then its ``figures:`` list, each once."""
    return list(dict.fromkeys([*DEFAULT_FIGURES, *(getattr(ablation, "figures", None) or [])]))


# ---------------------------------------------------------------------------------------------
# Which figures exist and what an ablation needs to have each, without importing the plotting
# libraries: planning checks every ablation's figures, and importing matplotlib and seaborn to do
# so cost 1.3 s of every `snakemake -n`. study.figures registers the same names with the same
# requirements beside the drawing code; tests/test_figure_catalog.py holds the two in agreement.
# ---------------------------------------------------------------------------------------------

_GRID_PART = re.compile(r"_(?=[a-z0-9.]+-)")


def _grid_keys(ablation: Any) -> list[str]:
    """The ablation's grid keys, or the keys its variant names spell (``optim-adam_lr-0.1``)."""
    grid = dict(getattr(ablation, "grid", None) or {})
    if grid:
        return list(grid)
    keys: list[str] = []
    for variant in getattr(ablation, "variants", None) or []:
        for part in _GRID_PART.split(variant):
            key, sep, _ = part.partition("-")
            if sep and key not in keys:
                keys.append(key)
    return keys


def _two_grid_axes(ablation: Any) -> str | None:
    keys = _grid_keys(ablation)
    return None if len(keys) == 2 else f"needs a grid over exactly two keys, got {keys or 'none'}"


def _evaluated_under_shift(ablation: Any) -> str | None:
    return None if getattr(ablation, "shift", False) else "its file does not set shift: true"


def _tuned(ablation: Any) -> str | None:
    return None if getattr(ablation, "tune", None) else "its file has no tune block"


FIGURE_REQUIREMENTS: dict[str, Callable[[Any], str | None]] = {
    "grid_heatmap": _two_grid_axes,
    "lr_sensitivity": _tuned,
    "shift_severity": _evaluated_under_shift,
    "drift": _evaluated_under_shift,
}
"""The figures that need something of an ablation, and what (every other figure needs nothing)."""

_FIGURE_MODULES = Path(__file__).resolve().parent / "figures"
_REGISTERED = re.compile(r"^@figure\(\s*\"([a-z0-9_]+)\"", re.MULTILINE)


@functools.cache
def known_figures() -> tuple[str, ...]:
    """Every figure name that study/figures registers with ``@figure("name", ...)``, read from the
    source (importing it would import the plotting libraries)."""
    names = {
        m for path in _FIGURE_MODULES.glob("*.py") for m in _REGISTERED.findall(path.read_text())
    }
    return tuple(sorted(names | set(FIGURE_REQUIREMENTS)))


def check_figure_names(ablation: Any) -> list[str]:
    """The figures of ``ablation``, each one it can have; else ConfigError, one line."""
    where = f"{getattr(ablation, 'path', None) or ablation.name}"
    names = figure_names(ablation)
    for name in names:
        if name not in known_figures():
            known = ", ".join(known_figures())
            raise ConfigError(f"{where}: figures: unknown figure {name!r}; known: {known}")
        requires = FIGURE_REQUIREMENTS.get(name)
        why = requires(ablation) if requires else None
        if why:
            raise ConfigError(
                f"{where}: figures: {name} {why}; remove it from figures or fix the file"
            )
    return names
