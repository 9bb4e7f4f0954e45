import json
import math
from pathlib import Path

import pandas as pd
import pytest

from study.analysis import power
from study.analysis.ledger.evaluate import (
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


DECLARED = {"unit": "pp", "margin": 0.5, "margin_reason": "the study's resolution"}


def one(claim, t):
    claim = {"id": "c", "claim": "A claim.", **DECLARED, **claim}
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
    "unit": "pp",
    "expect": "higher",
    "margin": 0.5,
    "margin_reason": "resolution",
    "figure": "regularization/test_accuracy",
}


def test_compare_is_supported_in_the_claims_unit_with_its_power():
    # dropout − none per seed: 2, 3, 2 pp → mean 2.333, s 0.5774, t(0.975, 2) 4.302653
    row = one(DROPOUT, tables(REG))
    ledger = evaluate([{"id": "c", "claim": "x", **DECLARED, **DROPOUT}], tables(REG))
    assert list(ledger.columns) == COLUMNS
    assert row.effect == pytest.approx(2.3333, abs=1e-4) and row.unit == "pp"
    assert row.lo == pytest.approx(2.3333 - 1.4342, abs=1e-4)
    assert row.hi == pytest.approx(2.3333 + 1.4342, abs=1e-4)
    assert row.p == pytest.approx(0.0198, abs=1e-3) and row.p_adjusted == row.p  # one claim
    assert row.detectable_effect == pytest.approx(power.detectable_effect(3, 0.57735), rel=1e-3)
    assert row.seeds == 3 and row.direction == "higher" and row.margin == 0.5
    assert row.verdict == "supported"
    assert row.figure == "regularization/test_accuracy" and row.metric == "test_acc"
    assert row.detail.startswith("dropout - none: +2.33 pp [0.899, 3.77], 3 paired seeds")


def test_a_claim_planted_the_wrong_way_is_contradicted():
    assert one({**DROPOUT, "expect": "lower"}, tables(REG)).verdict == "contradicted"


def test_compare_is_inconclusive_when_the_interval_holds_zero_and_the_margin():
    # l2 − none: +1, −1, +1 pp: the interval [−2.5, 3.2] reaches beyond ±0.5 pp
    assert one({**DROPOUT, "variant": "l2"}, tables(REG)).verdict == "inconclusive"


def test_a_tight_interval_inside_the_margin_is_no_meaningful_effect():
    # the same l2 − none against a 5 pp margin: the 90% interval [−1.6, 2.3] lies inside ±5
    row = one({**DROPOUT, "variant": "l2", "margin": 5.0}, tables(REG))
    assert row.verdict == "no meaningful effect"


def test_near_zero_variance_is_never_supported():
    """A constant 0.1 pp difference (identical trajectories, a rounding-level change) has no
    spread to test: the exact sign-flip p is 0.25 with 3 seeds, so never 'supported'; with 5
    seeds its TOST p (2^-5) makes it 'no meaningful effect'."""
    for n, expected in ((3, "inconclusive"), (5, "no meaningful effect")):
        base = [0.80 + 0.01 * i for i in range(n)]
        runs = runs_frame(
            "regularization",
            {"none": {"test_acc": base}, "dropout": {"test_acc": [b + 0.001 for b in base]}},
        )
        row = one(DROPOUT, tables(runs))
        assert row.verdict == expected and row.detectable_effect == 0.0
    same = runs_frame("regularization", {"none": {"test_acc": base}, "dropout": {"test_acc": base}})
    row = one(DROPOUT, tables(same))
    assert row.effect == 0 and row.verdict != "supported"


