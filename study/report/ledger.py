"""The claims ledger as the report shows it: each claim's numbers in its own unit, and the
ledger file and forest plot written next to the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study import contracts
from study.analysis.stats import fmt
from study.paths import ScaleDir
from study.report.formatting import VERDICT_CLASS, _finite, _num, count, diff, interval


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


def _text(row: pd.Series, column: str) -> str:
    """A cell as text; empty when the column is absent or the cell is empty."""
    cell = row.get(column)
    return "" if cell is None or (not isinstance(cell, str) and pd.isna(cell)) else str(cell)


def _unit(row: pd.Series, metric: str) -> str:
    """The effect's unit: the claims table's own ``unit`` when it has one, else percentage points
    for accuracies and the metric's name for anything else."""
    return _text(row, "unit") or ("pp" if "acc" in metric else metric.replace("_", " "))


def claims_file_entries(claims_path: Path | None) -> dict[str, dict]:
    """The claims file's entries by id (kind, test, note, history, lecture lines); empty without
    a file."""
    if claims_path is None or not Path(claims_path).is_file():
        return {}
    from study.analysis.ledger.claims_file import load_claims

    return {c["id"]: c for c in load_claims(claims_path)}


def _history(entry: dict) -> list[dict[str, str]]:
    """A claim's record of what changed after a result was seen, as text."""
    return [
        {k: str(h.get(k, "")) for k in ("when", "change", "reason", "verdict_before")}
        for h in entry.get("history") or []
    ]


def claim_rows(
    table: pd.DataFrame | None, claims_path: Path | None, figures: dict[str, dict]
) -> list[dict]:
    """The ledger's rows as shown, each with its claims-file entry's kind, test, note and history;
    without tables/claims.csv, ``claims_path``'s claims as not evaluated."""
    entries = claims_file_entries(claims_path)
    if table is None and entries:
        table = pd.DataFrame(
            [
                {
                    "id": c["id"],
                    "claim": c["claim"],
                    "ablation": c.get("ablation", ""),
                    "metric": c.get("metric", ""),
                    "verdict": "not evaluated",
                    "figure": c.get("figure", ""),
                    "detail": "tables/claims.csv does not exist yet",
                }
                for c in entries.values()
            ]
        )
    if table is None:
        return []
    out = []
    for _, r in table.iterrows():
        metric = "" if pd.isna(r.get("metric")) else str(r.get("metric"))
        figure = "" if pd.isna(r.get("figure")) else str(r.get("figure"))
        verdict = "" if pd.isna(r.get("verdict")) else str(r.get("verdict"))
        entry = entries.get(str(r.get("id", "")), {})
        history = _history(entry)
        out.append(
            {
                "kind": str(entry.get("kind", "")),
                "test": _text(r, "test") or str(entry.get("test", "difference")),
                "note": str(entry.get("note", "") or "").strip(),
                "lecture_lines": str(entry.get("lecture_lines", "") or ""),
                "history": history,
                "changed_after_result": bool(history),
                "effect_raw": _num(r.get("effect")),
                "lo_raw": _num(r.get("lo")),
                "hi_raw": _num(r.get("hi")),
                "margin_raw": _num(r.get("margin")),
                "mde_raw": _num(r.get("detectable_effect")),
                "id": str(r.get("id", "")),
                "claim": str(r.get("claim", "")),
                "ablation": "" if pd.isna(r.get("ablation")) else str(r.get("ablation")),
                "metric": metric,
                **_in_unit(r, _text(r, "unit"), metric),
                "verdict": verdict,
                "verdict_class": VERDICT_CLASS.get(verdict, "neutral"),
                "figure": figure,
                "figure_ref": figures.get(figure),
                "detail": "" if pd.isna(r.get("detail")) else str(r.get("detail")),
                "unit": _unit(r, metric),
            }
        )
    return out


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
