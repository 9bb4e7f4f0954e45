"""The interaction claim: does the schedule's effect depend on the optimizer?"""

from pathlib import Path

import pytest

from study.analysis.ledger.claims_file import load_claims
from tests.test_claims import one, runs_frame, tables

ROOT = Path(__file__).resolve().parents[1]


def grid(effects, base=0.85, noise=(0.0, 0.002, -0.002, 0.001)):
    """Cells optim-<o>_schedule-{constant,cosine}: cosine = constant + the optimizer's effect
    (a fraction), with seed noise on the effect."""
    data = {}
    for i, (o, effect) in enumerate(effects.items()):
        const = [base + 0.01 * s for s in range(len(noise))]
        mine = noise[i % len(noise) :] + noise[: i % len(noise)]  # each optimizer its own draw
        data[f"{o}-constant"] = {"test_acc": const}
        cosine = [c + effect + n for c, n in zip(const, mine, strict=True)]
        data[f"{o}-cosine"] = {"test_acc": cosine}
    return runs_frame("optimizer_schedule", data)


def claim(levels):
    return {
        "kind": "interaction",
        "ablation": "optimizer_schedule",
        "effects": {o: [f"{o}-constant", f"{o}-cosine"] for o in levels},
        "metric": "test_acc",
        "unit": "pp",
        "expect": "higher",
        "margin": 0.5,
    }


def test_schedule_effects_that_differ_between_optimizers_support_the_interaction():
    # cosine helps sgd by 3 pp, adam by 0, lion by 0.2: sgd vs adam differ by 3 pp
    effects = {"sgd": 0.03, "adam": 0.0, "lion": 0.002}
    row = one(claim(effects), tables(grid(effects)))
    assert row.verdict == "supported" and row.effect == pytest.approx(3.0, abs=0.2)
    assert "(sgd effect) - (adam effect)" in row.detail and "over 3 pairs" in row.detail
    assert "sgd +3" in row.detail


def test_equal_schedule_effects_are_no_meaningful_interaction():
    effects = {"sgd": 0.01, "adam": 0.01, "lion": 0.01}  # every optimizer gains one point
    row = one(claim(effects), tables(grid(effects)))
    assert row.verdict == "no meaningful effect" and abs(row.effect) < 0.5


def test_one_pair_beyond_the_margin_keeps_the_negation_from_holding():
    # two optimizers agree, a third differs by 0.8 pp with noisy seeds: not "no effect"
    effects = {"sgd": 0.01, "adam": 0.01, "lion": 0.018}
    noisy = grid(effects, noise=(0.0, 0.01, -0.01, 0.005))
    row = one(claim(effects), tables(noisy))
    assert row.verdict != "no meaningful effect"


def test_p_is_bonferroni_corrected_over_the_pairs():
    effects = {"sgd": 0.03, "adam": 0.0}
    two = one(claim(effects), tables(grid(effects)))
    four = {**effects, "lion": 0.0, "muon": 0.0}
    six_pairs = one(claim(four), tables(grid(four)))
    assert six_pairs.p == pytest.approx(min(1.0, 6 * two.p))


def test_missing_cells_are_not_tested_and_named():
    effects = {"sgd": 0.03, "adam": 0.0}
    runs = grid(effects)
    runs = runs[runs.variant != "adam-cosine"]
    row = one(claim(effects), tables(runs))
    assert row.verdict == "not tested" and "adam-cosine" in row.detail


def test_the_study_declares_the_grid_question_as_a_claim():
    claims = {c["id"]: c for c in load_claims(ROOT / "conf" / "claims.yaml")}
    c = claims["schedule_depends_on_optimizer"]
    assert c["kind"] == "interaction" and len(c["effects"]) == 5  # SOAP is not crossed (the budget)
