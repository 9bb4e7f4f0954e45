import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from study.analysis.power import detectable_effect, paired_power, seeds_needed
from study.analysis.stats import (
    PairedDiff,
    bootstrap_ci,
    claim_verdict,
    fmt,
    holm,
    mean_ci,
    median_range,
    paired_diff,
    permutation_p,
    proportion_ci,
    tost_paired,
    verdict,
)


def test_mean_ci_is_the_student_t_interval():
    # mean 2.5, s = sqrt(5/3) = 1.290994, t(0.975, 3) = 3.182446 → half-width 2.054260
    m = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert m.mean == pytest.approx(2.5)
    assert m.std == pytest.approx(1.290994, abs=1e-6)
    assert m.lo == pytest.approx(0.445740, abs=1e-6)
    assert m.hi == pytest.approx(4.554260, abs=1e-6)
    assert m.n == 4


def test_mean_ci_level_changes_the_quantile():
    # t(0.95, 3) = 2.353363 → half-width 2.353363 * 1.290994 / 2 = 1.519090
    m = mean_ci([1.0, 2.0, 3.0, 4.0], level=0.90)
    assert m.hi - m.mean == pytest.approx(1.519090, abs=1e-6)


def test_one_seed_has_a_mean_but_no_interval():
    m = mean_ci([0.87])
    assert m.mean == 0.87 and m.n == 1
    assert math.isnan(m.std) and math.isnan(m.lo) and math.isnan(m.hi)


def test_non_finite_values_are_dropped_and_not_counted():
    m = mean_ci([1.0, float("nan"), 3.0, float("inf"), None])
    assert (m.mean, m.n) == (2.0, 2)
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([]).mean)


def test_paired_diff_matches_hand_computation_and_scipy():
    a = [0.90, 0.92, 0.88]
    b = [0.85, 0.90, 0.86]
    # differences 0.05, 0.02, 0.02: mean 0.03, s = 0.017321, se = 0.01, t = 3 with 2 df;
    # two-sided p for 2 df is 1 - t / sqrt(t² + 2) = 0.095466; t(0.975, 2) = 4.302653
    d = paired_diff(a, b)
    assert d.diff == pytest.approx(0.03)
    assert d.lo == pytest.approx(0.03 - 0.04302653, abs=1e-7)
    assert d.hi == pytest.approx(0.03 + 0.04302653, abs=1e-7)
    assert d.p == pytest.approx(0.095466, abs=1e-6)
    assert d.p == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert d.n == 3


def test_paired_diff_pairs_series_by_seed():
    a = pd.Series({0: 0.9, 1: 0.8, 2: 0.7})
    b = pd.Series({2: 0.5, 1: 0.7, 5: 0.0})  # seed 0 and 5 have no partner
    d = paired_diff(a, b)
    assert d.n == 2
    assert d.diff == pytest.approx(((0.8 - 0.7) + (0.7 - 0.5)) / 2)


def test_paired_diff_drops_pairs_with_a_non_finite_side():
    d = paired_diff([1.0, np.nan, 3.0, 4.0], [0.5, 1.0, np.inf, 3.0])
    assert d.n == 2 and d.diff == pytest.approx(0.75)


def test_paired_diff_of_a_constant_difference_is_exact():
    # the difference is exactly 1 for these seeds, but its spread is unknown: the p-value is the
    # exact sign-flip one, 2 of 8 sign patterns reach |sum| = 3
    d = paired_diff([10, 12, 15], [9, 11, 14])
    assert (d.diff, d.lo, d.hi, d.p, d.n, d.sd) == (1.0, 1.0, 1.0, 0.25, 3, 0.0)
    same = paired_diff([3, 4], [3, 4])
    assert (same.diff, same.p) == (0.0, 1.0)


def test_paired_diff_with_one_pair_has_no_interval_or_p():
    d = paired_diff([0.9], [0.8])
    assert d.diff == pytest.approx(0.1) and d.n == 1
    assert math.isnan(d.lo) and math.isnan(d.p)


