"""Special checks on runs the study already has, and the interaction check, on planted tables:
each is supported by a planted effect and fails on a planted counter-example."""

import math
from pathlib import Path

import pandas as pd
import pytest

from study.analysis.ledger.evaluate import ClaimTables, evaluate


def tables(runs=None, history=None, tuning=None, shift=None):
    empty = pd.DataFrame(columns=["ablation", "variant", "seed"])
    return ClaimTables(
        runs if runs is not None else empty,
        history if history is not None else empty,
        shift if shift is not None else empty,
        tuning,
        Path("/nonexistent"),
    )


def one(claim, t):
    claim = {"id": "c", "claim": "A claim.", "margin_reason": "planted", **claim}
    return evaluate([claim], t).iloc[0]


def runs(ablation, data):
    """{variant: {metric: [value per seed]}} as runs.csv rows."""
    rows = []
    for variant, metrics in data.items():
        for seed in range(len(next(iter(metrics.values())))):
            row = {"ablation": ablation, "variant": variant, "seed": seed, "status": "ok"}
            rows.append(row | {m: v[seed] for m, v in metrics.items()})
    return pd.DataFrame(rows)


RATIO = {
    "kind": "special",
    "check": "run_ratio",
    "ablation": "regularization",
    "reference": "none",
    "variant": "l2",
    "metric": "weight_norm",
    "unit": "x",
    "expect": "lower",
    "margin": 1.1,
}


def test_a_run_ratio_is_judged_on_the_log_scale_and_shown_as_a_ratio():
    half = runs(
        "regularization",
        {
            "none": {"weight_norm": [10.0, 11.0, 12.0, 10.5]},
            "l2": {"weight_norm": [5.0, 5.6, 5.9, 5.3]},
        },
    )
    row = one(RATIO, tables(half))
    assert row.effect == pytest.approx(0.5, rel=0.03) and row.lo < row.effect < row.hi < 1
    assert row.verdict == "supported"
    grown = runs(
        "regularization",
        {
            "none": {"weight_norm": [5.0, 5.6, 5.9, 5.3]},
            "l2": {"weight_norm": [10.0, 11.0, 12.0, 10.5]},
        },
    )
    assert one(RATIO, tables(grown)).verdict == "contradicted"


def test_an_equivalent_ratio_is_a_tost_within_the_ratio_margin():
    claim = {
        **RATIO,
        "ablation": "normalization",
        "reference": "none",
        "variant": "batchnorm",
        "metric": "eval_s",
        "test": "equivalence",
        "margin": 1.25,
    }
    same = runs(
        "normalization",
        {
            "none": {"eval_s": [1.0, 1.1, 0.9, 1.0]},
            "batchnorm": {"eval_s": [1.02, 1.08, 0.93, 1.01]},
        },
    )
    assert one(claim, tables(same)).verdict == "supported"
    slower = runs(
        "normalization",
        {"none": {"eval_s": [1.0, 1.1, 0.9, 1.0]}, "batchnorm": {"eval_s": [2.0, 2.3, 1.8, 2.1]}},
    )
    assert one(claim, tables(slower)).verdict == "contradicted"


def tuning(norms):
    """{variant: (key, [(strength, weight_norm), ...])} as tuning.csv rows, one seed."""
    rows = []
    for variant, (key, grid) in norms.items():
        for level, (strength, norm) in enumerate(grid):
            rows.append(
                {
                    "ablation": "regularization",
                    "variant": variant,
                    "level": str(level),
                    "seed": 1000,
                    "status": "ok",
                    f"config.{key}": strength,
                    "weight_norm": norm,
                }
            )
    return pd.DataFrame(rows)


SHRINK = {
    "kind": "special",
    "check": "penalty_shrinks_weights",
    "ablation": "regularization",
    "strengths": {"l2": "regularization.l2", "l1": "regularization.l1"},
    "unit": "x",
    "expect": "lower",
    "margin": 1.1,
}


def test_a_stronger_penalty_shrinks_the_weights_across_the_tuning_grid():
    shrinking = tuning(
        {
            "l2": ("regularization.l2", [(5e-3, 4.0), (5e-5, 16.0), (5e-4, 8.1)]),
            "l1": ("regularization.l1", [(2e-6, 15.0), (2e-5, 7.0), (2e-4, 3.6)]),
        }
    )
    row = one(SHRINK, tables(tuning=shrinking))
    # neighbouring ratios 8.1/16, 4/8.1, 7/15, 3.6/7: about one half each
    assert row.effect == pytest.approx(0.5, rel=0.05) and row.seeds == 4
    assert row.verdict == "supported"
    growing = tuning(
        {
            "l2": ("regularization.l2", [(5e-5, 4.0), (5e-4, 8.1), (5e-3, 16.0)]),
            "l1": ("regularization.l1", [(2e-6, 3.6), (2e-5, 7.0), (2e-4, 15.0)]),
        }
    )
    assert one(SHRINK, tables(tuning=growing)).verdict == "contradicted"
    assert one(SHRINK, tables()).verdict == "not tested"


