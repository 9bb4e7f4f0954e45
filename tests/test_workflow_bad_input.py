"""Bad input through the real command: a malformed ablation file, claims file or workflow config
stops `snakemake -n` with one `error:` line naming the file or key, the variant (or claim) and the
problem, before anything is written (schemas/ holds what each file may contain); a corrupt
vendored data file stops the study at data preparation, before anything trains.

Each message itself is unit-tested in tests/test_ablation.py (planning) and tests/test_data.py;
an unreadable metrics.json at aggregation is tests/test_tables.py's
test_cli_rejects_a_malformed_metrics_file_and_writes_nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_copy import copy_workflow, snakemake, tail

pytestmark = pytest.mark.slow

GOOD = """\
title: Tiny
question: Does dropout help?
baseline: none
seeds: 2
common: [optim=adamw]
variants:
  none: []
  dropout: [model.dropout=0.5]
"""

# case → (file text, what the message must say, the variant it must name or None)
BAD = {
    "unknown optimizer": (
        GOOD.replace("[model.dropout=0.5]", "[model.dropout=0.5, optim=adamx]"),
        "no such optim option",
        "dropout",
    ),
    "negative learning rate": (
        GOOD.replace("[model.dropout=0.5]", "[optim.lr=-0.1]"),
        "optim.lr must be a finite positive number",
        "dropout",
    ),
    "duplicate YAML key": (
        GOOD + "  dropout: [model.dropout=0.2]\n",
        "duplicate key 'dropout'",
        None,
    ),
    "variant name with path characters": (
        GOOD.replace("  dropout:", "  ../../escape:"),
        "is not a slug",
        None,
    ),
    "YAML that is not a mapping": ("- just\n- a list\n", "must be a YAML mapping", None),
    "typo in a top-level key": (
        GOOD.replace("question:", "questoin:"),
        "did you mean 'question'",
        None,
    ),
}

CLAIM = """\
claims:
  - id: reg_gap
    claim: Regularization shrinks the generalization gap.
    kind: compare
    ablation: regularization
    reference: none
    variant: dropout
    metric: gap_acc
    unit: pp
    expect: lower
    margin: 1.0
    margin_reason: a smaller move changes no conclusion
"""
# case → (claims file text, what the one line must say: the claim (or None) and the problem+fix)
BAD_CLAIMS = {
    "missing margin": (CLAIM.replace("    margin: 1.0\n", ""), "reg_gap",
                       "missing key 'margin'; add it"),
    "unknown kind": (CLAIM.replace("kind: compare", "kind: comparre"), "reg_gap",
                     "kind='comparre' must be one of compare"),
    "negative margin": (CLAIM.replace("margin: 1.0", "margin: -1.0"), "reg_gap",
                        "margin=-1.0 must be a positive number"),
    "duplicate id": (CLAIM + CLAIM.replace("claims:\n", ""), "reg_gap",
                     "duplicate id; give each claim its own"),
    "a path as id": (CLAIM.replace("id: reg_gap", "id: ../reg_gap"), "#1",
                     "id='../reg_gap' must match [a-z0-9_.-]+"),
    "bad direction": (CLAIM.replace("expect: lower", "expect: smaller"), "reg_gap",
                      "expect='smaller' must be one of higher, lower"),
    "bad unit": (CLAIM.replace("unit: pp", "unit: percent"), "reg_gap",
                 "unit='percent' must be one of pp"),
    "text as margin": (CLAIM.replace("margin: 1.0", "margin: one point"), "reg_gap",
                       "margin='one point' must be a positive number"),
    "not a list": ("claims:\n  reg_gap: {kind: compare}\n", None,
                   "claims must be a list of claims"),
    "empty file": ("", None, "must be a mapping with a 'claims' list"),
    "broken YAML": (CLAIM.replace("kind: compare", "kind: [compare"), None,
                    "YAML does not parse at line 5"),
}  # fmt: skip


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def single_error(result) -> str:
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, tail(result)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, tail(result)
    return errors[0]


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_ablation_stops_planning_with_one_line_and_writes_nothing(workflow, case):
    text, problem, variant = BAD[case]
    bad = workflow / "conf/ablation/broken.yaml"
    bad.write_text(text)
    before = files_under(workflow)
    try:
        result = snakemake(workflow, "-n", "--config", "scale=smoke", timeout=120)
        after = files_under(workflow)
    finally:
        bad.unlink()
    assert result.returncode != 0, tail(result)
    error = single_error(result)
    assert "broken.yaml" in error and problem in error, error
    if variant:
        assert f"(variant '{variant}')" in error, error
    assert not (workflow / "results").exists()
    assert after == before, f"planning a bad study wrote {sorted(after - before)}"


@pytest.mark.parametrize("case", sorted(BAD_CLAIMS))
def test_malformed_claims_file_stops_planning_with_one_line(workflow, tmp_path, case):
    text, claim, problem = BAD_CLAIMS[case]
    bad = tmp_path / "claims.yaml"
    bad.write_text(text)
    before = files_under(workflow)
    result = snakemake(workflow, "-n", "--config", "scale=smoke", f"claims={bad}", timeout=120)
    assert result.returncode != 0, tail(result)
    error = single_error(result)
    assert error.startswith(f"error: {bad}") and problem in error, error
    if claim:
        assert f"claim {claim}:" in error, error
    assert not (workflow / "results").exists()
    assert files_under(workflow) == before


def test_unknown_scale_is_one_line_naming_the_choices(workflow):
    result = snakemake(workflow, "-n", "--config", "scale=huge", timeout=120)
    assert result.returncode != 0
    error = single_error(result)
    assert "scale='huge' must be one of smoke, default, full" in error, error
    assert not (workflow / "results").exists()


def test_non_integer_train_threads_is_one_line_naming_the_key_and_the_fix(workflow):
    result = snakemake(workflow, "-n", "--config", "train_threads=two", timeout=120)
    assert result.returncode != 0
    error = single_error(result)
    assert "train_threads='two' must be a whole number >= 1" in error, error
    assert "schemas/workflow.schema.yaml" in error, error
    assert not (workflow / "results").exists()


def test_corrupt_data_file_stops_the_study_before_anything_trains(tmp_path):
    study = copy_workflow(tmp_path / "study")
    labels = study / "resources/fashion-mnist/t10k-labels-idx1-ubyte.gz"
    raw = bytearray(labels.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    labels.write_bytes(bytes(raw))

    result = snakemake(study, "--cores", "2", "--config", "scale=smoke", timeout=300)
    assert result.returncode != 0, tail(result)
    assert "Error in rule prepare_data" in result.stdout + result.stderr, tail(result)
    # The rule's log holds the one line, naming the file and the fix; Snakemake prints its path.
    log = study / "results/smoke/logs/prepare_fashion_mnist.log"
    assert str(log.relative_to(study)) in result.stdout + result.stderr, tail(result)
    lines = log.read_text().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "t10k-labels-idx1-ubyte.gz" in lines[0], lines[0]
    assert "git checkout --" in lines[0], lines[0]
    assert not (study / "results/smoke/data/fashion_mnist.pt").exists()
    assert not (study / "results/smoke/runs").exists()