def test_holm_worked_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_is_monotone_capped_and_nan_safe():
    np.testing.assert_allclose(holm([0.04, 0.045]), [0.08, 0.08])
    np.testing.assert_allclose(holm([0.6, 0.9]), [1.0, 1.0])
    # NaN is not a hypothesis: two p-values remain, so the factor is 2, not 3
    np.testing.assert_allclose(holm([0.01, np.nan, 0.02]), [0.02, np.nan, 0.02])
    assert holm([]).shape == (0,)


def test_verdict_needs_the_interval_to_exclude_zero():
    assert verdict(0.01, 0.03, higher_is_better=True) == "better"
    assert verdict(0.01, 0.03, higher_is_better=False) == "worse"
    assert verdict(-0.03, -0.01, higher_is_better=True) == "worse"
    assert verdict(-0.03, -0.01, higher_is_better=False) == "better"
    assert verdict(-0.01, 0.03, higher_is_better=True) == "inconclusive"
    assert verdict(0.0, 0.03, higher_is_better=True) == "inconclusive"
    assert verdict(float("nan"), float("nan"), higher_is_better=True) == "inconclusive"


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.87, "0.870"),
        (-0.012345, "-0.0123"),
        (12, "12.0"),
        (100, "100"),
        (1234.5, "1235"),
        (1.234e-5, "1.23e-05"),
        (2.5e7, "2.50e+07"),
        (0, "0"),
        (float("nan"), "n/a"),
        (None, "n/a"),
        (float("inf"), "inf"),
    ],
)
def test_fmt_gives_three_significant_digits(x, text):
    assert fmt(x) == text


def test_fmt_digits():
    assert fmt(0.031234, 2) == "0.031"


def test_verdict_needs_the_holm_adjusted_p_below_alpha():
    # The unadjusted interval excludes 0, but after Holm correction the evidence is not enough.
    assert verdict(0.01, 0.03, True) == "better"
    assert verdict(0.01, 0.03, True, p_adjusted=0.2) == "inconclusive"
    assert verdict(0.01, 0.03, True, p_adjusted=0.01) == "better"
    assert verdict(-0.03, -0.01, True, p_adjusted=0.01) == "worse"
    assert verdict(-0.03, 0.01, True, p_adjusted=0.001) == "inconclusive"


# ----------------------------------------------------------------------------- near-zero spread


def test_differences_equal_up_to_rounding_are_no_difference():
    # 0.1 + 0.2 != 0.3 in float64: every difference is a residue of 5.6e-17, identical across
    # seeds, which a t-test reads as an infinitely certain effect
    d = paired_diff([0.1 + 0.2] * 3, [0.3] * 3)
    assert (d.diff, d.lo, d.hi, d.p, d.sd) == (0.0, 0.0, 0.0, 1.0, 0.0)
    assert verdict(d.lo, d.hi, True, d.p) == "inconclusive"
    assert claim_verdict(d, d.p, margin=0.01, direction="higher") != "supported"
    mixed = paired_diff([0.1 + 0.2, 0.7 + 0.1, 0.4 + 0.2], [0.3, 0.8, 0.6])
    assert (mixed.diff, mixed.p) == (0.0, 1.0)