def history(ablation, curves):
    """{variant: (lr per epoch, [losses per epoch, one list per seed])} as history rows."""
    rows = []
    for variant, (lrs, seeds) in curves.items():
        for seed, losses in enumerate(seeds):
            for epoch, (lr, loss) in enumerate(zip(lrs, losses, strict=True), start=1):
                rows.append(
                    {
                        "ablation": ablation,
                        "variant": variant,
                        "seed": seed,
                        "epoch": epoch,
                        "lr": lr,
                        "train_loss": loss,
                        "val_loss": loss,
                    }
                )
    return pd.DataFrame(rows)


CUTS = {
    "kind": "special",
    "check": "loss_drop_at_cuts",
    "ablation": "schedules",
    "reference": "constant",
    "variant": "piecewise",
    "metric": "train_loss",
    "unit": "loss",
    "expect": "higher",
    "margin": 0.02,
}
CONSTANT = (
    [0.1] * 6,
    [
        [1.0, 0.8, 0.7, 0.65, 0.6, 0.57],
        [1.0, 0.82, 0.71, 0.66, 0.62, 0.58],
        [1.0, 0.79, 0.69, 0.64, 0.61, 0.56],
    ],
)
STEPS = [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]  # cuts at epochs 3 and 5


def test_the_loss_falls_at_each_cut_more_than_under_a_constant_rate():
    sharp = [
        [1.0, 0.8, 0.5, 0.45, 0.3, 0.29],
        [1.0, 0.82, 0.55, 0.5, 0.33, 0.31],
        [1.0, 0.79, 0.5, 0.46, 0.31, 0.3],
    ]
    row = one(
        CUTS,
        tables(history=history("schedules", {"constant": CONSTANT, "piecewise": (STEPS, sharp)})),
    )
    # falls at epochs 3 and 5: (0.30 + 0.15) / 2 against (0.10 + 0.05) / 2 for seed 0
    assert row.effect == pytest.approx(0.15, abs=0.02) and row.verdict == "supported"
    assert "epochs 3, 5" in row.detail
    flat = [
        [1.0, 0.8, 0.75, 0.7, 0.69, 0.68],
        [1.0, 0.82, 0.77, 0.72, 0.7, 0.69],
        [1.0, 0.79, 0.74, 0.7, 0.68, 0.67],
    ]
    row = one(
        CUTS,
        tables(history=history("schedules", {"constant": CONSTANT, "piecewise": (STEPS, flat)})),
    )
    assert row.verdict == "contradicted"


def test_a_schedule_without_a_cut_is_not_tested():
    row = one(
        CUTS, tables(history=history("schedules", {"constant": CONSTANT, "piecewise": CONSTANT}))
    )
    assert row.verdict == "not tested" and "never cut" in row.detail


JITTER = {
    "kind": "special",
    "check": "first_rise_before_minimum",
    "ablation": "regularization",
    "variant": "constant_lr",
    "metric": "val_loss",
    "unit": "epochs",
    "expect": "higher",
    "margin": 1,
}


def test_a_jittery_validation_loss_rises_before_its_minimum():
    jittery = [
        [1.0, 0.9, 0.95, 0.8, 0.85, 0.75, 0.9],
        [1.0, 0.85, 0.9, 0.8, 0.7, 0.75, 0.8],
        [0.9, 0.92, 0.8, 0.7, 0.72, 0.65, 0.7],
        [1.0, 0.8, 0.85, 0.7, 0.72, 0.6, 0.7],
        [1.0, 0.9, 0.91, 0.85, 0.8, 0.82, 0.9],
        [1.0, 0.7, 0.75, 0.6, 0.65, 0.55, 0.6],
    ]
    row = one(
        JITTER, tables(history=history("regularization", {"constant_lr": ([0.1] * 7, jittery)}))
    )
    # minimum minus the epoch before the first rise: 6-2, 5-2, 6-1, 6-2, 5-2, 6-2
    assert row.effect == 4 and row.verdict == "supported"
    smooth = [[1.0, 0.8, 0.7, 0.75, 0.8, 0.85, 0.9]] * 6
    row = one(
        JITTER, tables(history=history("regularization", {"constant_lr": ([0.1] * 7, smooth)}))
    )
    assert row.effect == 0 and row.verdict != "supported"


