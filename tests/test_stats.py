import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from study.analysis.stats import fmt, holm, mean_ci, paired_diff, verdict


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
    d = paired_diff([10, 12, 15], [9, 11, 14])
    assert (d.diff, d.lo, d.hi, d.p, d.n) == (1.0, 1.0, 1.0, 0.0, 3)
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
