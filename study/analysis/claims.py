"""The claims ledger: the course's testable claims (conf/claims.yaml) checked against the tables.

Each claim becomes one row of ``<scale-dir>/tables/claims.csv`` with the measured effect, its 95%
interval and a verdict: ``supported`` (the interval excludes 0 in the expected direction),
``contradicted`` (it excludes 0 in the opposite direction), ``inconclusive`` (it contains 0, or
fewer than two seeds could be paired) or ``not tested`` (the ablation, a variant, a metric or a
file the claim needs does not exist at this scale; never an error, so the ledger can name
ablations before they are run). Claims are separate questions; their verdicts are not corrected
for multiplicity. The schema is documented in conf/claims.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study import contracts
from study.analysis.claim_checks import CHECK_METRICS, CHECKS
from study.analysis.claim_kinds import compare, diverges, near_best
from study.analysis.claim_values import ClaimTables, _metric_label, read_tables, tables_from_frames
from study.analysis.claims_file import ClaimsError, load_claims

__all__ = [
    "COLUMNS",
    "VERDICTS",
    "ClaimTables",
    "ClaimsError",
    "evaluate",
    "evaluate_claims",
    "load_claims",
    "read_tables",
    "tables_from_frames",
]

COLUMNS = list(contracts.CLAIMS_COLUMNS)
VERDICTS = ("supported", "contradicted", "inconclusive", "not tested")
KIND_FUNCTIONS = {"compare": compare, "near_best": near_best, "diverges": diverges}
SPECIAL = CHECKS  # the special checks by name, as the claims schema lists them


def _metric_of(c: dict) -> str:
    if c["kind"] == "diverges":
        return "fraction diverged"
    if c["kind"] == "special":
        return CHECK_METRICS[c["check"]]
    return _metric_label(c)


def evaluate(claims: list[dict], t: ClaimTables) -> pd.DataFrame:
    rows = []
    for c in claims:
        if c["kind"] == "special":
            result = CHECKS[c["check"]](t, c)
        else:
            result = KIND_FUNCTIONS[c["kind"]](t, c)
        ablation = c.get("ablation")
        rows.append(
            {
                "id": c["id"],
                "claim": c["claim"],
                "ablation": ", ".join(ablation) if isinstance(ablation, list) else ablation or "",
                "metric": _metric_of(c),
                **result,
                "figure": c.get("figure", ""),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def evaluate_claims(claims_path: Path, tables_dir: Path) -> pd.DataFrame:
    """Evaluate the claims file against the tables in ``tables_dir`` (study.analysis.tables)."""
    return evaluate(load_claims(claims_path), read_tables(tables_dir))
