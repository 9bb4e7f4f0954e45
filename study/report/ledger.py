"""The claims ledger as the report shows it: each claim's numbers in its own unit, and the
ledger file and forest plot written next to the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study import contracts
from study.analysis.stats import fmt
from study.paths import ScaleDir
from study.report.formatting import _finite, _num, count, diff, interval


def _in_unit(r: pd.Series, unit: str, metric: str) -> dict[str, str]:
    """Effect, interval, margin and detectable effect as the ledger states them: in the claim's
    unit (tables/claims.csv holds them so), with the adjusted p (Benjamini–Hochberg over the
    ledger) and the seeds."""
    effect, lo, hi = (_num(r.get(k)) for k in ("effect", "lo", "hi"))
    if not unit:  # a ledger written before claims declared units
        return {"effect": diff(effect, metric) if _finite(effect) else "",
                "ci": interval(lo, hi, metric, as_diff=True), "unit": "", "margin": "",
                "mde": "", "p_adjusted": "", "seeds": ""}  # fmt: skip
    suffix = {"pp": " pp", "x": "x", "s": " s", "epochs": " ep"}.get(unit, "")

    def show(v: float) -> str:
        return (("+" if v > 0 and unit != "x" else "") + fmt(v) + suffix) if _finite(v) else ""

    p_adj = r.get("p_adjusted")
    return {
        "effect": show(effect),
        "ci": f"[{show(lo)}, {show(hi)}]" if _finite(lo) and _finite(hi) else "",
        "unit": unit,
        "margin": f"±{fmt(_num(r.get('margin')))}{suffix}" if _finite(r.get("margin")) else "",
        "mde": fmt(_num(r.get("detectable_effect"))) + suffix
        if _finite(r.get("detectable_effect")) else "",
        "p_adjusted": fmt(_num(p_adj), 2) if _finite(p_adj) else "",
        "seeds": count(r.get("seeds")) if _finite(r.get("seeds")) else "",
    }  # fmt: skip


def write_claims_ledger(scale_dir: Path, out: Path) -> bool:
    """The ledger next to the report, ``<out>/claims.csv`` (contracts.REPORT_CLAIMS), and its
    forest plot in the scale's figures (``figures/claims_forest.png``, which the report shows
    first); False when there is no ledger with declared units."""
    from study.figures.forest import write_ledger_forest
    from study.outputs import atomic_path

    table = contracts.read_csv(ScaleDir(scale_dir).table("claims"), contracts.CLAIMS, True)
    if table is None or table.empty or "unit" not in table:
        return False
    with atomic_path(Path(out) / "claims.csv") as tmp:
        table.reindex(columns=list(contracts.REPORT_CLAIMS_COLUMNS)).to_csv(tmp, index=False)
    write_ledger_forest(table, Path(scale_dir) / "figures" / "claims_forest.png")
    return True
