"""No verdict from an artefact: each planted artefact must be caught by the ledger."""

import json

import pandas as pd
import pytest

from study.analysis.ledger.evaluate import evaluate
from study.analysis.ledger.table_verdicts import table_word
from tests.test_claims import DECLARED, DROPOUT, REG, one, runs_frame, tables


def lr_grid(variant, top_status, ablation="optimizers"):
    return [
        {"ablation": ablation, "variant": variant, "level": f"lr-{lr:.3g}", "seed": 1000,
         "status": top_status if lr == 1.0 else "ok", "lr": lr}
        for lr in (0.01, 0.1, 1.0)
    ]  # fmt: skip


def strength_grid(variant, key="l2"):
    """A regularizer's strengths at the optimizer's one fixed rate: no rate is searched."""
    return [
        {"ablation": "regularization", "variant": variant, "level": f"{key}-{v:.3g}",
         "seed": 1000, "status": "ok", "lr": 0.001}
        for v in (0.0001, 0.001, 0.01)
    ]  # fmt: skip


def test_divergence_counts_only_learning_rate_grids():
    rows = [r for v in ("sgd", "adam", "lion", "muon", "soap") for r in lr_grid(v, "diverged")]
    rows += [r for v in ("l2", "l1", "dropout", "cutout") for r in strength_grid(v)]
    claim = {"kind": "diverges", "source": "tuning", "unit": "fraction", "margin": 0.5}
    row = one(claim, tables(tuning=pd.DataFrame(rows)))
    # 5 of 5 top rates diverged; the 12 strength runs at lr 0.001 (each grid's "highest rate")
    # would have made it 5 of 17 and the claim contradicted
    assert (row.effect, row.seeds) == (1.0, 5) and "regularization" not in row.detail
    assert "learning-rate grids" in row.detail
    only_strengths = [r for v in ("l2", "l1") for r in strength_grid(v)]
    assert one(claim, tables(tuning=pd.DataFrame(only_strengths))).verdict == "not tested"
    # runs without levels: a group whose rate does not vary is not a learning-rate grid
    no_levels = pd.DataFrame(rows).drop(columns="level")
    assert one(claim, tables(tuning=no_levels)).seeds == 5


def test_near_best_chooses_the_competitor_on_the_validation_split():
    # momentum has the best test mean, sgd the best validation mean: sgd is the competitor
    runs = runs_frame(
        "optimizers",
        {
            "sgd": {"test_acc": [0.85, 0.86, 0.84], "val_acc": [0.95, 0.95, 0.95]},
            "momentum": {"test_acc": [0.95, 0.96, 0.94], "val_acc": [0.90, 0.90, 0.90]},
            "adam": {"test_acc": [0.86, 0.865, 0.85], "val_acc": [0.9, 0.9, 0.9]},
        },
    )
    claim = {"kind": "near_best", "ablation": "optimizers", "variant": "adam",
             "metric": "test_acc", "expect": "higher", "margin": 1.0}  # fmt: skip
    row = one(claim, tables(runs))
    assert "best other (sgd, by val_acc)" in row.detail
    assert row.effect == pytest.approx(0.8333, abs=1e-4)  # adam − sgd on the test split
    assert one(claim, tables(runs.drop(columns="val_acc"))).verdict == "not tested"


def test_a_shared_test_enters_the_correction_once():
    gap = {**DECLARED, **DROPOUT, "metric": "gap_acc", "expect": "lower", "margin": 1.0}
    guarded = {**gap, "guard": {"metric": "test_acc", "unit": "pp", "margin": 0.5,
                                "expect": "higher"}}  # fmt: skip
    l2 = {**DECLARED, **DROPOUT, "variant": "l2"}
    claims = [
        {**gap, "id": "gap", "claim": "Gap."},
        {**guarded, "id": "curbs", "claim": "Curbs."},
        {**l2, "id": "l2", "claim": "L2."},
    ]
    ledger = evaluate(claims, tables(REG)).set_index("id")
    # two distinct tests: the smaller p is multiplied by 2 (its rank 1 of 2), not by 3
    assert ledger.loc["gap", "p_adjusted"] == pytest.approx(2 * ledger.loc["gap", "p"])
    assert ledger.loc["gap", "p_adjusted"] == ledger.loc["curbs", "p_adjusted"]
    assert ledger.loc["gap", "shares_test_with"] == "curbs"
    assert ledger.loc["l2", "shares_test_with"] == ""
    # a different margin of a plain difference is still the same p-value
    wider = evaluate([claims[0], {**claims[1], "margin": 2.0}, claims[2]], tables(REG))
    assert wider.p_adjusted[0] == pytest.approx(2 * wider.p[0])


