"""Reading a scale's run folders into frames: one row per run, and every run's per-epoch history
and shift evaluations, each checked against the run folder contract of docs/architecture.md.

A run is complete when its metrics.json exists; folders without one are runs in progress and are
skipped. A bad file is a :class:`TablesError` naming it and what to do.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from study import contracts
from study.analysis.metrics import METRICS, REQUIRED_METRICS, STATUSES
from study.paths import parse_run_folder

RUN_KEYS = list(contracts.RUN_KEYS)
SHIFT_COLUMNS = list(contracts.SHIFT_COLUMNS)
# Nested entries of metrics.json: `config` is flattened into config.* columns, the others
# describe the machine and are left to the run folder, apart from the hardware's fingerprint
# (a column of its own: which kernels the run's numbers came from).
NESTED = ("config", "versions", "hardware")


class TablesError(ValueError):
    """A bad input; the message is one line naming the file and what to do."""


def _rerun(path: Path, problem: str) -> TablesError:
    return TablesError(
        f"{path}: {problem}; rerun that run: delete the folder {path.parent} and run the workflow "
        "again"
    )


def flatten(d: Mapping, prefix: str = "") -> dict:
    """Nested mappings as dotted keys; lists become JSON text so that they fit one cell."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def _load_metrics(path: Path, ablation: str, variant: str, seed: int) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _rerun(path, f"unreadable metrics.json ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise _rerun(path, "metrics.json is not a JSON object")
    missing = [k for k in REQUIRED_METRICS if k not in data]
    if missing:
        raise _rerun(path, f"metrics.json lacks {', '.join(missing)}")
    if data["status"] not in STATUSES:
        raise _rerun(path, f"status {data['status']!r} is not one of {', '.join(STATUSES)}")
    for key, expected in (("ablation", ablation), ("variant", variant), ("seed", seed)):
        if key in data and data[key] is not None and str(data[key]) != str(expected):
            raise _rerun(
                path, f"metrics.json says {key}={data[key]!r} but the folder is {expected!r}"
            )
    return data


def read_metrics(path: Path, ablation: str, variant: str, seed: int) -> dict:
    """One metrics.json as a flat row (metrics, config.* columns), checked against the contract."""
    data = _load_metrics(path, ablation, variant, seed)
    row = {"ablation": ablation, "variant": variant, "seed": seed, "status": data["status"]}
    for key, value in data.items():
        if key in RUN_KEYS or key == "status" or key in NESTED:
            continue
        if isinstance(value, Mapping | list):
            continue
        numeric = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        if (key in METRICS or key in REQUIRED_METRICS) and key != "status" and not numeric:
            raise _rerun(path, f"metric {key} is {value!r}, not a number")
        row[key] = value
    hardware = data.get("hardware")
    if isinstance(hardware, Mapping) and hardware.get("fingerprint"):
        row["fingerprint"] = str(hardware["fingerprint"])
    config = data.get("config")
    if isinstance(config, Mapping):
        row.update(flatten(config, "config."))
    return row


def read_run_csv(path: Path, contract: contracts.Contract) -> pd.DataFrame:
    """A run folder's history.csv or shift.csv, with the contract's required columns."""
    try:
        df = contracts.read_csv(path, contract)
        contracts.require_columns(df, contract, path)
    except contracts.ContractError as e:
        raise _rerun(path, e.problem) from None
    return df


@dataclass
class Gathered:
    runs: pd.DataFrame
    history: pd.DataFrame
    shift: pd.DataFrame


def _with_keys(df: pd.DataFrame, keys: dict) -> pd.DataFrame:
    df = df.copy()
    for i, (key, value) in enumerate(keys.items()):
        df.insert(i, key, value)
    return df


def _order(df: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    first = [c for c in first if c in df.columns]
    config = sorted(c for c in df.columns if c.startswith("config."))
    rest = [c for c in df.columns if c not in first and c not in config]
    return df[first + rest + config]


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    nonempty = [f for f in frames if len(f)]
    return pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame(columns=columns)


def metrics_files(root: Path, ablations: Collection[str] | None = None) -> list[Path]:
    """The metrics.json files under ``root``; with ``ablations``, only under those ablations'
    folders: a study of some ablations reports those, whatever else a scale's folder holds."""
    if not root.is_dir():
        return []  # a missing root (no tuning at all) gives empty tables
    if ablations is None:
        return sorted(root.glob("**/metrics.json"))
    return sorted(p for name in ablations for p in (root / name).glob("**/metrics.json"))


def gather(root: Path, levels: bool = False, ablations: Collection[str] | None = None) -> Gathered:
    """Every complete run under ``root`` (``<ablation>/<variant>/[<level>/]seed<k>/``), or with
    ``ablations`` every complete run of those ablations only.

    With ``levels`` the runs are tuning runs and carry a ``level`` column: the folder(s) between
    the variant and the seed (one learning-rate grid point).
    """
    rows, histories, shifts = [], [], []
    for path in metrics_files(root, ablations):
        run = parse_run_folder(path.relative_to(root).parts[:-1], levels)
        if run is None:
            continue  # not a run folder of the layout (e.g. a stray file)
        keys = {"ablation": run.ablation, "variant": run.variant}
        if levels:
            keys["level"] = run.level
        keys["seed"] = run.seed
        rows.append({**keys, **read_metrics(path, run.ablation, run.variant, run.seed)})
        hist_path = path.parent / "history.csv"
        if not hist_path.exists():
            raise _rerun(hist_path, "history.csv is missing next to a metrics.json")
        histories.append(_with_keys(read_run_csv(hist_path, contracts.RUN_HISTORY), keys))
        shift_path = path.parent / "shift.csv"
        if shift_path.exists():
            shifts.append(_with_keys(read_run_csv(shift_path, contracts.RUN_SHIFT), keys))
    key_cols = list(contracts.TUNING_KEYS) if levels else RUN_KEYS
    runs = pd.DataFrame(rows, columns=None if rows else key_cols + ["status"])
    runs = _order(runs, key_cols + ["status"] + METRICS)
    return Gathered(runs, _concat(histories, key_cols), _concat(shifts, key_cols + SHIFT_COLUMNS))