INTERACTION = {
    "kind": "special",
    "check": "effect_difference",
    "ablation": "overfitting",
    "metric": "test_acc",
    "small": {"reference": "n2500", "variant": "augmentation_n2500"},
    "large": {"reference": "base", "variant": "augmentation"},
    "unit": "pp",
    "expect": "higher",
    "margin": 0.5,
}


def test_an_interaction_is_a_difference_of_paired_differences():
    table = runs(
        "overfitting",
        {
            "base": {"test_acc": [0.870, 0.872, 0.868]},
            "augmentation": {"test_acc": [0.875, 0.876, 0.874]},  # +0.5, +0.4, +0.6 pp
            "n2500": {"test_acc": [0.820, 0.815, 0.825]},
            "augmentation_n2500": {"test_acc": [0.845, 0.842, 0.849]},  # +2.5, +2.7, +2.4 pp
        },
    )
    row = one(INTERACTION, tables(table))
    # per seed 2.5 - 0.5, 2.7 - 0.4, 2.4 - 0.6
    assert row.effect == pytest.approx((2.0 + 2.3 + 1.8) / 3) and row.verdict == "supported"
    swapped = {**INTERACTION, "small": INTERACTION["large"], "large": INTERACTION["small"]}
    assert one(swapped, tables(table)).verdict == "contradicted"
    missing = table[table["variant"] != "augmentation_n2500"]
    row = one(INTERACTION, tables(missing))
    assert row.verdict == "not tested" and math.isnan(row.effect)


STALE = {
    "kind": "special",
    "check": "adaptation_gain",
    "ablation": "normalization",
    "variant": "batchnorm",
    "metric": "accuracy",
    "where_not": {"shift": ["clean", "prior"], "severity": 0},
    "unit": "pp",
    "expect": "higher",
    "margin": 0.5,
}


def shift_rows(gains):
    """Per seed, the adapted accuracy's gain over the stored one on a corrupted slice; the clean
    rows gain nothing and a severity-0 row gains a lot, both of which the claim leaves out."""
    rows = []
    for seed, gain in enumerate(gains):
        for shift, severity, stored, up in [
            ("clean", 0, 0.87, 0.0),
            ("gaussian_noise", 0, 0.87, 0.2),
            ("gaussian_noise", 3, 0.60, gain),
            ("brightness", 3, 0.70, gain),
        ]:
            for adapted, acc in [(False, stored), (True, stored + up)]:
                rows.append(
                    {"ablation": "normalization", "variant": "batchnorm", "seed": seed,
                     "shift": shift, "severity": severity, "adapted": adapted, "slice": "all",
                     "accuracy": acc, "loss": 1.0 - acc}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_re_estimated_statistics_gain_under_shift_when_the_stored_ones_are_stale():
    bn = runs("normalization", {"batchnorm": {"test_acc": [0.87, 0.87, 0.87, 0.87]}})
    row = one(STALE, tables(bn, shift=shift_rows([0.05, 0.06, 0.04, 0.05])))
    assert row.effect == pytest.approx(5.0) and row.verdict == "supported"
    row = one(STALE, tables(bn, shift=shift_rows([-0.05, -0.06, -0.04, -0.05])))
    assert row.verdict == "contradicted"
    assert one(STALE, tables(bn)).verdict == "not tested"


LOW_RATE = {
    "kind": "special",
    "check": "lowest_rate_slower",
    "ablation": "optimizers",
    "metric": "train_loss",
    "unit": "loss",
    "expect": "higher",
    "margin": 0.02,
}


def rate_grids(losses):
    """{optimizer: [train_loss at rates 1e-4, 1e-3, 1e-2]} as tuning rows; the top rate of each
    grid diverges, which drops it without moving the middle rate."""
    rows = []
    for variant, values in losses.items():
        for lr, loss in zip((1e-4, 1e-3, 1e-2, 1e-1), [*values, 50.0], strict=True):
            status = "diverged" if loss == 50.0 else "ok"
            rows.append({"ablation": "optimizers", "variant": variant, "level": f"lr-{lr}",
                         "seed": 1000, "status": status, "lr": lr, "train_loss": loss})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_rate_far_too_low_ends_at_a_higher_training_loss():
    slow = rate_grids(
        {"sgd": [1.2, 0.5, 0.45], "adam": [0.9, 0.4, 0.42], "momentum": [1.0, 0.45, 0.4]}
    )
    row = one(LOW_RATE, tables(tuning=slow))
    # the middle of each grid of four rates, the diverged top one included, is 1e-2
    assert row.effect == pytest.approx((0.75 + 0.48 + 0.6) / 3) and row.verdict == "supported"
    fast = rate_grids(
        {"sgd": [0.3, 0.5, 0.45], "adam": [0.18, 0.4, 0.42], "momentum": [0.28, 0.45, 0.4]}
    )
    assert one(LOW_RATE, tables(tuning=fast)).verdict == "contradicted"
