"""A variant compared with two references: one table row per pair, and the ledger finds each."""

import pytest

from study.analysis.ledger.evaluate import evaluate
from study.analysis.ledger.table_verdicts import adopt_ledger_verdicts
from study.analysis.tables import summarize
from tests.test_claims import DECLARED, one, runs_frame, tables

RUNS = runs_frame(
    "batch",
    {
        "small": {"test_acc": [0.85, 0.86, 0.84]},
        "large": {"test_acc": [0.80, 0.81, 0.79]},
        "large_scaled": {"test_acc": [0.851, 0.858, 0.842]},
    },
)
PAIRS = [("large", "large_scaled"), ("small", "large"), ("small", "large_scaled")]


def test_the_table_has_one_row_per_pair():
    table = summarize(RUNS, "batch", "small", ["small", "large", "large_scaled"], PAIRS)
    scaled = table[table["variant"] == "large_scaled"].set_index("reference")
    assert sorted(scaled.index) == ["large", "small"]
    assert scaled.loc["large", "test_acc_diff"] == pytest.approx(0.050333, abs=1e-6)
    assert scaled.loc["small", "test_acc_diff"] == pytest.approx(0.0003333, abs=1e-6)
    assert len(table) == 4  # small (the baseline), large, large_scaled twice


def test_each_pairs_claim_decides_its_own_cell():
    base = {**DECLARED, "kind": "compare", "ablation": "batch", "variant": "large_scaled",
            "metric": "test_acc", "expect": "higher"}  # fmt: skip
    claims = [
        {**base, "id": "scaling_recovers", "claim": "Scaled beats unscaled.", "reference": "large"},
        {**base, "id": "scaling_matches", "claim": "Scaled matches small.", "reference": "small",
         "test": "equivalence", "margin": 1.0},
    ]  # fmt: skip
    ledger = evaluate(claims, tables(RUNS))
    assert list(ledger.verdict) == ["supported", "supported"]
    assert one(claims[0], tables(RUNS)).effect == pytest.approx(5.0333, abs=1e-4)
    table = summarize(RUNS, "batch", "small", ["small", "large", "large_scaled"], PAIRS)
    assert adopt_ledger_verdicts({"batch": table}, claims, ledger) == [
        "scaling_recovers",
        "scaling_matches",
    ]
    cells = table[table["variant"] == "large_scaled"].set_index("reference")
    assert cells.loc["large", "test_acc_verdict"] == "better"
    assert cells.loc["small", "test_acc_verdict"] == "equivalent"
    assert cells.loc["large", "test_acc_claim"] == "scaling_recovers"
