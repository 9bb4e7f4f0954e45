"""The course's side of the report: how many of the notes' testable statements the study gives a
verdict (conf/course_statements.yaml), the claims ledger grouped by the notes' sections, the
statements left untested with their reasons, and the study-wide history of the claims file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from study.analysis.ledger.statements import SECTIONS, coverage, load_statements
from study.analysis.ledger.statements import untested_by_section as _untested

# The statements file sits beside the claims file (conf/).
STATEMENTS_FILE = "course_statements.yaml"

SECTION_TITLES = {
    "review/activations": "Review: activations, preprocessing, augmentation",
    "regularization": "Regularization",
    "optimization": "Optimization",
    "second-order": "Second-order methods",
    "schedules": "Learning-rate schedules",
    "normalization": "Normalization",
}
UNCITED = "Cited by no statement of the notes"


def statements_path(claims_path: Path | None) -> Path | None:
    """conf/course_statements.yaml beside ``claims_path``; None when either is absent."""
    if claims_path is None:
        return None
    path = Path(claims_path).parent / STATEMENTS_FILE
    return path if path.is_file() else None


def _claim_sections(data: dict) -> dict[str, str]:
    """claim id → the section of the first statement (in the notes' order) that cites it."""
    out: dict[str, str] = {}
    for section in SECTIONS:
        for s in data["statements"]:
            if s["section"] == section:
                for cid in s.get("claims", []):
                    out.setdefault(cid, section)
    return out


def ledger_by_section(claims: list[dict[str, Any]], data: dict | None) -> list[dict[str, Any]]:
    """The claims in groups by the notes' section that states them, in the notes' order; without
    a statements file, one group of every claim."""
    if data is None:
        return [{"section": "", "title": "", "claims": claims}] if claims else []
    where = _claim_sections(data)
    groups = []
    for section in (*SECTIONS, ""):
        rows = [c for c in claims if where.get(c["id"], "") == section]
        if rows:
            title = SECTION_TITLES.get(section, section) if section else UNCITED
            groups.append({"section": section, "title": title, "claims": rows})
    return groups


def coverage_sentence(counts: dict[str, int]) -> str:
    """How many statements the notes make and how many the study gives a verdict."""
    planned = f", {counts['planned']} planned but not yet tested" if counts["planned"] else ""
    return (
        f"The course notes make {counts['statements']} testable statements: {counts['tested']} "
        f"have a verdict here through the claims that test them{planned}, and "
        f"{counts['untested']} are untested, each for a stated reason."
    )


def course_context(claims: list[dict[str, Any]], claims_path: Path | None) -> dict[str, Any]:
    """``statements`` (coverage, its sentence, the untested statements by section; None without
    a statements file), ``ledger_groups`` and ``ledger_history`` for the templates."""
    path = statements_path(claims_path)
    data = load_statements(path) if path else None
    statements = None
    if data is not None:
        counts = coverage(data)
        untested = [
            {"section": s, "title": SECTION_TITLES.get(s, s), "statements": rows}
            for s, rows in _untested(data).items()
        ]
        statements = {"coverage": counts, "sentence": coverage_sentence(counts),
                      "untested": untested}  # fmt: skip
    return {
        "statements": statements,
        "ledger_groups": ledger_by_section(claims, data),
        "ledger_history": ledger_history(claims_path),
    }


def ledger_history(claims_path: Path | None) -> list[dict[str, str]]:
    """The claims file's study-wide changes made after results had been seen, as text."""
    if claims_path is None or not Path(claims_path).is_file():
        return []
    from study.analysis.ledger.claims_file import load_ledger_history

    keys = ("when", "change", "reason", "verdict_before")
    return [{k: str(h.get(k, "") or "") for k in keys} for h in load_ledger_history(claims_path)]


# The fits the main text's sentence names (the appendix lists every fit): label → its key.
_ANSWER_FITS = (
    ("gradient descent", "iterations vs κ, gd/rotated"),
    ("heavy-ball momentum", "iterations vs κ, heavy_ball/rotated"),
    ("Nesterov momentum", "iterations vs κ, nesterov/rotated"),
    ("Adam on the axis-aligned problem", "iterations vs κ, adam/diagonal"),
    ("Adam on the rotated one", "iterations vs κ, adam/rotated"),
)


def pathologies_sentence(section: dict[str, Any] | None) -> str:
    """The pathologies experiment's answer in one sentence: how iterations grow with the
    condition number per method, and how minibatch noise falls with the batch size."""
    if not section or not section.get("exponents"):
        return ""
    fits = {e["fit"]: e["exponent"] for e in section["exponents"]}
    parts = [f"{label} {fits[key]}" for label, key in _ANSWER_FITS if key in fits]
    text = ""
    if parts:
        lead = "Exponents of iterations to the target against the condition number κ (95% CI; "
        text = lead + "rotated quadratic unless said): " + ", ".join(parts)
    if "minibatch variance vs B" in fits:
        noise = (
            f"minibatch gradient variance against B has exponent {fits['minibatch variance vs B']}"
        )
        text = f"{text}; {noise}" if text else noise[0].upper() + noise[1:]
    return f"{text}." if text else ""