def test_a_constant_difference_perturbed_by_rounding_is_not_overwhelming_evidence():
    # differences 1.0, 0.9999999999999998, 1.0: ttest_rel gives p ~ 8e-33
    a, b = [1.3, 2.3, 3.3], [0.3, 1.3, 2.3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy: "catastrophic cancellation"
        assert sps.ttest_rel(a, b).pvalue < 1e-30
    d = paired_diff(a, b)
    assert d.diff == pytest.approx(1.0) and d.sd == 0.0
    assert d.p == 0.25  # sign-flip: the best 3 seeds can do
    assert d.lo == pytest.approx(1.0, abs=1e-15) and d.hi == pytest.approx(1.0, abs=1e-15)
    assert claim_verdict(d, d.p, margin=0.5, direction="higher") == "inconclusive"
    # with 6 seeds the same constant is significant: 2 / 64 = 0.03125
    d6 = paired_diff([1.3, 2.3, 3.3, 4.3, 5.3, 6.3], [0.3, 1.3, 2.3, 3.3, 4.3, 5.3])
    assert d6.p == pytest.approx(2 / 64)
    assert claim_verdict(d6, d6.p, margin=0.5, direction="higher") == "supported"


def test_the_rounding_tolerance_is_relative_to_the_values_compared():
    # a spread of 1e-6 on values of size 1 is a real (if tiny) spread: the t-test applies
    d = paired_diff([1.0, 1.0, 1.0], [1.0, 1.0 - 1e-6, 1.0 + 1e-6])
    assert d.sd == pytest.approx(1e-6) and d.p == pytest.approx(1.0)
    # differences of 1e-12 between values of size 1e-3 are not rounding (1e-9 relative)
    small = paired_diff([1e-3 + 1e-12, 1e-3 + 2e-12, 1e-3 + 3e-12], [1e-3] * 3)
    assert small.sd > 0 and small.diff == pytest.approx(2e-12, rel=1e-3)


# ----------------------------------------------------------------------------- equivalence (TOST)


@pytest.mark.parametrize(("n", "shift", "margin"), [(3, 0.0, 0.5), (5, 0.2, 0.3), (12, -0.1, 0.2)])
def test_tost_paired_matches_statsmodels(n, shift, margin):
    weightstats = pytest.importorskip("statsmodels.stats.weightstats")
    rng = np.random.default_rng(n)
    for _ in range(5):
        b = rng.normal(0.8, 0.05, n)
        a = b + shift + rng.normal(0, 0.2, n)
        p, lo, hi = tost_paired(a, b, margin)
        expected = weightstats.ttost_paired(a, b, -margin, margin)[0]
        assert p == pytest.approx(expected, abs=1e-10)
        # the 90% interval (alpha = 0.05 on each side) is the TOST decision
        ci90 = mean_ci(a - b, level=0.90)
        assert (lo, hi) == pytest.approx((ci90.lo, ci90.hi), abs=1e-12)
        assert (p < 0.05) == (-margin < lo and hi < margin)


def test_tost_of_constant_differences_is_the_exact_sign_flip_test():
    # 5 seeds, constant 0.1 inside the margin 0.2: each one-sided test has p 1/32
    assert tost_paired([1.1, 2.1, 3.1, 4.1, 5.1], [1, 2, 3, 4, 5], 0.2)[0] == pytest.approx(1 / 32)
    assert tost_paired([1.5, 2.5, 3.5], [1, 2, 3], 0.2)[0] == 1.0
    assert np.isnan(tost_paired([1.0], [0.5], 0.2)[0])


# ----------------------------------------------------------------------------- claim verdicts


def test_claim_verdict_planted_effects():
    rng = np.random.default_rng(0)
    base = rng.normal(0.80, 0.02, 10)
    # the variant is truly 0.05 worse while the claim says it is higher
    worse = paired_diff(base - 0.05 + rng.normal(0, 0.005, 10), base)
    assert claim_verdict(worse, worse.p, margin=0.01, direction="higher") == "contradicted"
    assert claim_verdict(worse, worse.p, margin=0.01, direction="lower") == "supported"
    # a tight interval well inside the margin
    same = paired_diff(base + rng.normal(0, 0.002, 10), base)
    assert same.hi - same.lo < 0.01
    assert claim_verdict(same, same.p, margin=0.01, direction="higher") == "no meaningful effect"
    # 3 noisy seeds: neither an effect nor its absence can be shown
    noisy = paired_diff(base[:3] + 0.01 + rng.normal(0, 0.03, 3), base[:3])
    assert claim_verdict(noisy, noisy.p, margin=0.01, direction="higher") == "inconclusive"


def test_equivalence_takes_precedence_over_a_significant_but_negligible_effect():
    # differences around +0.004 with a tiny spread: significant, but the whole 90% interval is
    # inside the margin 0.01, so the effect is real and too small to matter
    d = paired_diff([0.804, 0.9041, 0.7039, 0.604], [0.8, 0.9, 0.7, 0.6])
    assert d.lo > 0 and d.p < 0.01
    assert claim_verdict(d, d.p, margin=0.01, direction="higher") == "no meaningful effect"
    # the same significant effect against a smaller margin is not shown negligible: supported
    assert claim_verdict(d, d.p, margin=0.004, direction="higher") == "supported"


def test_claim_verdict_needs_the_adjusted_p():
    d = PairedDiff(0.03, 0.01, 0.05, 0.01, 5, 0.0161)
    assert claim_verdict(d, 0.01, margin=0.005, direction="higher") == "supported"
    assert claim_verdict(d, 0.2, margin=0.005, direction="higher") == "inconclusive"
    assert claim_verdict(d, float("nan"), margin=0.005, direction="higher") == "inconclusive"
    # None: a single comparison, its own p decides
    assert claim_verdict(d, None, margin=0.005, direction="lower") == "contradicted"


def test_claim_verdict_recovers_the_spread_from_a_table_row():
    d = paired_diff([0.804, 0.9043, 0.7038, 0.6041, 0.5], [0.8, 0.9, 0.7, 0.6, 0.497])
    row = d[:5]  # diff, lo, hi, p, n as the tables store them, without sd

    class Row:
        diff, lo, hi, p, n = row

    for margin in (0.003, 0.004, 0.006, 0.01):
        assert claim_verdict(Row, d.p, margin, "higher") == claim_verdict(d, d.p, margin, "higher")


def test_claim_verdict_rejects_bad_declarations():
    d = paired_diff([1.0, 2.0, 3.5], [0.5, 1.8, 3.0])
    with pytest.raises(ValueError, match="'higher' or 'lower'"):
        claim_verdict(d, d.p, 0.1, "up")
    with pytest.raises(ValueError, match="margin"):
        claim_verdict(d, d.p, 0.0, "higher")


# ----------------------------------------------------------------------------- power


@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("n", [2, 3, 5, 10, 30])
def test_detectable_effect_matches_statsmodels(n, two_sided):
    power = pytest.importorskip("statsmodels.stats.power")
    alternative = "two-sided" if two_sided else "larger"
    effect = detectable_effect(n, 1.0, two_sided=two_sided)
    # at the effect found, the independent power formula gives exactly the target power; tail by
    # tail, since its wrong-side tail underflows to NaN with 2 pairs (a mass below 1e-10)
    tails = (
        [power.ttest_power(effect, n, 0.025, alternative=a) for a in ("larger", "smaller")]
        if two_sided
        else [power.ttest_power(effect, n, 0.05, alternative="larger")]
    )
    assert sum(np.nan_to_num(tails)) == pytest.approx(0.8, abs=1e-10)
    expected = power.TTestPower().solve_power(
        nobs=n, alpha=0.05, power=0.8, alternative=alternative
    )
    # statsmodels' root finder stops short of the root (its power at its answer is off by up to
    # 3e-6 for n >= 10, where ours is exact to 1e-10 above), hence the looser tolerance there
    assert effect == pytest.approx(expected, rel=1e-6 if n <= 5 else 5e-6)
    assert detectable_effect(n, 0.02, two_sided=two_sided) == pytest.approx(0.02 * effect)


def test_what_three_seeds_can_detect():
    # 3 seeds find only an effect of 3.26 sd of the difference 80% of the time
    assert detectable_effect(3, 1.0) == pytest.approx(3.2640, abs=1e-4)
    assert math.isnan(detectable_effect(1, 1.0)) and math.isnan(detectable_effect(3, np.nan))
    assert paired_power(0.0, 1.0, 3) == pytest.approx(0.05)


def test_seeds_needed_is_consistent_with_detectable_effect():
    sd = 0.013
    for n in range(2, 25):
        effect = detectable_effect(n, sd)
        assert seeds_needed(effect, sd) == n
        assert seeds_needed(effect * 0.999, sd) == n + 1
        assert seeds_needed(-effect, sd) == n
    assert seeds_needed(0.5, 1.0) == 34
    assert seeds_needed(0.01, 1.0) is None  # beyond 50 seeds
    assert seeds_needed(0.0, 1.0) is None


# ----------------------------------------------------------------------------- exact tools


def test_permutation_p_by_hand():
    # sign patterns of (1, -2, 4): sums ±1 ±2 ±4 = 7, 5, 3, 1, -1, -3, -5, -7; observed 3
    assert permutation_p([1, -2, 4]) == 6 / 8  # |sum| >= 3: 7, 5, 3, -3, -5, -7
    assert permutation_p([1, -2, 4], "greater") == 3 / 8  # 7, 5, 3
    assert permutation_p([1, -2, 4], "less") == 6 / 8
    assert permutation_p([2.0, 2.0, 2.0]) == 2 / 8
    assert permutation_p([0.0, 0.0]) == 1.0
    assert math.isnan(permutation_p([]))


def test_permutation_p_samples_beyond_twelve_pairs():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, 13)
    signs = np.array([[1 if (i >> j) & 1 else -1 for j in range(13)] for i in range(2**13)])
    exact = float(np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12))
    assert permutation_p(d) == pytest.approx(exact, abs=0.005)
    assert permutation_p(d) == permutation_p(d)  # fixed seed