def test_the_ledger_adjusts_p_over_all_its_claims_by_benjamini_hochberg():
    alone = one(DROPOUT, tables(REG))
    assert alone.verdict == "supported"
    dropout = {"id": "dropout", "claim": "Dropout helps.", **DECLARED, **DROPOUT}
    # Three claims with the same p: the false-discovery rate adjusts none of them (Holm would
    # have tripled each, to 0.059, and called them inconclusive).
    three = [{**dropout, "id": f"c{i}"} for i in range(3)]
    ledger = evaluate(three, tables(REG))
    assert ledger.p_adjusted.tolist() == pytest.approx([alone.p] * 3)
    assert set(ledger.verdict) == {"supported"}
    # Next to two claims far from significance (l2, p = 2/3), dropout's p is multiplied by the
    # number of claims over its rank: 3 x 0.0198 = 0.059 > 0.05, so it is no longer supported.
    # (two distinct tests: claims sharing one test count once, test_ledger_artefacts.py)
    l2 = [
        {**dropout, "id": "l2_0", "variant": "l2"},
        {**dropout, "id": "l2_1", "variant": "l2", "metric": "gap_acc", "expect": "lower"},
    ]
    ledger = evaluate([dropout, *l2], tables(REG))
    assert ledger.p_adjusted[0] == pytest.approx(3 * alone.p)
    assert ledger.p_adjusted[1:].tolist() == pytest.approx([2 / 3] * 2)
    assert ledger.verdict[0] == "inconclusive"
    # a not-tested claim does not count as a hypothesis
    ledger = evaluate([three[0], {**three[1], "ablation": "nope"}], tables(REG))
    assert ledger.p_adjusted[0] == pytest.approx(alone.p)


def test_several_variants_all_any_or_mean():
    claim = {**DROPOUT, "variants": "*", "metric": "test_acc"}
    del claim["variant"]
    all_ = one(claim, tables(REG))  # judged on the weakest, l2: inconclusive
    assert all_.verdict == "inconclusive" and "judged on l2" in all_.detail
    any_ = one({**claim, "combine": "any"}, tables(REG))  # dropout, p x 2 = 0.0396
    assert any_.verdict == "supported" and any_.p == pytest.approx(2 * 0.0198, abs=2e-3)
    # mean of dropout and l2 per seed minus none: 1.5, 1.0, 1.5 pp → 1.333 ± 0.717
    mean = one({**claim, "combine": "mean"}, tables(REG))
    assert mean.effect == pytest.approx(1.3333, abs=1e-4) and mean.verdict == "supported"
    assert mean.lo == pytest.approx(1.3333 - 0.7171, abs=1e-4)
    assert mean.detail.endswith("(each: dropout +2.33, l2 +0.333)")
    gap = one({**claim, "metric": "gap_acc", "expect": "lower"}, tables(REG))
    assert gap.verdict == "inconclusive"  # l2's gap is not clearly lower


def test_a_smaller_gap_bought_with_test_accuracy_does_not_curb_overfitting():
    runs = runs_frame(
        "regularization",
        {
            "none": {"test_acc": [0.84, 0.85, 0.85], "gap_acc": [0.10, 0.12, 0.11]},
            "dropout": {"test_acc": [0.86, 0.88, 0.87], "gap_acc": [0.05, 0.06, 0.06]},
            "augmentation": {"test_acc": [0.81, 0.83, 0.82], "gap_acc": [0.04, 0.05, 0.05]},
        },
    )
    curbs = {
        **DROPOUT,
        "metric": "gap_acc",
        "expect": "lower",
        "margin": 1.0,
        "guard": {"metric": "test_acc", "unit": "pp", "margin": 0.5, "expect": "higher"},
    }
    assert one(curbs, tables(runs)).verdict == "supported"
    planted = one({**curbs, "variant": "augmentation"}, tables(runs))  # gap −6 pp, acc −3 pp
    assert planted.verdict == "contradicted" and "lost beyond the margin" in planted.detail
    assert one({**curbs, "guard": None} | {"variant": "augmentation"}, tables(runs)).verdict == (
        "supported"
    )


def test_the_guard_is_a_one_sided_non_inferiority_test():
    # test accuracy −0.2, −0.3, −0.4 pp: the 95% interval [−0.55, −0.05] crosses the −0.5 pp
    # margin, the 90% interval of the one-sided 5% test [−0.47, −0.13] does not: kept
    runs = runs_frame(
        "regularization",
        {
            "none": {"test_acc": [0.85, 0.85, 0.85], "gap_acc": [0.10, 0.12, 0.11]},
            "dropout": {"test_acc": [0.848, 0.847, 0.846], "gap_acc": [0.05, 0.06, 0.06]},
        },
    )
    guard = {"metric": "test_acc", "unit": "pp", "margin": 0.5, "expect": "higher"}
    curbs = {**DROPOUT, "metric": "gap_acc", "expect": "lower", "margin": 1.0, "guard": guard}
    row = one(curbs, tables(runs))
    assert row.verdict == "supported" and row.detail.endswith("kept")
    assert "[-0.548, -0.0516]" in row.detail and "90% [-0.469, -0.131]" in row.detail
    # one seed further away (−0.6 pp) and it may be lost: inconclusive
    runs.loc[(runs.variant == "dropout") & (runs.seed == 2), "test_acc"] = 0.844
    assert one(curbs, tables(runs)).verdict == "inconclusive"


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
        "unit": "loss",
        "expect": "lower",
        "margin": 0.02,
    }
    row = one(claim, tables(runs))
    assert row.effect == pytest.approx(-0.045) and "2 paired seeds" in row.detail


