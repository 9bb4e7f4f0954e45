"""The results layout: where every file of a study lives, for the workflow rules and the code.

One scale's results live under ``results/<scale>/`` (a :class:`ScaleDir`); the report of the
default scale is the committed one in ``paper/``, every other scale writes its report under
``results/<scale>/paper/`` so that a smoke run never replaces the paper. The rules build their
file patterns with the same functions, passing wildcards (``"{ablation}"``) as the names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STUDY_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = STUDY_ROOT / "paper" / "templates"
# The scale whose report is the paper in the repository; any other scale's stays in results/.
PAPER_SCALE = "default"

RUNS = "runs"
TUNE = "tune"
SEED_DIR = re.compile(r"seed(\d+)")


def run_folder(ablation: str, variant: str, seed: int | str) -> str:
    """A training run's folder, under the scale folder: ``runs/<ablation>/<variant>/seed<k>``."""
    return f"{RUNS}/{ablation}/{variant}/seed{seed}"


def tuning_folder(ablation: str, variant: str, level: str, seed: int | str = 0) -> str:
    """A tuning run's folder: ``tune/<ablation>/<variant>/<level>/seed<k>`` (level ``lr-0.001``)."""
    return f"{TUNE}/{ablation}/{variant}/{level}/seed{seed}"


@dataclass(frozen=True)
class RunKey:
    """What a run folder's path says about the run; ``level`` only for tuning runs."""

    ablation: str
    variant: str
    seed: int
    level: str | None = None


def parse_run_folder(parts: tuple[str, ...] | str | Path, levels: bool = False) -> RunKey | None:
    """The run a folder path (relative to ``runs/`` or ``tune/``) belongs to; None if it is not a
    run folder of the layout. With ``levels``, the folders between variant and seed are the
    tuning grid point (joined by ``/``)."""
    if not isinstance(parts, tuple):
        parts = Path(parts).parts
    if parts and parts[0] in (RUNS, TUNE):
        parts = parts[1:]
    match = SEED_DIR.fullmatch(parts[-1]) if parts else None
    if match is None or len(parts) < 3 or (not levels and len(parts) != 3):
        return None
    level = "/".join(parts[2:-1]) if levels else None
    return RunKey(parts[0], parts[1], int(match.group(1)), level)


@dataclass(frozen=True)
class ScaleDir:
    """The folder of one scale's results and every path inside it."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of(cls, results: str | Path, scale: str) -> ScaleDir:
        return cls(Path(results) / scale)

    @property
    def runs(self) -> Path:
        return self.root / RUNS

    @property
    def tune(self) -> Path:
        return self.root / TUNE

    def run(self, ablation: str, variant: str, seed: int | str) -> Path:
        return self.root / run_folder(ablation, variant, seed)

    def tuning_run(self, ablation: str, variant: str, level: str, seed: int | str = 0) -> Path:
        return self.root / tuning_folder(ablation, variant, level, seed)

    def data_cache(self, dataset: str) -> Path:
        return self.root / "data" / f"{dataset}.pt"

    def selection(self, ablation: str, ext: str = "json") -> Path:
        """The learning-rate selection of a tuned ablation (``.json``; a ``.csv`` beside it)."""
        return self.root / "selection" / f"{ablation}.{ext}"

    @property
    def second_order(self) -> Path:
        return self.root / "second_order.csv"

    @property
    def pathologies(self) -> Path:
        return self.root / "pathologies.csv"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    def table(self, name: str, ext: str = "csv") -> Path:
        return self.tables / f"{name}.{ext}"

    def figures(self, ablation: str) -> Path:
        return self.root / "figures" / ablation

    def figure(self, ablation: str, name: str, ext: str = "png") -> Path:
        return self.figures(ablation) / f"{name}.{ext}"

    def captions(self, ablation: str) -> Path:
        return self.figures(ablation) / "captions.json"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


def report_dir(scale: str, results: str | Path = "results", paper: str | Path = "paper") -> Path:
    """Where a scale's report goes: ``paper`` for the default scale, else results/<scale>/paper."""
    return Path(paper) if scale == PAPER_SCALE else Path(results) / scale / "paper"