@pytest.mark.parametrize(("k", "n"), [(0, 5), (1, 3), (3, 3), (7, 20), (50, 100)])
def test_proportion_ci_is_clopper_pearson(k, n):
    expected = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
    got = proportion_ci(k, n)
    assert got.estimate == k / n and got.n == n
    assert (got.lo, got.hi) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_proportion_ci_rejects_impossible_counts():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        proportion_ci(4, 3)
    assert math.isnan(proportion_ci(0, 0).estimate)


def test_median_range_keeps_integer_metrics_possible():
    # best epochs 2, 3, 19: a t-interval is [-6.0, 22.7], impossible for an epoch
    assert mean_ci([2, 3, 19]).lo < 0
    assert tuple(median_range([2, 3, 19, np.nan])) == (3.0, 2.0, 19.0, 3)


def test_bootstrap_ci_is_reproducible_and_stays_in_the_data():
    values = [0.81, 0.84, 0.80, 0.86, 0.83]
    ci = bootstrap_ci(values)
    assert ci == bootstrap_ci(values)
    assert ci.estimate == pytest.approx(0.828)
    assert 0.80 <= ci.lo < 0.828 < ci.hi <= 0.86
    continuous = np.random.default_rng(0).normal(0.8, 0.02, 8)
    assert bootstrap_ci(continuous, seed=1) != bootstrap_ci(continuous, seed=0)
    med = bootstrap_ci([2, 3, 19], stat=np.median)
    assert (med.estimate, med.lo, med.hi) == (3.0, 2.0, 19.0)
    assert math.isnan(bootstrap_ci([0.8]).lo)


def test_holm_over_a_ledger_with_untested_claims():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.array([0.001, np.nan, 0.04, 0.2, np.nan, 0.012, 0.03])
    adjusted = holm(p)
    finite = np.isfinite(p)
    expected = multitest.multipletests(p[finite], method="holm")[1]
    np.testing.assert_allclose(adjusted[finite], expected)
    assert np.isnan(adjusted[~finite]).all()
    assert adjusted[0] == pytest.approx(0.005)  # m = 5 tested claims, not 7