OPT = runs_frame(
    "optimizers",
    {
        "sgd": {"test_acc": [0.85, 0.86, 0.84], "val_acc": [0.85, 0.86, 0.84]},
        "momentum": {"test_acc": [0.90, 0.92, 0.88], "val_acc": [0.90, 0.92, 0.88]},
        "adam": {"test_acc": [0.897, 0.915, 0.872], "val_acc": [0.9, 0.91, 0.87]},
    },
)
ADAM = {
    "kind": "near_best",
    "ablation": "optimizers",
    "variant": "adam",
    "metric": "test_acc",
    "expect": "higher",
    "margin": 1.0,
}


def test_near_best_is_a_non_inferiority_test_against_the_best_other_variant():
    # adam − momentum (the best other): −0.3, −0.5, −0.8 pp; one-sided t of > −1 pp: p 0.042
    row = one(ADAM, tables(OPT))
    assert row.effect == pytest.approx(-0.5333, abs=1e-4) and row.verdict == "supported"
    assert row.test == "noninferiority" and "best other (momentum, by val_acc)" in row.detail
    assert one({**ADAM, "margin": 0.1}, tables(OPT)).verdict == "inconclusive"
    assert one({**ADAM, "among": ["sgd"]}, tables(OPT)).verdict == "supported"
    planted = one({**ADAM, "variant": "sgd"}, tables(OPT))  # 4 to 6 points below momentum
    assert planted.verdict == "contradicted"
    missing = one({**ADAM, "among": ["sgd", "muon"]}, tables(OPT))
    assert missing.verdict == "not tested" and "optimizers/muon" in missing.detail


def tuning_frame(statuses):
    """Variants tuned over lr 0.01, 0.1, 1.0 with one seed; statuses at the top lr."""
    rows = []
    for variant, top in statuses.items():
        for lr in (0.01, 0.1, 1.0):
            status = top if lr == 1.0 else "ok"
            rows.append({"ablation": "optimizers", "variant": variant, "level": f"lr-{lr}"})
            rows[-1].update({"seed": 0, "status": status, "lr": lr})
    return pd.DataFrame(rows)


def test_divergence_is_a_proportion_with_its_exact_interval():
    claim = {"kind": "diverges", "source": "tuning", "unit": "fraction", "margin": 0.5}
    two = one(claim, tables(tuning=tuning_frame({"sgd": "diverged", "adam": "diverged"})))
    # 2 of 2: Clopper–Pearson [0.158, 1] still holds 0.5, so 2 runs cannot show "most diverge"
    assert two.effect == 1.0 and two.lo == pytest.approx(0.025**0.5)
    assert two.verdict == "inconclusive" and "diverged 2/2 runs" in two.detail
    eight = {f"v{i}": "diverged" for i in range(8)}
    row = one(claim, tables(tuning=tuning_frame(eight)))  # [0.631, 1], binomial p 2^-8
    assert row.verdict == "supported" and row.p == pytest.approx(0.5**8)
    planted = one(claim, tables(tuning=tuning_frame(dict.fromkeys(eight, "ok"))))
    assert planted.verdict == "contradicted" and planted.hi == pytest.approx(1 - 0.025 ** (1 / 8))
    half = tables(tuning=tuning_frame({"sgd": "diverged", "adam": "ok"}))
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
    "unit": "loss",
    "expect": "lower",
    "margin": 0.02,
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
    epochs = {**BN_SPEED, "unit": "epochs", "margin": 1}
    row = one({**epochs, "reach": 0.45}, tables(NORM_RUNS, NORM_HISTORY))
    assert row.metric == "epochs to val_loss <= 0.45"
    # whole epochs: the median paired difference with its range, not a t-interval
    assert (row.effect, row.lo, row.hi) == (-2.5, -3, -2)
    # val_acc >= 0.5 (accuracies: at least): batchnorm at epochs 2, 2; none at 3, 4
    acc = one({**epochs, "metric": "val_acc", "reach": 0.5}, tables(NORM_RUNS, NORM_HISTORY))
    assert (acc.effect, acc.lo, acc.hi) == (-1.5, -2, -1)
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
    assert row.effect == pytest.approx(9.5)  # pp  # only the unadapted blur rows remain
    assert row.metric.startswith("mean shifted accuracy (adapted=False")
    assert one({**claim, "where": {"adapted": "maybe"}}, tables(runs, shift=pd.DataFrame(rows)))[
        "verdict"
    ] == ("not tested")


