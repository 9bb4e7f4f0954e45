"""The two regimes side by side: each claim's verdict at the default scale (a residual MLP on
10,000 images, on a CPU) next to its verdict at the full scale (a ResNet on all training images,
on a GPU), read from the other regime's committed report.

The default report reads the full-scale ledger committed under ``paper/full/claims.csv`` (a
full-scale report built from one clean commit); the full-scale report reads the default one,
``paper/claims.csv``. A claim is tested in a regime when its verdict there is not "not tested"
(nor "not evaluated"); a verdict carries over when both regimes test the claim and agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

# The other regime's committed ledger, from the repository root, per scale of this report.
OTHER_LEDGER = {
    "default": ("full", "paper/full/claims.csv"),
    "full": ("default", "paper/claims.csv"),
}
UNTESTED = {"", "not tested", "not evaluated"}
# The context's regimes before add_regimes runs (or at a scale with no counterpart).
NO_REGIMES = {"regimes": None, "regimes_summary": ""}


def other_ledger(scale: str, repo: Path) -> tuple[str, Path] | None:
    """(the other regime's scale, its committed claims.csv) for a report at ``scale``; None at a
    scale with no counterpart (smoke, full_tiny)."""
    if scale not in OTHER_LEDGER:
        return None
    other, rel = OTHER_LEDGER[scale]
    return other, repo / rel


def _verdicts(rows: list[dict[str, Any]] | pd.DataFrame) -> dict[str, tuple[str, str]]:
    """claim id → (claim text, verdict), in the ledger's order."""
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
    out = {}
    for r in records:
        verdict = "" if pd.isna(r.get("verdict")) else str(r.get("verdict"))
        out[str(r["id"])] = (str(r.get("claim", "")), verdict)
    return out


def outcome(here: str, there: str) -> str:
    """What happens to a verdict from one regime to the other."""
    tested_here, tested_there = here not in UNTESTED, there not in UNTESTED
    if tested_here and tested_there:
        return "carries over" if here == there else "changes"
    if tested_here or tested_there:
        return "tested in one regime only"
    return "tested in neither"


def side_by_side(
    claims: list[dict[str, Any]] | pd.DataFrame, scale: str, other: str, ledger: pd.DataFrame
) -> dict[str, Any]:
    """Rows (id, claim, this regime's verdict, the other's, outcome) for every claim in either
    ledger, and counts of each outcome."""
    here, there = _verdicts(claims), _verdicts(ledger)
    rows = []
    for cid in [*here, *(c for c in there if c not in here)]:
        claim, verdict_here = here.get(cid, ("", ""))
        claim_there, verdict_there = there.get(cid, ("", ""))
        rows.append({
            "id": cid,
            "claim": claim or claim_there,
            scale: verdict_here or "not tested",
            other: verdict_there or "not tested",
            "outcome": outcome(verdict_here, verdict_there),
        })  # fmt: skip
    counts = {k: sum(r["outcome"] == k for r in rows) for k in
              ("carries over", "changes", "tested in one regime only")}  # fmt: skip
    return {"columns": [scale, other], "rows": rows, "counts": counts}


def summary(section: dict[str, Any] | None, scale: str, other: str, path: Path) -> str:
    """One sentence on the two regimes, or on the missing report of the other one."""
    if section is None:
        return (
            f"No {other}-scale report is committed yet ({path} does not exist), so every verdict "
            f"here is the {scale} regime's alone."
        )
    c = section["counts"]
    return (
        f"Against the committed {other}-scale report ({path}): {c['carries over']} verdicts "
        f"carry over, {c['changes']} change, and {c['tested in one regime only']} claims are "
        "tested in one regime only."
    )


def add_regimes(context: dict[str, Any], repo: Path | str | None = None) -> None:
    """Put the side-by-side table in ``context["regimes"]`` (None when the other regime's ledger
    is not committed) and its one-sentence summary among the limitations."""
    found = other_ledger(str(context["scale"]), Path(repo) if repo else Path.cwd())
    if found is None:
        context["regimes"] = None
        return
    other, path = found
    ledger = pd.read_csv(path) if path.is_file() else None
    section = (
        side_by_side(context["claims"], context["scale"], other, ledger)
        if ledger is not None
        else None
    )
    context["regimes"] = section
    rel = Path(OTHER_LEDGER[str(context["scale"])][1])
    context["regimes_summary"] = summary(section, context["scale"], other, rel)
    context.setdefault("limitations", []).append(context["regimes_summary"])


def markdown_table(section: dict[str, Any]) -> str:
    """The side-by-side table as Markdown (for a template that has no block of its own yet)."""
    here, other = section["columns"]
    lines = [f"| claim | {here} | {other} | outcome |", "|---|---|---|---|"]
    for r in section["rows"]:
        lines.append(f"| {r['id']} | {r[here]} | {r[other]} | {r['outcome']} |")
    return "\n".join(lines)
