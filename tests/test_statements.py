"""The course's statements file: every statement is tested by claims, planned, or given a reason,
and it matches the claims ledger."""

from pathlib import Path

import pytest
import yaml

from study.analysis.ledger.statements import (
    SECTIONS,
    StatementsError,
    check_statements,
    coverage,
    main,
    parse_lines,
    untested_by_section,
)

ROOT = Path(__file__).resolve().parents[1]
STATEMENTS = ROOT / "conf/course_statements.yaml"
CLAIMS = ROOT / "conf/claims.yaml"

CLAIM = {
    "id": "dropout_test_acc",
    "claim": "Dropout improves test accuracy.",
    "kind": "compare",
    "ablation": "regularization",
    "reference": "none",
    "variant": "dropout",
    "metric": "test_acc",
    "unit": "pp",
    "expect": "higher",
    "margin": 0.5,
    "margin_reason": "resolution",
    "lecture_lines": "189-207",
}
GOOD = {
    "notes": {"file": "notes.txt", "lines": 506},
    "statements": [
        {
            "id": "dropout_curbs_overfitting",
            "lecture_lines": "195-199",
            "section": "regularization",
            "statement": "Dropping units at random curbs overfitting.",
            "claims": ["dropout_test_acc"],
        },
        {
            "id": "dead_relu",
            "lecture_lines": "13",
            "section": "review/activations",
            "statement": "A ReLU whose input stays negative never learns again.",
            "claims": [],
            "planned": "pathologies",
        },
        {
            "id": "pca",
            "lecture_lines": "18",
            "section": "review/activations",
            "statement": "PCA keeps the directions of most variance.",
            "untested": "a definition",
        },
    ],
}


def write(tmp_path, statements, claims=(CLAIM,)):
    s, c = tmp_path / "statements.yaml", tmp_path / "claims.yaml"
    s.write_text(yaml.safe_dump(statements, sort_keys=False))
    c.write_text(yaml.safe_dump({"claims": list(claims)}, sort_keys=False))
    return s, c


def with_statement(**changes):
    first = {**GOOD["statements"][0], **changes}
    first = {k: v for k, v in first.items() if v is not None}
    return {**GOOD, "statements": [first, *GOOD["statements"][1:]]}


def test_line_ranges_are_parsed_as_sets():
    assert parse_lines("238-240, 301") == {238, 239, 240, 301}
    assert parse_lines("7") == {7}


def test_the_committed_statements_match_the_committed_claims():
    data = check_statements(STATEMENTS, CLAIMS)
    counts = coverage(data)
    assert counts["statements"] == len(data["statements"]) >= 60
    assert counts["tested"] + counts["planned"] + counts["untested"] == counts["statements"]
    assert main([str(STATEMENTS), str(CLAIMS)]) == 0


def test_a_good_file_passes_and_lists_its_untested_statement(tmp_path):
    data = check_statements(*write(tmp_path, GOOD))
    assert untested_by_section(data) == {
        "review/activations": [
            {"id": "pca", "lecture_lines": "18", "statement": GOOD["statements"][2]["statement"],
             "reason": "a definition"}
        ]
    }  # fmt: skip
    assert coverage(data) == {"statements": 3, "tested": 1, "planned": 1, "untested": 1}


@pytest.mark.parametrize(
    ("statements", "claims", "message"),
    [
        (with_statement(claims=["dropuot_test_acc"]), (CLAIM,),
         "statement dropout_curbs_overfitting: claim dropuot_test_acc is not in the claims file"),
        (with_statement(lecture_lines="300-310"), (CLAIM,),
         "claim dropout_test_acc cites lines 189-207, none of 300-310"),
        (with_statement(claims=[]), (CLAIM,), "claims is empty"),
        (with_statement(lecture_lines="600"), (CLAIM,), "must lie in 1-506"),
        (with_statement(untested="no reason"), (CLAIM,), "needs either claims"),
        (with_statement(claims=None), (CLAIM,), "needs either claims"),
        (with_statement(section="misc"), (CLAIM,), "must be one of review/activations"),
        (GOOD, (CLAIM, {**CLAIM, "id": "orphan"}), "claims orphan of"),
        (GOOD, ({k: v for k, v in CLAIM.items() if k != "lecture_lines"},), "has no lecture_lines"),
        ({**GOOD, "statements": GOOD["statements"] + GOOD["statements"][:1]}, (CLAIM,),
         "duplicate id"),
    ],
)  # fmt: skip
def test_a_planted_fault_is_one_line_naming_it(tmp_path, statements, claims, message):
    paths = write(tmp_path, statements, claims)
    with pytest.raises(StatementsError, match=message) as err:
        check_statements(*paths)
    assert "\n" not in str(err.value)


def test_the_command_line_fails_with_one_line_and_status_1(tmp_path, capsys):
    paths = write(tmp_path, with_statement(claims=["nope"]))
    assert main([str(p) for p in paths]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "claim nope" in err and "\n" not in err


def test_sections_are_the_schemas():
    schema = yaml.safe_load((ROOT / "schemas/course_statements.schema.yaml").read_text())
    assert list(SECTIONS) == schema["$defs"]["statement"]["properties"]["section"]["enum"]