def test_early_stopping_stops_near_the_unstopped_validation_minimum():
    history = history_frame(
        "regularization",
        {
            "none_constant": [
                [0.9, 0.5, 0.4, 0.45, 0.6],
                [0.9, 0.6, 0.5, 0.4, 0.5],
                [0.8, 0.4, 0.5, 0.6, 0.7],
            ]
        },
    )  # val_loss minima at epochs 3, 4, 2

    def stopped(best, ran):
        return runs_frame(
            "regularization",
            {
                "none_constant": {"best_epoch": [3, 4, 2], "epochs_run": [5, 5, 5]},
                "stop": {"best_epoch": best, "epochs_run": ran},
            },
        )

    claim = {
        "kind": "special",
        "check": "early_stopping_near_minimum",
        "ablation": "regularization",
        "variant": "stop",
        "reference": "none_constant",
        "unit": "epochs",
        "margin": 2,
    }
    # stops at epochs 3, 4, 3: differences 0, 0, 1: median 0 [0, 1]; TOST within ±2 epochs p 0.019
    row = one(claim, tables(stopped([2, 3, 2], [3, 4, 3]), history))
    assert (row.effect, row.lo, row.hi) == (0, 0, 1) and row.verdict == "supported"
    assert row.metric == "stop epoch - val_loss argmin" and "stop epoch" in row.detail
    assert one(
        {**claim, "margin": 0.5}, tables(stopped([2, 3, 2], [3, 4, 3]), history)
    ).verdict == ("inconclusive")
    # the planted artefact: the restored best epoch is the minimum (the runs share a seed and so
    # their trajectory), but the rule stopped 5 to 6 epochs later: the check measures the stop
    late = one(claim, tables(stopped([3, 4, 2], [9, 9, 8]), history))
    assert (late.effect, late.verdict) == (6, "contradicted")
    # without epochs_run, the stop is the best epoch plus the patience
    no_ran = stopped([3, 4, 2], [9, 9, 8]).drop(columns="epochs_run")
    no_ran["config.train.patience"] = 6
    assert one(claim, tables(no_ran, history)).effect == 6
    assert one({**claim, "variant": "patience3"}, tables(stopped([3], [3]), history)).verdict == (
        "not tested"
    )


def second_order_csv(path, newton_iters=(5, 6, 7), newton_s=(0.01, 0.02, 0.04)):
    rows = ["problem,method,iterations,seconds,reached,s_per_iter_median"]
    for i, size in enumerate(("d4", "d8", "d16")):
        rows += [
            f"{size},newton,{newton_iters[i]},1,True,{newton_s[i]}",
            f"{size},lbfgs,20,1,True,0.001",
            f"{size},gd,{300 * (i + 1)},1,True,0.0010",
            f"{size},momentum,{100 * (i + 1)},1,True,0.0012",
        ]
    path.write_text("\n".join(rows) + "\n")


ITERATIONS = {"kind": "special", "check": "second_order_iterations", "unit": "x", "margin": 2,
              "expect": "higher"}  # fmt: skip


def test_newton_needs_fewer_iterations_as_a_ratio_over_problems(tmp_path):
    second_order_csv(tmp_path / "second_order.csv")
    # best first-order (momentum) / newton: 100/5, 200/6, 300/7 → geometric mean 30.4
    row = one(ITERATIONS, tables(scale_dir=tmp_path))
    assert row.effect == pytest.approx((20 * 200 / 6 * 300 / 7) ** (1 / 3))
    assert row.lo < row.effect < row.hi and row.seeds == 3 and row.verdict == "supported"
    second_order_csv(tmp_path / "second_order.csv", newton_iters=(400, 900, 1200))
    assert one(ITERATIONS, tables(scale_dir=tmp_path)).verdict == "contradicted"
    (tmp_path / "second_order.csv").unlink()
    assert one(ITERATIONS, tables(scale_dir=tmp_path)).verdict == "not tested"
    (tmp_path / "second_order.csv").write_text("method,seconds\nnewton,1\n")
    with pytest.raises(ClaimsError, match="lacks the column"):
        one(ITERATIONS, tables(scale_dir=tmp_path))


