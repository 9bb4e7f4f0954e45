"""What every figure shares: its inputs, colours, style and how it is written to disk.

:class:`Context` is what a figure function reads (the ablation, its colours, its tables);
:class:`FigureError` is what it raises when an input is absent. The drawing helpers here are used
by several figure modules; :func:`_style`, :func:`_save_figure` and :func:`_write_captions` are
used by :func:`study.figures.make_figures`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

from study import contracts
from study.errors import ConfigError
from study.figure_catalog import PNG_DPI
from study.outputs import atomic_path
from study.registry import Registry

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

BASELINE_COLOR = "#3b3b3b"
"""The baseline's colour in every figure: dark grey, so the eye reads it as the reference."""

DIVERGED_COLOR = "#d62728"
# A run whose status is this is excluded from means and marked in the figures.
DIVERGED = "diverged"


class FigureError(RuntimeError):
    """A requested figure cannot be drawn because an input is absent."""


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureSpec:
    """A figure: ``draw(ctx) -> (figure, caption)``, what it reads (for error messages) and, if
    not every ablation can have it, ``requires(ablation)``: why this one cannot, or None."""

    build: Callable[[Context], tuple[Figure, str]]
    needs: str
    requires: Callable[[Any], str | None] | None = None

    @property
    def draw(self) -> Callable[[Context], tuple[Figure, str]]:
        return self.build


class FigureRegistry(Registry[FigureSpec]):
    def __getitem__(self, name: str) -> FigureSpec:
        return self.get(name)


class FigureNotPossible(ConfigError):
    """An ablation asks for a figure it cannot have (unknown, or its file lacks what it needs)."""


FIGURES: FigureRegistry = FigureRegistry("figure", "figures", FigureSpec)
"""Figure name → how to draw it. Ablation files name extra figures from these names."""


def figure(
    name: str, needs: str, requires: Callable[[Any], str | None] | None = None
) -> Callable[[Callable], Callable]:
    """Register the decorated function as the figure ``name``."""
    return FIGURES.builder(name, needs=needs, requires=requires)


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

# The tables a figure reads, by file name.
_CONTRACTS = {
    c.name: c for c in (contracts.RUNS, contracts.HISTORY, contracts.SHIFT, contracts.TUNING)
}


def _read_csv(path: Path) -> pd.DataFrame:
    # Variant names such as "1" or "0.5" stay strings so they match the ablation file.
    return contracts.read_csv(path, _CONTRACTS.get(path.name, contracts.SUMMARY))


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
                frame = contracts.read_csv(path, contracts.RUN_HISTORY)
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
# Style and output
# ------------------------------------------------------------------------------------------------


def _margin_note(ax: Any, row: float, text: str) -> None:
    """A note in the right margin beside a variant's row (diverged or never-reached runs)."""
    ax.annotate(
        text,
        xy=(1.0, row),
        xycoords=("axes fraction", "data"),
        xytext=(4, 0),
        textcoords="offset points",
        va="center",
        fontsize=8,
        color=DIVERGED_COLOR,
    )


def _variant_ticks(ax: Any, variants: list[str], ctx: Any) -> None:
    """One y tick per variant, labelled in the variant's colour."""
    ax.set_yticks(range(len(variants)), variants)
    for tick, variant in zip(ax.get_yticklabels(), variants, strict=True):
        tick.set_color(ctx.color(variant))


def _style() -> contextlib.AbstractContextManager:
    rc = {
        **sns.axes_style("whitegrid"),
        **sns.plotting_context("paper", font_scale=1.1),
        "svg.hashsalt": "study",  # stable SVG element ids, so reruns give identical files
        "figure.dpi": 100,
    }
    return plt.rc_context(rc)


def _save_figure(fig: Figure, out_dir: Path, name: str) -> None:
    """Write ``fig`` as ``<out_dir>/<name>.{png,svg}`` (each atomically), then close it."""
    try:
        for ext in ("png", "svg"):
            with atomic_path(out_dir / f"{name}.{ext}") as tmp:
                # No timestamps in the metadata: unchanged data gives unchanged files.
                meta = {"Software": None} if ext == "png" else {"Date": None}
                fig.savefig(tmp, format=ext, dpi=PNG_DPI, metadata=meta)
    finally:
        plt.close(fig)


def _write_captions(out_dir: Path, captions: dict[str, str]) -> None:
    """Merge ``captions`` into ``<out_dir>/captions.json`` (figures drawn earlier keep theirs)."""
    path = out_dir / "captions.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({**previous, **captions}, indent=2, ensure_ascii=False) + "\n")
