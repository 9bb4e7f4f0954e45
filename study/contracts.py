"""The CSV files the study passes between its steps: their columns, and the one way to read them.

Every step that reads a CSV (tables, claims, figures, report) goes through :func:`read_csv` with
the file's :class:`Contract`, so a variant named ``1`` or ``0.5`` is the same string everywhere
and a missing or empty file means the same thing in every step:

- a missing file is a :class:`ContractError` naming it, or ``None`` with ``optional=True``;
- an empty file (not even a header: a run whose evaluation wrote nothing) is an empty frame
  without columns;
- the contract's text columns are read as strings; every other column's type is inferred, as
  pandas does, so numbers written by a step come back as the same numbers.

The column lists are documented in docs/architecture.md; :func:`require_columns` checks a file
against its contract's required columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a training job reads HISTORY_COLUMNS here and must not import pandas
    import pandas as pd

# Per epoch, as the training loop writes a run's history.csv.
HISTORY_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "seconds",
    "eval_seconds",
)
# Per evaluation under shift, as study.experiments.shift writes a run's shift.csv.
SHIFT_COLUMNS = ("shift", "severity", "adapted", "slice", "accuracy", "loss")
RUN_KEYS = ("ablation", "variant", "seed")
TUNING_KEYS = ("ablation", "variant", "level", "seed")
SELECTION_COLUMNS = (
    "variant", "key", "grid", "chosen", "lr", "metric", "value", "at_edge", "edge",
    "all_diverged", "n_diverged", "n_seeds", "last_epochs",
)  # fmt: skip
CLAIMS_COLUMNS = (
    "id",
    "claim",
    "ablation",
    "metric",
    "unit",
    "direction",
    "test",
    "margin",
    "effect",
    "lo",
    "hi",
    "p",
    "p_adjusted",
    "detectable_effect",
    "seeds",
    "verdict",
    "figure",
    "margin_reason",
    "detail",
    # why an undecided verdict is undecided (a failed guard, the correction, a wide interval)
    "verdict_reason",
    # the other claims with the same test: one p-value, counted once in the correction
    "shares_test_with",
    # a number beyond what was run (a fitted law carried to a larger size), and what its points are
    "extrapolated",
    "basis",
)
# The ledger committed next to the report (paper/claims.csv at the default scale): one row per
# claim, effects in the claim's unit.
REPORT_CLAIMS_COLUMNS = (
    "id",
    "claim",
    "metric",
    "unit",
    "direction",
    "margin",
    "effect",
    "lo",
    "hi",
    "p",
    "p_adjusted",
    "detectable_effect",
    "seeds",
    "verdict",
)
SECOND_ORDER_COLUMNS = ("method", "iterations", "seconds", "reached")
# The pathologies experiment (study.experiments.pathologies), one measured value per row.
PATHOLOGIES_COLUMNS = ("experiment", "method", "geometry", "x", "seed", "quantity", "value")

# Names and words: always text, whatever they look like ("1", "0.5", "nan" stay strings).
TEXT_COLUMNS = (
    "ablation",
    "variant",
    "level",
    "status",
    "shift",
    "id",
    "claim",
    "verdict",
    "figure",
    "detail",
    "method",
    "unit",
    "direction",
    "test",
    "margin_reason",
    "fingerprint",
    "verdict_reason",
    "shares_test_with",
    "basis",
    "grid",
    "edge",
)


class ContractError(ValueError):
    """A file that breaks its contract: ``path`` and the ``problem`` (one line)."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


@dataclass(frozen=True)
class Contract:
    """A CSV file of the study: its name, its documented columns and those it cannot lack."""

    name: str
    columns: tuple[str, ...]
    required: tuple[str, ...] = ()

    @property
    def dtypes(self) -> dict[str, type]:
        return {c: str for c in TEXT_COLUMNS}


# A run folder's own files.
RUN_HISTORY = Contract(
    "history.csv", HISTORY_COLUMNS, ("epoch", "train_loss", "val_loss", "val_acc")
)
RUN_SHIFT = Contract("shift.csv", SHIFT_COLUMNS, SHIFT_COLUMNS)
SELECTION = Contract("selection table", SELECTION_COLUMNS, ("variant", "key", "chosen"))
SECOND_ORDER = Contract("second_order.csv", SECOND_ORDER_COLUMNS, SECOND_ORDER_COLUMNS)
PATHOLOGIES = Contract("pathologies.csv", PATHOLOGIES_COLUMNS, PATHOLOGIES_COLUMNS)
# The tables of a scale (results/<scale>/tables/).
RUNS = Contract("runs.csv", (*RUN_KEYS, "status"))
HISTORY = Contract("history.csv", (*RUN_KEYS, *HISTORY_COLUMNS))
SHIFT = Contract("shift.csv", (*RUN_KEYS, *SHIFT_COLUMNS))
TUNING = Contract("tuning.csv", (*TUNING_KEYS, "status"))
SUMMARY = Contract("<ablation>.csv", ("ablation", "variant", "is_baseline", "reference", "n_seeds"))
CLAIMS = Contract("claims.csv", CLAIMS_COLUMNS)
# The report's folder (study.paths.report_dir).
REPORT_CLAIMS = Contract("claims.csv", REPORT_CLAIMS_COLUMNS, REPORT_CLAIMS_COLUMNS)


def read_csv(path: str | Path, contract: Contract, optional: bool = False) -> pd.DataFrame | None:
    """``path`` as a frame, text columns as strings (see the module docstring for the rules)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        if optional:
            return None
        raise ContractError(path, f"{contract.name} does not exist")
    try:
        return pd.read_csv(path, dtype=contract.dtypes)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise ContractError(path, f"unreadable {contract.name} ({type(e).__name__}: {e})") from None


def require_columns(df: pd.DataFrame, contract: Contract, path: str | Path) -> None:
    """ContractError if ``df`` (read from ``path``) lacks a required column of ``contract``."""
    missing = [c for c in contract.required if c not in df.columns]
    if missing:
        raise ContractError(Path(path), f"{contract.name} lacks the column(s) {', '.join(missing)}")