def test_newton_step_time_is_a_repeated_measurement_ratio(tmp_path):
    second_order_csv(tmp_path / "second_order.csv")
    step = {**ITERATIONS, "check": "second_order_step_time"}
    row = one(step, tables(scale_dir=tmp_path))  # newton / gd: 10, 20, 40
    assert row.effect == pytest.approx(20.0) and row.verdict == "supported"
    second_order_csv(tmp_path / "second_order.csv", newton_s=(0.001, 0.0009, 0.0011))
    assert one(step, tables(scale_dir=tmp_path)).verdict == "no meaningful effect"


def test_extrapolated_cost_against_a_declared_budget(tmp_path):
    def write(value, lo, hi):
        point = {"value": value, "lo": lo, "hi": hi, "n": 1e6}
        fit = {"slope": 1.99, "lo": 1.94, "hi": 2.02, "points": 3}
        family = {"n_params": [50, 90, 170], "memory_exponent": fit,
                  "extrapolation": {"1e+06": {"peak_bytes": point}}}  # fmt: skip
        (tmp_path / "second_order.json").write_text(json.dumps({"families": {"logreg": family}}))

    claim = {"kind": "special", "check": "second_order_at_scale", "quantity": "peak_bytes",
             "at": 1000000, "budget": 8e10, "budget_reason": "80 GB", "unit": "x", "margin": 1,
             "expect": "higher"}  # fmt: skip
    write(2e13, 1.4e13, 3e13)
    row = one(claim, tables(scale_dir=tmp_path))
    assert row.effect == pytest.approx(250) and row.verdict == "supported"
    assert "exponent 1.99 [1.94, 2.02]" in row.detail
    write(2e13, 1e9, 3e13)
    assert one(claim, tables(scale_dir=tmp_path)).verdict == "inconclusive"
    write(1e9, 5e8, 2e9)
    assert one(claim, tables(scale_dir=tmp_path)).verdict == "contradicted"


def test_ledger_and_tables_agree_on_a_shared_comparison():
    from study.analysis.tables import summarize

    runs = REG[REG["variant"] != "l2"]  # one comparison: the same Holm family size, 1
    table = summarize(runs, "regularization", "none", ["none", "dropout"])
    row = table[table["variant"] == "dropout"].iloc[0]
    claim = one(DROPOUT, tables(runs))
    assert claim.effect == pytest.approx(100 * row["test_acc_diff"])
    table_interval = (100 * row["test_acc_diff_lo"], 100 * row["test_acc_diff_hi"])
    assert (claim.lo, claim.hi) == pytest.approx(table_interval)
    assert claim.detectable_effect == pytest.approx(100 * row["test_acc_mde"])
    assert (claim.verdict, row["test_acc_verdict"]) == ("supported", "better")
    planted = one({**DROPOUT, "variant": "l2"}, tables(REG))
    l2 = summarize(REG, "regularization", "none", ["none", "l2"])
    assert (planted.verdict, l2.iloc[1]["test_acc_verdict"]) == ("inconclusive", "inconclusive")


def test_a_table_cell_that_is_a_claim_shows_the_ledgers_verdict():
    from study.analysis.ledger.table_verdicts import adopt_ledger_verdicts, shared_comparisons
    from study.analysis.table_format import display_table
    from study.analysis.tables import summarize

    table = summarize(REG, "regularization", "none", ["none", "dropout", "l2"])
    dropout = table["variant"] == "dropout"
    # within the ablation (dropout p 0.0198 next to l2's 2/3): adjusted 0.040, better
    assert table.loc[dropout, "test_acc_verdict"].item() == "better"
    # the ledger holds two more claims far from significance: adjusted 0.059, inconclusive
    dropout_claim = {"id": "dropout_helps", "claim": "Dropout helps.", **DECLARED, **DROPOUT}
    l2 = {**dropout_claim, "id": "l2_1", "variant": "l2"}
    claims = [dropout_claim, l2, {**l2, "id": "l2_2", "metric": "gap_acc", "expect": "lower"}]
    ledger = evaluate(claims, tables(REG))
    assert ledger.verdict[0] == "inconclusive"
    assert adopt_ledger_verdicts({"regularization": table}, claims, ledger) == [
        "dropout_helps", "l2_1", "l2_2"
    ]  # fmt: skip
    assert table.loc[dropout, "test_acc_verdict"].item() == "inconclusive"
    assert table.loc[dropout, "test_acc_p_adjusted"].item() == pytest.approx(ledger.p_adjusted[0])
    assert table.loc[dropout, "test_acc_claim"].item() == "dropout_helps"
    shown = display_table(table).set_index("variant")
    assert shown.loc["dropout", "Δ test_acc"].endswith(
        "inconclusive (claim dropout_helps, p adjusted over the ledger)"
    )
    # a claim that filters, guards or combines measures something else: never adopted
    for other in ({"guard": {}}, {"at_epoch": 2}, {"source": "shift"}, {"metric": "best_epoch"}):
        assert shared_comparisons([{**dropout_claim, **other}]) == []


