"""What a claim measures: the aggregated tables of a scale, and one value per seed of a variant.

Loss metrics of diverged runs are NaN here as in the tables (:func:`study.analysis.metrics.usable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from study import contracts
from study.analysis.ledger.claims_file import ClaimsError
from study.analysis.metrics import is_loss_metric, usable
from study.paths import ScaleDir


@dataclass
class ClaimTables:
    """What claims are evaluated against: the aggregated tables of one scale."""

    runs: pd.DataFrame
    history: pd.DataFrame
    shift: pd.DataFrame
    tuning: pd.DataFrame | None
    scale_dir: Path


def read_tables(tables_dir: Path) -> ClaimTables:
    """The tables of ``tables_dir`` (``results/<scale>/tables``); absent or empty ones are empty."""
    tables_dir = Path(tables_dir)
    empty = pd.DataFrame(columns=list(contracts.RUN_KEYS))

    def read(contract: contracts.Contract) -> pd.DataFrame | None:
        return contracts.read_csv(tables_dir / contract.name, contract, optional=True)

    runs, history, shift = read(contracts.RUNS), read(contracts.HISTORY), read(contracts.SHIFT)
    return ClaimTables(
        runs=empty if runs is None or runs.empty else runs,
        history=empty if history is None or history.empty else history,
        shift=empty if shift is None or shift.empty else shift,
        tuning=read(contracts.TUNING),
        scale_dir=tables_dir.parent,
    )


def tables_from_frames(tables, scale_dir: Path) -> ClaimTables:
    """The in-memory tables (study.analysis.tables) as claim inputs, checked before writing."""
    return ClaimTables(
        tables.runs, tables.history, tables.shift, tables.tuning, ScaleDir(scale_dir).root
    )


def experiment_table(
    t: ClaimTables, c: dict, default_file: str, contract: contracts.Contract, fix: str
) -> pd.DataFrame | None:
    """A synthetic experiment's table in the scale folder (the claim's ``file`` or
    ``default_file``), checked against its contract; None when the experiment has not run, one
    clear ClaimsError ending in ``fix`` when the file breaks its contract."""
    path = t.scale_dir / c.get("file", default_file)
    if not path.exists():
        return None
    try:
        df = contracts.read_csv(path, contract)
        contracts.require_columns(df, contract, path)
    except contracts.ContractError as e:
        raise ClaimsError(f"{e}; {fix}") from None
    return df


def _metric_label(c: dict) -> str:
    metric, source = c["metric"], c.get("source", "runs")
    if source == "history" and "at_epoch" in c:
        return f"{metric} at epoch {c['at_epoch']}"
    if source == "history" and "reach" in c:
        op = "<=" if is_loss_metric(metric) else ">="
        return f"epochs to {metric} {op} {c['reach']}"
    if source == "shift":
        conds = [f"{k}={v}" for k, v in (c.get("where") or {}).items()]
        conds += [f"{k}!={v}" for k, v in (c.get("where_not") or {}).items()]
        return f"mean shifted {metric}" + (f" ({', '.join(conds)})" if conds else "")
    return metric


def _matches(column: pd.Series, wanted) -> pd.Series:
    """Rows whose value is one of ``wanted``: numbers compare as numbers (severity 0 == 0.0),
    anything else as lower-case text (CSV round trips turn booleans into 'True'/'true')."""
    wanted = wanted if isinstance(wanted, list) else [wanted]
    numbers = [float(w) for w in wanted if isinstance(w, int | float) and not isinstance(w, bool)]
    texts = [str(w).lower() for w in wanted]
    hit = column.astype(str).str.lower().isin(texts)
    if numbers:
        hit |= pd.to_numeric(column, errors="coerce").isin(numbers)
    return hit


def run_values(t: ClaimTables, c: dict, ablation: str, variant: str) -> pd.Series | None:
    """One value per seed of ``variant`` for the claim's metric, or None if it cannot be measured.

    Loss metrics of diverged runs are NaN (see tables.usable); such seeds drop out of pairs.
    """
    metric, source = c["metric"], c.get("source", "runs")
    runs = t.runs
    if "ablation" not in runs:
        return None
    sel = runs[(runs["ablation"] == ablation) & (runs["variant"] == variant)]
    if sel.empty:
        return None
    seeds = pd.Index(sel["seed"].astype(int), name="seed")
    if source == "runs":
        if metric not in sel:
            return None
        return pd.to_numeric(usable(sel).set_index("seed")[metric], errors="coerce")
    table = t.history if source == "history" else t.shift
    if "ablation" not in table or metric not in table:
        return None
    rows = table[(table["ablation"] == ablation) & (table["variant"] == variant)]
    if source == "shift":
        for key, wanted in (c.get("where") or {}).items():
            rows = rows[_matches(rows[key], wanted)] if key in rows else rows.iloc[0:0]
        for key, wanted in (c.get("where_not") or {}).items():
            rows = rows[~_matches(rows[key], wanted)] if key in rows else rows
        if rows.empty:
            return None
        return rows.groupby("seed")[metric].mean().reindex(seeds)
    if rows.empty:
        return None
    if "at_epoch" in c:
        # A run that ended (diverged, stopped early) before that epoch has no value there.
        at = rows[rows["epoch"] == c["at_epoch"]].groupby("seed")[metric].first()
        return at.reindex(seeds)
    if "reach" in c:
        return _epochs_to(rows, sel, metric, float(c["reach"])).reindex(seeds)
    raise ClaimsError(f"claim {c['id']}: source: history needs at_epoch or reach")


def _epochs_to(history: pd.DataFrame, runs: pd.DataFrame, metric: str, target: float) -> pd.Series:
    """First epoch at which ``metric`` reaches ``target`` (at most for losses, at least otherwise).

    A run that never reaches it is censored at its planned epochs + 1 (config.train.epochs, else
    its last epoch + 1): the most favourable value it could still have, so a run that never
    gets there (including a diverged one) counts as the slowest, never as missing.
    """
    planned = (
        runs.set_index("seed")["config.train.epochs"] if "config.train.epochs" in runs else None
    )
    out = {}
    for seed, h in history.groupby("seed"):
        hit = h[metric] <= target if is_loss_metric(metric) else h[metric] >= target
        if hit.any():
            out[seed] = float(h.loc[hit, "epoch"].min())
        else:
            last = planned.get(seed) if planned is not None else None
            out[seed] = float(last if last is not None and pd.notna(last) else h["epoch"].max()) + 1
    return pd.Series(out, dtype=float)