def test_the_verdict_says_whether_its_guard_failed_or_its_interval_is_too_wide():
    runs = runs_frame(
        "regularization",
        {
            "none": {"test_acc": [0.84, 0.85, 0.85], "gap_acc": [0.10, 0.12, 0.11]},
            "augmentation": {"test_acc": [0.835, 0.846, 0.84], "gap_acc": [0.04, 0.05, 0.05]},
            "l2": {"test_acc": [0.85, 0.84, 0.86], "gap_acc": [0.09, 0.13, 0.10]},
        },
    )
    curbs = {**DROPOUT, "variant": "augmentation", "metric": "gap_acc", "expect": "lower",
             "margin": 1.0, "guard": {"metric": "test_acc", "unit": "pp", "margin": 0.5,
                                      "expect": "higher"}}  # fmt: skip
    row = one(curbs, tables(runs))
    assert row.verdict == "inconclusive"
    assert row.verdict_reason == "guard failed: test_acc may be lost beyond its margin"
    wide = one({**curbs, "variant": "l2", "guard": None}, tables(runs))
    assert (wide.verdict, wide.verdict_reason) == (
        "inconclusive",
        "interval too wide for the margin",
    )
    assert one({**curbs, "guard": None}, tables(runs)).verdict_reason == ""


def test_an_extrapolation_says_so_and_memory_says_it_is_computed(tmp_path):
    point = {"value": 2e13, "lo": 1.4e13, "hi": 3e13, "n": 1e6}
    family = {"n_params": [50, 90], "extrapolation": {"1e+06": {"extrapolated": True,
              "peak_bytes": point, "s_per_iter": point}}}  # fmt: skip
    (tmp_path / "second_order.json").write_text(json.dumps({"families": {"mlp": family}}))
    claim = {"kind": "special", "check": "second_order_at_scale", "at": 1000000, "unit": "x",
             "budget": 8e10, "budget_reason": "80 GB", "margin": 1, "expect": "higher"}  # fmt: skip
    memory = one({**claim, "quantity": "peak_bytes"}, tables(scale_dir=tmp_path))
    assert bool(memory.extrapolated) and memory.detail.startswith("extrapolation of bytes computed")
    assert memory.basis == "bytes computed from tensor sizes (not measured)"
    time = one({**claim, "quantity": "s_per_iter"}, tables(scale_dir=tmp_path))
    assert bool(time.extrapolated) and time.basis == "measured seconds per iteration"
    assert not bool(one(DROPOUT, tables(REG)).extrapolated)


def test_an_equivalence_verdict_is_never_better_or_worse_in_a_table():
    assert table_word("supported", "higher", "test_acc", "equivalence") == "equivalent"
    assert table_word("contradicted", "higher", "test_acc", "equivalence") == "not equivalent"
    assert table_word("supported", "higher", "test_acc") == "better"
    # adopted into a table: the equivalence claim's cell reads "equivalent"
    from study.analysis.ledger.table_verdicts import adopt_ledger_verdicts
    from study.analysis.tables import summarize

    near = runs_frame(
        "regularization",
        {
            "none": {"test_acc": [0.850, 0.851, 0.852]},
            "dropout": {"test_acc": [0.8505, 0.8512, 0.8519]},
        },
    )
    same = {"id": "same", "claim": "Same.", **DECLARED, **DROPOUT, "test": "equivalence",
            "margin": 1.0}  # fmt: skip
    ledger = evaluate([same], tables(near))
    assert ledger.verdict[0] == "supported"
    table = summarize(near, "regularization", "none", ["none", "dropout"])
    adopt_ledger_verdicts({"regularization": table}, [same], ledger)
    assert table.loc[table["variant"] == "dropout", "test_acc_verdict"].item() == "equivalent"
