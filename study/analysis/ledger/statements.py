"""The course's testable statements (conf/course_statements.yaml) against the claims ledger.

Every statement of the notes names the claims that test it, the synthetic experiment planned to
test it, or the reason it is not tested. This module reads the file, checks it against its
schema and against conf/claims.yaml (every claim id exists, each cited claim's lecture_lines
overlap the statement's, every claim is cited by some statement, every line is inside the notes),
and lists the untested statements by section for the report.

    python -m study.analysis.ledger.statements conf/course_statements.yaml conf/claims.yaml

prints a one-line summary, or one line naming the file, the statement and the fix (exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from study.analysis.ledger.claims_file import ClaimsError, load_claims
from study.schemas import DocumentError, validate_document

# The notes' sections, in their order (the schema's `section` enum).
SECTIONS = (
    "review/activations",
    "regularization",
    "optimization",
    "second-order",
    "schedules",
    "normalization",
)


class StatementsError(ClaimsError):
    """A malformed statements file, or one that does not match the claims; one line."""


def parse_lines(ranges: str) -> set[int]:
    """``"238-283, 301"`` as the set of line numbers it covers."""
    out: set[int] = set()
    for part in ranges.split(","):
        first, _, last = part.strip().partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def load_statements(path: Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise StatementsError(
            f"{path}: cannot read the statements ({type(e).__name__}: {e})"
        ) from None
    try:
        validate_document(data, "course_statements", path)
    except DocumentError as err:
        raise StatementsError(str(err)) from None
    return data


def _check_statement(path: Path, s: dict, claims: dict[str, dict], n_lines: int) -> None:
    where = f"{path}: statement {s['id']}"
    lines = parse_lines(s["lecture_lines"])
    if max(lines) > n_lines or min(lines) < 1:
        raise StatementsError(
            f"{where}: lecture_lines {s['lecture_lines']} must lie in 1-{n_lines}"
        )
    if "claims" in s and not s["claims"] and "planned" not in s:
        raise StatementsError(
            f"{where}: claims is empty; name the claims that test it, add planned: pathologies, "
            "or give untested: <the reason>"
        )
    for cid in s.get("claims", []):
        if cid not in claims:
            raise StatementsError(f"{where}: claim {cid} is not in the claims file; fix the id")
        cited = claims[cid].get("lecture_lines")
        if cited is None:
            raise StatementsError(f"{where}: claim {cid} has no lecture_lines; add them to it")
        if not lines & parse_lines(cited):
            raise StatementsError(
                f"{where}: claim {cid} cites lines {cited}, none of {s['lecture_lines']}; fix "
                "the claim's lecture_lines or cite another claim"
            )


def check_statements(statements_path: Path, claims_path: Path) -> dict:
    """The statements file, checked against the claims file; StatementsError if it is not."""
    statements_path = Path(statements_path)
    data = load_statements(statements_path)
    claims = {c["id"]: c for c in load_claims(claims_path)}
    n_lines, seen, cited = data["notes"]["lines"], set(), set()
    for s in data["statements"]:
        if s["id"] in seen:
            raise StatementsError(
                f"{statements_path}: statement {s['id']}: duplicate id; give each its own"
            )
        seen.add(s["id"])
        _check_statement(statements_path, s, claims, n_lines)
        cited.update(s.get("claims", []))
    uncited = [cid for cid in claims if cid not in cited]
    if uncited:
        raise StatementsError(
            f"{statements_path}: claims {', '.join(uncited)} of {claims_path} test no statement; "
            "cite each from the statement of the notes it tests"
        )
    return data


def untested_by_section(data: dict) -> dict[str, list[dict]]:
    """The statements the study does not test, by section in the notes' order: each with its id,
    lecture_lines, statement and reason."""
    out: dict[str, list[dict]] = {}
    for section in SECTIONS:
        rows = [
            {k: s[k] for k in ("id", "lecture_lines", "statement")} | {"reason": s["untested"]}
            for s in data["statements"]
            if s["section"] == section and "untested" in s
        ]
        if rows:
            out[section] = rows
    return out


def coverage(data: dict) -> dict[str, int]:
    """How many statements are tested by claims, planned, and untested."""
    items = data["statements"]
    return {
        "statements": len(items),
        "tested": sum(bool(s.get("claims")) for s in items),
        "planned": sum("planned" in s and not s.get("claims") for s in items),
        "untested": sum("untested" in s for s in items),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m study.analysis.ledger.statements STATEMENTS.yaml CLAIMS.yaml")
        return 2
    try:
        data = check_statements(Path(args[0]), Path(args[1]))
    except ClaimsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    c = coverage(data)
    print(
        f"{c['statements']} statements: {c['tested']} tested by claims, {c['planned']} planned, "
        f"{c['untested']} untested"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