KEYS = "unit: fraction, margin: 0.5, margin_reason: r"


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("claims: 3", "claims=3 must be a list of claims"),
        (f"claims:\n  - {{id: A, claim: x, kind: diverges, {KEYS}}}",
         r"claim #1: id='A' must match \[a-z0-9_.-\]\+"),
        (f"claims:\n  - {{id: a, claim: x, kind: guess, {KEYS}}}",
         "kind='guess' must be one of compare, near_best, diverges, interaction, special"),
        (f"claims:\n  - {{id: a, claim: x, kind: diverges, colour: red, {KEYS}}}",
         "unknown key 'colour'"),
        (f"claims:\n  - {{id: a, claim: x, kind: diverges, {KEYS}}}\n"
         f"  - {{id: a, claim: y, kind: diverges, {KEYS}}}", "duplicate id"),
        (f"claims:\n  - {{id: a, claim: x, kind: compare, ablation: b, reference: c, metric: d,"
         f" expect: up, variant: e, {KEYS}}}", "expect='up' must be one of higher, lower"),
        (f"claims:\n  - {{id: a, claim: x, kind: compare, ablation: b, reference: c, metric: d,"
         f" expect: higher, {KEYS}}}", "exactly one of 'variant' or 'variants'"),
        (f"claims:\n  - {{id: a, claim: x, kind: special, check: vibes, {KEYS}}}",
         "check='vibes' must be one of early_stopping_near_minimum"),
        (f"claims:\n  - {{id: a, claim: x, kind: compare, ablation: b, reference: c, metric: d,"
         f" expect: lower, variant: e, source: history, {KEYS}}}", "needs at_epoch or reach"),
        (f"claims:\n  - {{id: a, claim: x, kind: special, check: early_stopping_near_minimum,"
         f" {KEYS}}}", "missing keys 'ablation', 'reference', 'variant'"),
        ("claims:\n  - {id: a, claim: x, kind: diverges, unit: fraction, margin: 0.5}",
         "missing key 'margin_reason'"),
        (f"claims:\n  - {{id: a, claim: x, kind: diverges, {KEYS.replace('fraction', 'percent')}}}",
         "unit='percent' must be one of pp, loss, fraction"),
        ("claims:\n  - {id: a, claim: x, kind: special, check: second_order_iterations,"
         " expect: higher, unit: x, margin: 0.5, margin_reason: r}", "must be above 1"),
    ],
)  # fmt: skip
def test_malformed_claims_fail_with_one_line_naming_the_claim(tmp_path, yaml_text, problem):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ClaimsError, match=problem) as err:
        load_claims(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_the_ledger_declares_every_claim_and_is_not_tested_without_results(tmp_path):
    claims = load_claims(ROOT / "conf" / "claims.yaml")
    ids = {c["id"] for c in claims}
    assert len(claims) >= 16
    assert {
        "reg_gap", "reg_curbs_overfitting", "l1_sparsity", "early_stopping_test_loss",
        "adagrad_decays", "adam_default_modern", "schedulefree_matches_schedule",
        "muon_beats_adamw", "high_lr_diverges", "second_order_iterations",
        "second_order_step_time", "second_order_memory_at_scale",
    } <= ids  # fmt: skip
    assert all(c["margin_reason"] and c["margin"] > 0 for c in claims)
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
        "     reference: none, variant: dropout, metric: test_acc, expect: higher, unit: pp,\n"
        "     margin: 0.5, margin_reason: resolution}\n"
    )
    result = evaluate_claims(claims, tables_dir)
    assert result.loc[0, "verdict"] == "supported"
    assert result.loc[0, "ablation"] == "regularization"
