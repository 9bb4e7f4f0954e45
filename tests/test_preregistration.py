"""The pre-registration record: seeds from the pilot's spread and the margin alone, and a finished
study held against the record (changed tests, changed ablation files, other seeds, a record
committed with or after the runs are all caught)."""

from __future__ import annotations

import subprocess
import textwrap

import pandas as pd
import pytest
import yaml

from study.analysis import power as tpower
from study.preregistration import check, record
from study.preregistration.power import pilot_sd, plan_claim, planning_sd, seeds_for

ABLATION = """
title: Tiny
question: Does dropout help?
baseline: none
seeds: 4
common: [optim=adamw]
variants:
  none: []
  dropout: [model.dropout=0.5]
"""
CLAIMS = """
claims:
  - id: dropout_helps
    claim: Dropout helps.
    kind: compare
    ablation: tiny
    reference: none
    variant: dropout
    metric: test_acc
    unit: pp
    expect: higher
    margin: 0.5
    margin_reason: half a point
"""


def test_pilot_sd_inverts_the_detectable_effect_of_the_ledger():
    sd = 0.37
    assert pilot_sd(6, tpower.detectable_effect(6, sd)) == pytest.approx(sd, rel=1e-9)


def test_seeds_follow_the_margin_and_the_spread_never_the_effect():
    # a directional claim is powered at its margin: twice the spread needs more seeds
    calm, noisy = seeds_for("difference", 0.5, 0.2), seeds_for("difference", 0.5, 0.4)
    assert calm == tpower.seeds_needed(0.5, 0.2) and noisy > calm
    assert tpower.paired_power(0.5, 0.4, noisy) >= 0.8 > tpower.paired_power(0.5, 0.4, noisy - 1)
    # the observed effect is not an input: the plan reads only seeds and detectable effect
    row = pd.Series({"seeds": 5, "detectable_effect": tpower.detectable_effect(5, 0.2)})
    with_effect = plan_claim(
        pd.concat([row, pd.Series({"effect": 9.0, "p": 1e-9})]), "difference", 0.5
    )
    assert plan_claim(row, "difference", 0.5) == with_effect
    assert seeds_for("threshold", 0.5, 0.2) is None  # powered by its own design


def test_planning_uses_the_upper_confidence_limit_of_a_pilot_sd():
    assert planning_sd(1.0, 3) > planning_sd(1.0, 12) > 1.0
    few = plan_claim(
        pd.Series({"seeds": 3, "detectable_effect": tpower.detectable_effect(3, 0.2)}),
        "difference",
        0.5,
    )
    assert few["seeds_needed"] > seeds_for("difference", 0.5, 0.2)


@pytest.fixture()
def study(tmp_path):
    ablations = tmp_path / "ablation"
    ablations.mkdir()
    (ablations / "tiny.yaml").write_text(textwrap.dedent(ABLATION))
    claims = tmp_path / "claims.yaml"
    claims.write_text(textwrap.dedent(CLAIMS))
    pilot = tmp_path / "pilot.csv"
    pd.DataFrame(
        [{"id": "dropout_helps", "seeds": 3, "detectable_effect": 0.6, "effect": 0.1}]
    ).to_csv(pilot, index=False)
    built = record.build(claims, ablations, "default", [(pilot, "pilot")])
    runs = pd.DataFrame(
        [
            {"ablation": "tiny", "variant": v, "seed": s}
            for v, seeds in built["seeds"]["tiny"].items()
            for s in seeds
        ]
    )
    return claims, ablations, built, runs


def test_the_record_names_each_claims_test_seeds_and_power(study):
    _, _, built, _ = study
    (c,) = built["claims"]
    assert c["test"] == "difference" and c["margin"] == 0.5 and c["ablation"] == "tiny"
    assert c["seeds"] == {"none": 4, "dropout": 4}
    assert built["seeds"]["tiny"]["none"] == [300, 301, 302, 303]  # the default scale's fresh base
    assert c["power"]["pilot"] == "pilot" and c["power"]["seeds_planned"] == 4
    assert c["power"]["powered_at_margin"] == (c["power"]["seeds_needed"] <= 4)


def test_an_unchanged_study_matches_its_record(study):
    claims, ablations, built, runs = study
    assert (
        check.mismatches(built, yaml.safe_load(claims.read_text())["claims"], ablations, runs) == []
    )


def test_a_changed_test_a_changed_ablation_and_other_seeds_are_each_caught(study):
    claims, ablations, built, runs = study
    loaded = yaml.safe_load(claims.read_text())["claims"]
    moved = [{**loaded[0], "margin": 0.25}]
    assert "test keys changed" in check.mismatches(built, moved, ablations, runs)[0][1]
    # commentary (a note, the sentence's wording, history) leaves the test as recorded
    noted = [{**loaded[0], "note": "reworded", "history": []}]
    assert check.mismatches(built, noted, ablations, runs) == []
    other = runs.assign(seed=runs["seed"] - 200)
    assert "other than the record's" in check.mismatches(built, loaded, ablations, other)[0][1]
    path = ablations / "tiny.yaml"
    path.write_text(path.read_text().replace("model.dropout=0.5", "model.dropout=0.3"))
    assert "tiny changed after the record" in check.mismatches(built, loaded, ablations, runs)[0][1]


def _git(repo, *args) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return done.stdout.decode().strip()


def _head(repo) -> str:
    return _git(repo, "rev-parse", "HEAD")


def test_a_record_committed_with_the_runs_is_not_a_pre_registration(study, tmp_path):
    claims, ablations, built, runs = study
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "s@example.org")
    _git(repo, "config", "user.name", "s")
    out = repo / "preregistration.yaml"
    record.write(built, out)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "record")
    at = _head(repo)
    same = check.status(repo, claims, ablations, runs, at, out)
    assert same["commit"] is None and "not before the runs' commit" in same["mismatched"][0][1]
    (repo / "runs.txt").write_text("the runs")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "runs")
    later = _head(repo)
    ok = check.status(repo, claims, ablations, runs, later, out)
    assert ok == {"commit": at, "mismatched": []}
    out.write_text(out.read_text() + "# edited\n")  # an uncommitted edit of the record
    assert check.status(repo, claims, ablations, runs, later, out)["commit"] is None
