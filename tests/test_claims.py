import math
from pathlib import Path

import pandas as pd
import pytest

from study.analysis.claims import (
    COLUMNS,
    ClaimsError,
    ClaimTables,
    evaluate,
    evaluate_claims,
    load_claims,
)

ROOT = Path(__file__).resolve().parents[1]


def runs_frame(ablation, data, status=None):
    """One row per (variant, seed) from {variant: {metric: [value of seed 0, 1, ...]}}."""
    rows = []
    for variant, metrics in data.items():
        n = len(next(iter(metrics.values())))
        for seed in range(n):
            row = {"ablation": ablation, "variant": variant, "seed": seed, "status": "ok"}
            row["status"] = (status or {}).get((variant, seed), "ok")
            row.update({m: values[seed] for m, values in metrics.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def tables(runs=None, history=None, shift=None, tuning=None, scale_dir=Path("/nonexistent")):
    empty = pd.DataFrame(columns=["ablation", "variant", "seed"])
    return ClaimTables(
        runs if runs is not None else empty,
        history if history is not None else empty,
        shift if shift is not None else empty,
        tuning,
        scale_dir,
    )


def one(claim, t):
    claim = {"id": "c", "claim": "A claim.", **claim}
    row = evaluate([claim], t).iloc[0]
    return row


REG = runs_frame(
    "regularization",
    {
        "none": {"test_acc": [0.84, 0.85, 0.85], "gap_acc": [0.10, 0.12, 0.11]},
        "dropout": {"test_acc": [0.86, 0.88, 0.87], "gap_acc": [0.05, 0.06, 0.06]},
        "l2": {"test_acc": [0.85, 0.84, 0.86], "gap_acc": [0.09, 0.13, 0.10]},
    },
)
DROPOUT = {
    "kind": "compare",
    "ablation": "regularization",
    "reference": "none",
    "variant": "dropout",
    "metric": "test_acc",
    "expect": "higher",
    "figure": "regularization/test_accuracy",
}


def test_compare_is_supported_when_the_paired_ci_excludes_zero_in_the_expected_direction():
    # dropout − none per seed: 0.02, 0.03, 0.02 → mean 0.02333, s 0.005774, t(0.975, 2) 4.302653
    row = one(DROPOUT, tables(REG))
    assert list(evaluate([{"id": "c", "claim": "x", **DROPOUT}], tables(REG)).columns) == COLUMNS
    assert row.effect == pytest.approx(0.023333, abs=1e-6)
    assert row.lo == pytest.approx(0.023333 - 0.014342, abs=1e-6)
    assert row.hi == pytest.approx(0.023333 + 0.014342, abs=1e-6)
    assert row.verdict == "supported"
    assert row.figure == "regularization/test_accuracy" and row.metric == "test_acc"
    assert row.detail.startswith("dropout - none: +0.0233 [0.00899, 0.0377], 3 paired seeds")


def test_compare_is_contradicted_when_the_ci_excludes_zero_the_other_way():
    assert one({**DROPOUT, "expect": "lower"}, tables(REG)).verdict == "contradicted"


def test_compare_is_inconclusive_when_the_ci_contains_zero():
    # l2 − none: +0.01, −0.01, +0.01
    assert one({**DROPOUT, "variant": "l2"}, tables(REG)).verdict == "inconclusive"


def test_several_variants_all_any_or_mean():
    claim = {**DROPOUT, "variants": "*", "metric": "test_acc"}
    del claim["variant"]
    all_ = one(claim, tables(REG))  # dropout supported, l2 inconclusive
    assert all_.verdict == "inconclusive"
    assert "dropout - none" in all_.detail and "l2 - none" in all_.detail
    assert all_.effect == pytest.approx((0.023333 + 0.003333) / 2, abs=1e-6)
    assert one({**claim, "combine": "any"}, tables(REG)).verdict == "supported"
    # mean of dropout and l2 per seed minus none: 0.015, 0.010, 0.015 → 0.01333 ± 0.00717
    mean = one({**claim, "combine": "mean"}, tables(REG))
    assert mean.effect == pytest.approx(0.013333, abs=1e-6) and mean.verdict == "supported"
    assert mean.lo == pytest.approx(0.013333 - 0.007171, abs=1e-6)
    assert mean.detail.endswith("(each: dropout +0.0233, l2 +0.00333)")
    gap = one({**claim, "metric": "gap_acc", "expect": "lower"}, tables(REG))
    assert gap.verdict == "inconclusive"  # l2's gap is not clearly lower


def test_absent_ablation_variant_or_metric_is_not_tested_never_an_error():
    for change, why in (
        ({"ablation": "nope"}, "no runs of ablation nope"),
        ({"variant": "cutout"}, "no runs of regularization/cutout"),
        ({"metric": "weight_sparsity"}, "no weight_sparsity for regularization/none"),
    ):
        row = one({**DROPOUT, **change}, tables(REG))
        assert row.verdict == "not tested" and math.isnan(row.effect) and row.detail == why
    assert one(DROPOUT, tables()).verdict == "not tested"


def test_a_missing_variant_in_a_list_is_named_and_the_rest_compared():
    claim = {**DROPOUT, "variants": ["dropout", "cutout"]}
    del claim["variant"]
    row = one(claim, tables(REG))
    assert row.verdict == "supported" and row.detail.endswith("; no runs of cutout")


def test_losses_of_diverged_runs_drop_out_of_the_pairs():
    runs = runs_frame(
        "schedules",
        {"constant": {"test_loss": [0.50, 0.52, 0.51]}, "cosine": {"test_loss": [0.45, 1e9, 0.47]}},
        status={("cosine", 1): "diverged"},
    )
    claim = {
        "kind": "compare",
        "ablation": "schedules",
        "reference": "constant",
        "variant": "cosine",
        "metric": "test_loss",
        "expect": "lower",
    }
    row = one(claim, tables(runs))
    assert row.effect == pytest.approx(-0.045) and "2 paired seeds" in row.detail


OPT = runs_frame(
    "optimizers",
    {
        "sgd": {"test_acc": [0.85, 0.86, 0.84]},
        "momentum": {"test_acc": [0.90, 0.92, 0.88]},
        "adam": {"test_acc": [0.895, 0.915, 0.875]},
    },
)
ADAM = {
    "kind": "near_best",
    "ablation": "optimizers",
    "variant": "adam",
    "metric": "test_acc",
    "expect": "higher",
    "tolerance": 0.01,
}


def test_near_best_compares_with_the_best_other_variant_within_a_tolerance():
    # adam − momentum (the best other) is −0.005 on every seed
    row = one(ADAM, tables(OPT))
    assert row.effect == pytest.approx(-0.005) and row.verdict == "supported"
    assert "best other (momentum)" in row.detail
    assert one({**ADAM, "tolerance": 0.001}, tables(OPT)).verdict == "contradicted"
    assert one({**ADAM, "among": ["sgd"]}, tables(OPT)).verdict == "supported"


def tuning_frame(statuses):
    """Two variants tuned over lr 0.01, 0.1, 1.0 with one seed; statuses at the top lr."""
    rows = []
    for variant, top in statuses.items():
        for lr in (0.01, 0.1, 1.0):
            status = top if lr == 1.0 else "ok"
            rows.append({"ablation": "optimizers", "variant": variant, "level": f"lr-{lr}"})
            rows[-1].update({"seed": 0, "status": status, "lr": lr})
    return pd.DataFrame(rows)


def test_the_highest_learning_rate_of_each_grid_diverges():
    claim = {"kind": "diverges", "source": "tuning"}
    row = one(claim, tables(tuning=tuning_frame({"sgd": "diverged", "adam": "diverged"})))
    assert row.verdict == "supported" and row.effect == 1.0
    assert row.lo == pytest.approx(0.025**0.5)  # Clopper–Pearson lower bound for 2 of 2
    assert "diverged 2/2 runs" in row.detail and "optimizers/sgd lr 1.00: 1/1" in row.detail
    half = tables(tuning=tuning_frame({"sgd": "diverged", "adam": "ok"}))
    assert one(claim, half).verdict == "supported"  # min_fraction 0.5
    assert one({**claim, "min_fraction": 1.0}, half).verdict == "inconclusive"
    none = tables(tuning=tuning_frame({"sgd": "ok", "adam": "ok"}))
    assert one(claim, none).verdict == "contradicted"
    above = one({**claim, "lr_above": 0.05}, half)  # lr 0.1 and 1.0 of both: 1 of 4 diverged
    assert above.effect == 0.25 and above.verdict == "inconclusive"
    assert one(claim, tables()).verdict == "not tested"
    assert one({**claim, "ablation": "schedules"}, half).verdict == "not tested"


def history_frame(ablation, curves):
    """{variant: [val_loss per epoch, one list per seed]} as history rows."""
    rows = []
    for variant, seeds in curves.items():
        for seed, losses in enumerate(seeds):
            for epoch, loss in enumerate(losses, start=1):
                rows.append(
                    {
                        "ablation": ablation,
                        "variant": variant,
                        "seed": seed,
                        "epoch": epoch,
                        "val_loss": loss,
                        "val_acc": 1.0 - loss,
                    }
                )
    return pd.DataFrame(rows)


NORM_HISTORY = history_frame(
    "normalization",
    {
        "none": [[0.9, 0.7, 0.5, 0.4], [0.95, 0.72, 0.52, 0.46]],
        "batchnorm": [[0.6, 0.4, 0.3, 0.3], [0.62, 0.45, 0.33, 0.31]],
    },
)
NORM_RUNS = runs_frame(
    "normalization",
    {"none": {"config.train.epochs": [4, 4]}, "batchnorm": {"config.train.epochs": [4, 4]}},
)
BN_SPEED = {
    "kind": "compare",
    "ablation": "normalization",
    "reference": "none",
    "variant": "batchnorm",
    "source": "history",
    "metric": "val_loss",
    "expect": "lower",
}


def test_history_metric_at_a_fixed_epoch():
    row = one({**BN_SPEED, "at_epoch": 2}, tables(NORM_RUNS, NORM_HISTORY))
    # epoch 2: 0.4 − 0.7 and 0.45 − 0.72
    assert row.effect == pytest.approx(-0.285) and row.verdict == "supported"
    assert row.metric == "val_loss at epoch 2"
    beyond = one({**BN_SPEED, "at_epoch": 9}, tables(NORM_RUNS, NORM_HISTORY))
    assert math.isnan(beyond.effect) and beyond.verdict == "inconclusive"


def test_epochs_to_a_target_censors_runs_that_never_reach_it():
    # val_loss <= 0.45: batchnorm at epochs 2, 2; none at 4 and never (censored at 4 + 1 = 5)
    row = one({**BN_SPEED, "reach": 0.45}, tables(NORM_RUNS, NORM_HISTORY))
    assert row.metric == "epochs to val_loss <= 0.45"
    assert row.effect == pytest.approx(((2 - 4) + (2 - 5)) / 2)
    # val_acc >= 0.5 (accuracies: at least): batchnorm at epochs 2, 2; none at 3, 4
    acc = one({**BN_SPEED, "metric": "val_acc", "reach": 0.5}, tables(NORM_RUNS, NORM_HISTORY))
    assert acc.effect == pytest.approx(((2 - 3) + (2 - 4)) / 2)
    assert acc.metric == "epochs to val_acc >= 0.5"


def test_shift_accuracy_averages_the_selected_rows_per_run():
    rows = []
    for variant, shifted in (("batchnorm", [0.50, 0.52]), ("batchrenorm", [0.60, 0.61])):
        for seed, acc in enumerate(shifted):
            base = {"ablation": "normalization", "variant": variant, "seed": seed}
            rows += [
                {**base, "shift": "clean", "severity": 0.0, "adapted": "False", "accuracy": 0.9},
                {**base, "shift": "blur", "severity": 3.0, "adapted": "False", "accuracy": acc},
                {**base, "shift": "blur", "severity": 3.0, "adapted": "True", "accuracy": 0.8},
                {**base, "shift": "drift", "severity": 0.0, "adapted": "False", "accuracy": 0.9},
                {**base, "shift": "prior", "severity": 1.0, "adapted": "False", "accuracy": 0.1},
            ]
    runs = runs_frame("normalization", {"batchnorm": {"x": [0, 0]}, "batchrenorm": {"x": [0, 0]}})
    claim = {
        "kind": "compare",
        "ablation": "normalization",
        "reference": "batchnorm",
        "variant": "batchrenorm",
        "source": "shift",
        "metric": "accuracy",
        "where": {"adapted": False},
        "where_not": {"shift": ["clean", "prior"], "severity": 0},
        "expect": "higher",
    }
    row = one(claim, tables(runs, shift=pd.DataFrame(rows)))
    assert row.effect == pytest.approx(0.095)  # only the unadapted blur rows remain
    assert row.metric.startswith("mean shifted accuracy (adapted=False")
    assert one({**claim, "where": {"adapted": "maybe"}}, tables(runs, shift=pd.DataFrame(rows)))[
        "verdict"
    ] == ("not tested")


def test_early_stopping_stops_near_the_unstopped_validation_minimum():
    history = history_frame(
        "early_stopping",
        {
            "none": [
                [0.9, 0.5, 0.4, 0.45, 0.6],
                [0.9, 0.6, 0.5, 0.4, 0.5],
                [0.8, 0.4, 0.5, 0.6, 0.7],
            ]
        },
    )  # val_loss minima at epochs 3, 4, 2
    runs = runs_frame(
        "early_stopping", {"none": {"best_epoch": [3, 4, 2]}, "stop": {"best_epoch": [3, 4, 3]}}
    )
    claim = {
        "kind": "special",
        "check": "early_stopping_near_minimum",
        "ablation": "early_stopping",
        "variant": "stop",
        "reference": "none",
        "tolerance": 2,
    }
    # differences 0, 0, 1: mean 0.333, CI ±1.434 → [−1.10, 1.77] lies within ±2 epochs
    row = one(claim, tables(runs, history))
    assert row.effect == pytest.approx(1 / 3) and row.verdict == "supported"
    assert one({**claim, "tolerance": 1}, tables(runs, history)).verdict == "inconclusive"
    late = runs_frame(
        "early_stopping", {"none": {"best_epoch": [3, 4, 2]}, "stop": {"best_epoch": [9, 9, 8]}}
    )
    assert one(claim, tables(late, history)).verdict == "contradicted"
    assert one({**claim, "variant": "patience3"}, tables(runs, history)).verdict == "not tested"


SECOND_ORDER = {"kind": "special", "check": "second_order_cost", "second_order": ["lbfgs"]}


def test_second_order_needs_fewer_but_costlier_iterations(tmp_path):
    csv = tmp_path / "second_order.csv"
    csv.write_text(
        "method,iterations,seconds,reached,s_per_iter\n"
        "lbfgs,20,1.0,True,0.05\nadam,500,0.5,True,0.001\ngd,2000,1.0,False,0.0005\n"
    )
    row = one(SECOND_ORDER, tables(scale_dir=tmp_path))
    assert row.verdict == "supported" and row.effect == pytest.approx(20 / 500)
    assert "lbfgs 20.0, adam 500" in row.detail
    csv.write_text("method,iterations,seconds,reached\nlbfgs,20,0.01,True\nadam,500,0.5,True\n")
    # without s_per_iter: seconds / iterations = 0.0005 vs 0.001 → not costlier per iteration
    assert one(SECOND_ORDER, tables(scale_dir=tmp_path)).verdict == "contradicted"
    csv.write_text("method,iterations,seconds,reached\nlbfgs,20,1,False\nadam,500,0.5,True\n")
    assert one(SECOND_ORDER, tables(scale_dir=tmp_path)).verdict == "inconclusive"
    csv.unlink()
    assert one(SECOND_ORDER, tables(scale_dir=tmp_path)).verdict == "not tested"
    csv.write_text("method,seconds\nlbfgs,1\n")
    with pytest.raises(ClaimsError, match="lacks the column"):
        one(SECOND_ORDER, tables(scale_dir=tmp_path))


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("claims: 3", "claims=3 must be a list of claims"),
        ("claims:\n  - {id: A, claim: x, kind: diverges}",
         r"claim #1: id='A' must match \[a-z0-9_.-\]\+"),
        ("claims:\n  - {id: a, claim: x, kind: guess}",
         "kind='guess' must be one of compare, near_best, diverges, special"),
        ("claims:\n  - {id: a, claim: x, kind: diverges, colour: red}", "unknown key 'colour'"),
        ("claims:\n  - {id: a, claim: x, kind: diverges}\n  - {id: a, claim: y, kind: diverges}",
         "duplicate id"),
        ("claims:\n  - {id: a, claim: x, kind: compare, ablation: b, reference: c, metric: d,"
         " expect: up, variant: e}", "expect='up' must be one of higher, lower"),
        ("claims:\n  - {id: a, claim: x, kind: compare, ablation: b, reference: c, metric: d,"
         " expect: higher}", "exactly one of 'variant' or 'variants'"),
        ("claims:\n  - {id: a, claim: x, kind: special, check: vibes}",
         "check='vibes' must be one of early_stopping_near_minimum"),
        ("claims:\n  - {id: a, claim: x, kind: compare, ablation: b, reference: c, metric: d,"
         " expect: lower, variant: e, source: history}", "needs at_epoch or reach"),
        ("claims:\n  - {id: a, claim: x, kind: special, check: early_stopping_near_minimum}",
         "missing keys 'ablation', 'reference', 'variant'"),
    ],
)  # fmt: skip
def test_malformed_claims_fail_with_one_line_naming_the_claim(tmp_path, yaml_text, problem):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ClaimsError, match=problem) as err:
        load_claims(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_the_ledger_loads_and_is_not_tested_without_results(tmp_path):
    claims = load_claims(ROOT / "conf" / "claims.yaml")
    ids = {c["id"] for c in claims}
    assert {
        "reg_gap",
        "l1_sparsity",
        "adam_default",
        "high_lr_diverges",
        "second_order_cost",
    } <= ids
    result = evaluate(claims, tables(scale_dir=tmp_path))
    assert set(result.verdict) == {"not tested"}
    assert len(result) == len(claims)


def test_evaluate_claims_reads_the_tables_folder(tmp_path):
    tables_dir = tmp_path / "tables"
    tables_dir.mkdir()
    REG.to_csv(tables_dir / "runs.csv", index=False)
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        "claims:\n  - {id: drop, claim: Dropout helps., kind: compare, ablation: regularization,\n"
        "     reference: none, variant: dropout, metric: test_acc, expect: higher}\n"
    )
    result = evaluate_claims(claims, tables_dir)
    assert result.loc[0, "verdict"] == "supported"
    assert result.loc[0, "ablation"] == "regularization"
