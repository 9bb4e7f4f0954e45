"""A comparison that is both a cell of an ablation's table and a claim of the ledger is judged once.

The tables adjust their p-values within each ablation and metric, the ledger over all its claims
(study.analysis.ledger.rule): the same paired difference can then clear the bar in one family and
not in the other. Where a claim measures exactly a table's comparison (same ablation, reference,
variant and metric, measured on the runs with no filter, guard or epoch), the table adopts the
ledger's adjusted p and verdict, so a reader never sees two answers to one question; the column
``<metric>_claim`` names the claim that decided the cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from study.analysis.ledger.rule import EQUIVALENCE_WORDS
from study.analysis.metrics import DIFF_METRICS

# Keys that make a claim measure something other than the table's plain paired difference.
_NOT_A_TABLE_CELL = ("where", "where_not", "at_epoch", "reach", "guard", "combine")
JUDGED = ("supported", "contradicted", "no meaningful effect", "inconclusive")


def shared_comparisons(claims: Iterable[dict]) -> list[dict]:
    """The claims whose measurement is exactly one table comparison."""
    out = []
    for c in claims:
        if c.get("kind") != "compare" or "variant" not in c or c.get("metric") not in DIFF_METRICS:
            continue
        if c.get("source", "runs") != "runs" or any(k in c for k in _NOT_A_TABLE_CELL):
            continue
        out.append(c)
    return out


def table_word(ledger_verdict: str, expect: str, metric: str, test: str = "difference") -> str:
    """The tables' word for the ledger's verdict on ``metric`` (better/worse in the metric's good
    direction; the two other verdicts read the same in both). An equivalence claim's verdict is
    never better or worse (rule.EQUIVALENCE_WORDS)."""
    if test == "equivalence":
        return EQUIVALENCE_WORDS.get(ledger_verdict, ledger_verdict)
    claimed_good = (expect == "higher") == DIFF_METRICS[metric]
    if ledger_verdict == "supported":
        return "better" if claimed_good else "worse"
    if ledger_verdict == "contradicted":
        return "worse" if claimed_good else "better"
    return ledger_verdict


def adopt_ledger_verdicts(
    summaries: Mapping[str, pd.DataFrame], claims: Iterable[dict], ledger: pd.DataFrame
) -> list[str]:
    """Set each shared comparison's adjusted p and verdict in ``summaries`` (in place) to the
    ledger's; returns the ids of the claims adopted."""
    judged = ledger.set_index("id")
    adopted = []
    for c in shared_comparisons(claims):
        table = summaries.get(c["ablation"])
        if table is None or table.empty or c["id"] not in judged.index:
            continue
        row = judged.loc[c["id"]]
        if row["verdict"] not in JUDGED:  # "not tested": the table's own verdict stands
            continue
        cell = (table["variant"] == c["variant"]) & (table["reference"] == c["reference"])
        if not cell.any():
            continue
        m = c["metric"]
        column = f"{m}_claim"
        if column not in table.columns:
            table[column] = ""
        table.loc[cell, f"{m}_p_adjusted"] = float(row["p_adjusted"])
        table.loc[cell, f"{m}_verdict"] = table_word(
            row["verdict"], c["expect"], m, c.get("test", "difference")
        )
        table.loc[cell, column] = c["id"]
        adopted.append(c["id"])
    return adopted
