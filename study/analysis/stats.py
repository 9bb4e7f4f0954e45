"""Statistics over seeds: t-intervals, paired differences, multiplicity corrections, verdicts.

Every comparison in the study is between a handful of seeds, so intervals use Student's t (not a
normal approximation) and differences between variants are paired by seed: the same seed shares
the data split, the initialization and the batch order, which removes most of the seed-to-seed
variance from the difference.

Non-finite values (NaN from a diverged run's loss, or a missing run) are dropped before any
computation; the returned ``n`` says how many values were actually used.

Claims are judged by :func:`claim_verdict`, which can also say "no meaningful effect" (an
equivalence test against a declared margin). Where normality is doubtful or the spread is nil,
exact distribution-free tools stand beside the t-test: the sign-flip permutation test, the
Clopper-Pearson interval of a proportion, and the median with the range for integer metrics such
as the best epoch. What a number of seeds can detect at all is in :mod:`study.analysis.power`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

NAN = float("nan")


class MeanCI(NamedTuple):
    mean: float
    std: float
    lo: float
    hi: float
    n: int


class PairedDiff(NamedTuple):
    diff: float
    lo: float
    hi: float
    p: float
    n: int
    # sample standard deviation of the differences: 0.0 when they are constant up to rounding
    # (see ROUNDING), NaN with fewer than two pairs
    sd: float = NAN


class Interval(NamedTuple):
    """A point estimate with an interval that respects the metric, and the values it used."""

    estimate: float
    lo: float
    hi: float
    n: int


# Relative spread below which paired differences count as constant. Two float64 metrics computed
# from the same predictions by different code paths differ by a few units in the last place
# (~1e-16 of their size); summing over even a million examples accumulates at most ~1e-10. A real
# difference between training variants is at least one test example out of the test set, i.e.
# >= 1e-6 of an accuracy for any test set below a million examples. 1e-9 lies between both with
# margin. The scale is the size of the values compared, not of their difference: the difference
# is what may be a pure rounding residue, so it cannot be its own yardstick.
ROUNDING = 1e-9

# Above this many pairs the sign-flip test samples patterns instead of enumerating 2^n of them.
EXACT_PERMUTATION_MAX_N = 12


def _finite(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), float)
    return arr[np.isfinite(arr)]


def mean_ci(values: Iterable[float], level: float = 0.95) -> MeanCI:
    """Mean, sample standard deviation and the two-sided t-interval of the mean.

    With one value the spread is unknown, so std and the interval are NaN rather than a
    zero-width interval that would look like certainty.
    """
    x = _finite(values)
    n = len(x)
    if n == 0:
        return MeanCI(NAN, NAN, NAN, NAN, 0)
    mean = float(x.mean())
    if n == 1:
        return MeanCI(mean, NAN, NAN, NAN, 1)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return MeanCI(mean, std, mean - half, mean + half, n)


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as float arrays, paired by seed (Series) or by position, finite pairs only."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        a, b = a.align(b, join="inner")
    a = np.asarray(pd.to_numeric(pd.Series(list(a), dtype=object), errors="coerce"), float)
    b = np.asarray(pd.to_numeric(pd.Series(list(b), dtype=object), errors="coerce"), float)
    if a.shape != b.shape:
        raise ValueError(f"paired_diff needs equal lengths, got {len(a)} and {len(b)}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def paired_diff(a, b, level: float = 0.95) -> PairedDiff:
    """Mean of ``a - b`` over pairs, its t-interval and the paired t-test p-value.

    ``a`` and ``b`` are either pandas Series indexed by seed (aligned on the index, so a seed
    missing from either side is simply not a pair) or equal-length sequences in seed order.
    Pairs where either value is non-finite are dropped.

    Differences whose range is within ROUNDING of the size of the values compared are constant:
    the t statistic is then 0/0 (or a rounding residue divided by another, p ~ 1e-31). A constant
    that is itself at rounding level is no difference at all: diff 0, interval [0, 0], p 1. A
    real constant (e.g. an integer metric that moved by the same amount for every seed) is exact
    for these seeds, but the seeds say nothing about its spread, so instead of an infinitely
    confident t-test it gets the exact sign-flip test (p = 2^(1-n), the strongest evidence n
    pairs can give without assuming a distribution: 0.25 for 3 seeds) and the observed range as
    its interval; ``sd`` is then 0.0.
    """
    a, b = _pairs(a, b)
    d = a - b
    n = len(d)
    if n == 0:
        return PairedDiff(NAN, NAN, NAN, NAN, 0)
    mean = float(d.mean())
    if n == 1:
        return PairedDiff(mean, NAN, NAN, NAN, 1)
    tol = ROUNDING * float(np.max(np.maximum(np.abs(a), np.abs(b))))
    if float(np.ptp(d)) <= tol:
        if abs(mean) <= tol:
            return PairedDiff(0.0, 0.0, 0.0, 1.0, n, 0.0)
        p = permutation_p(np.full(n, mean))
        return PairedDiff(mean, float(d.min()), float(d.max()), p, n, 0.0)
    ci = mean_ci(d, level)
    p = float(sps.ttest_rel(a, b).pvalue)
    return PairedDiff(mean, ci.lo, ci.hi, p, n, ci.std)


def permutation_p(diffs: Iterable[float], alternative: str = "two-sided") -> float:
    """Sign-flip permutation p-value of the mean paired difference (null: symmetric about 0).

    Under the null each difference is as likely to have come out with the opposite sign, so the
    observed sum is ranked among the sums of all 2^n sign patterns (itself included): exact for
    n <= EXACT_PERMUTATION_MAX_N, else 100,000 random patterns with a fixed seed and the
    (count + 1) / (draws + 1) estimate. ``alternative`` is 'two-sided', 'greater' (mean > 0) or
    'less'. Needs no normality, but its smallest p is 2^(1-n) two-sided: 0.25 with 3 seeds.
    """
    d = _finite(diffs)
    n = len(d)
    if n == 0:
        return NAN
    if n <= EXACT_PERMUTATION_MAX_N:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        exact = True
    else:
        rng = np.random.default_rng(0)
        signs = rng.choice([-1, 1], size=(100_000, n))
        exact = False
    sums = signs @ d
    observed = float(d.sum())
    # sums equal to the observed one up to rounding count as ties (e.g. 0.1 + 0.2 vs 0.3)
    tie = 1e-12 * float(np.abs(d).sum())
    if alternative == "two-sided":
        count = int((np.abs(sums) >= abs(observed) - tie).sum())
    elif alternative == "greater":
        count = int((sums >= observed - tie).sum())
    elif alternative == "less":
        count = int((sums <= observed + tie).sum())
    else:
        raise ValueError(f"alternative must be two-sided, greater or less, not {alternative!r}")
    return count / len(sums) if exact else (count + 1) / (len(sums) + 1)


def _tost(diff: float, sd: float, n: int, margin: float, alpha: float):
    """TOST p-value and the (1 - 2 alpha) interval from a paired difference's summary."""
    if n < 2 or not (math.isfinite(diff) and math.isfinite(sd)):
        return NAN, NAN, NAN
    if sd == 0.0:
        # constant differences (see paired_diff): each one-sided sign-flip test has p 2^-n when
        # the constant lies strictly inside the margin (every pattern but one sums lower) and 1
        # when it does not
        return (0.5**n if abs(diff) < margin else 1.0), diff, diff
    se = sd / math.sqrt(n)
    p_above_lower = float(sps.t.sf((diff + margin) / se, n - 1))
    p_below_upper = float(sps.t.cdf((diff - margin) / se, n - 1))
    half = float(sps.t.isf(alpha, n - 1)) * se
    return max(p_above_lower, p_below_upper), diff - half, diff + half


def tost_paired(a, b, margin: float, alpha: float = 0.05) -> tuple[float, float, float]:
    """Equivalence of paired ``a`` and ``b`` within ±``margin``: two one-sided t-tests (TOST).

    Tests mean(a - b) > -margin and mean(a - b) < +margin; the p-value is the larger of the two,
    so p < alpha exactly when the (1 - 2 alpha) interval, returned as (lo, hi), lies inside
    (-margin, +margin). Pairing and constant differences are as in :func:`paired_diff`.
    """
    _check_margin(margin)
    d = paired_diff(a, b)
    return _tost(d.diff, d.sd, d.n, margin, alpha)


def _check_margin(margin: float) -> None:
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"the equivalence margin must be a positive number, got {margin!r}")


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order.

    NaN p-values (comparisons that could not be made) stay NaN and do not count towards the
    number of hypotheses. The step-down adjustment is made monotone (an adjusted p never drops
    below that of a smaller raw p) and capped at 1.
    """
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, NAN)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def benjamini_hochberg(pvalues: Iterable[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false-discovery rate), in the input order.

    NaN p-values stay NaN and do not count towards the number of hypotheses. The step-up
    adjustment ``p_(i) · m / i`` is made monotone from the largest p down (an adjusted p never
    exceeds that of a larger raw p) and capped at 1. Rejecting every adjusted p below q keeps
    the expected share of false verdicts among the rejected at most q (independent or positively
    dependent tests).
    """
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, NAN)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out


def verdict(
    lo: float,
    hi: float,
    higher_is_better: bool,
    p_adjusted: float | None = None,
    alpha: float = 0.05,
) -> str:
    """'better', 'worse' or 'inconclusive' for a difference (variant − baseline) with CI [lo, hi].

    An interval that contains 0, or is unknown (NaN), is inconclusive. With ``p_adjusted`` (the
    adjusted p-value of the comparison), an interval that excludes 0 but whose adjusted p is
    not below ``alpha`` is inconclusive too: with many variants, some unadjusted intervals exclude
    0 by chance.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0.0 <= hi:
        return "inconclusive"
    if p_adjusted is not None and not (math.isfinite(p_adjusted) and p_adjusted < alpha):
        return "inconclusive"
    up = lo > 0.0
    return "better" if up == higher_is_better else "worse"


CLAIM_VERDICTS = ("supported", "contradicted", "no meaningful effect", "inconclusive")


def claim_verdict(diff, p_adjusted, margin: float, direction: str, alpha: float = 0.05) -> str:
    """One of CLAIM_VERDICTS for a claim that (variant - reference) is ``direction`` ('higher'
    or 'lower') by an effect worth having, ``margin`` being the smallest such effect.

    ``diff`` is a :class:`PairedDiff` (or anything with diff, lo, hi, n and, ideally, sd; without
    sd, the spread is recovered from a 95% t-interval [lo, hi]).

    - supported: the 95% interval excludes 0 in the claimed direction and ``p_adjusted`` (the
      adjusted p of this comparison over the ledger; None means a single comparison and uses
      ``diff.p``) is below ``alpha``;
    - contradicted: the same in the opposite direction;
    - no meaningful effect: TOST equivalence at ``alpha`` (the 90% interval within ±margin);
    - inconclusive: none of these.

    Precedence: equivalence first. An effect whose whole 90% interval lies inside the margin is
    smaller than the claim's own threshold for mattering, so it is "no meaningful effect" even
    when it is also significantly different from 0: calling it supported (or contradicted) would
    assert an effect the claim declared negligible. An effect that is significant but whose
    interval reaches beyond the margin is not shown to be negligible and stays supported or
    contradicted, whatever its point estimate.
    """
    if direction not in ("higher", "lower"):
        raise ValueError(f"a claim's direction must be 'higher' or 'lower', not {direction!r}")
    _check_margin(margin)
    sd = getattr(diff, "sd", None)
    if sd is None:
        sd = _sd_from_interval(diff.lo, diff.hi, diff.n)
    p_equivalence = _tost(diff.diff, sd, diff.n, margin, alpha)[0]
    if math.isfinite(p_equivalence) and p_equivalence < alpha:
        return "no meaningful effect"
    p = diff.p if p_adjusted is None else p_adjusted
    side = verdict(diff.lo, diff.hi, direction == "higher", p_adjusted=p, alpha=alpha)
    return {"better": "supported", "worse": "contradicted"}.get(side, "inconclusive")


def _sd_from_interval(lo: float, hi: float, n: int) -> float:
    if n < 2 or not (math.isfinite(lo) and math.isfinite(hi)):
        return NAN
    return (hi - lo) / 2 / float(sps.t.ppf(0.975, n - 1)) * math.sqrt(n)


def bootstrap_ci(values, stat=np.mean, level: float = 0.95, n_boot: int = 10_000, seed: int = 0):
    """``stat`` of the values with its percentile-bootstrap interval, as an :class:`Interval`.

    Resamples are drawn with a fixed ``seed`` so reports are reproducible. The interval never
    leaves the range of the data (unlike a t-interval on a bounded metric), but with a handful of
    seeds it is too narrow: 3 values have only 10 distinct resamples. One value has no interval.
    """
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Interval(NAN, NAN, NAN, 0)
    estimate = float(stat(x))
    if n == 1:
        return Interval(estimate, NAN, NAN, 1)
    samples = x[np.random.default_rng(seed).integers(0, n, size=(n_boot, n))]
    boot = np.apply_along_axis(stat, 1, samples)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Interval(estimate, float(lo), float(hi), n)


def median_range(values) -> Interval:
    """Median with the observed [min, max], for integer metrics such as the best epoch.

    A t-interval on such a metric invents impossible values (best epoch in [-6.01, 14.7]); the
    range does not. As an interval for the median it covers with probability 1 - 2^(1-n) (75% for
    3 seeds, 94% for 5), which is what so few seeds can honestly say.
    """
    x = _finite(values)
    if len(x) == 0:
        return Interval(NAN, NAN, NAN, 0)
    return Interval(float(np.median(x)), float(x.min()), float(x.max()), len(x))


def proportion_ci(k: int, n: int, level: float = 0.95) -> Interval:
    """k of n with the exact (Clopper-Pearson) interval of the proportion.

    Exact means it never covers less than ``level``, even at k = 0 or k = n where a normal
    approximation collapses to a zero-width interval.
    """
    if not (0 <= k <= n):
        raise ValueError(f"a proportion needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Interval(NAN, NAN, NAN, 0)
    tail = (1 - level) / 2
    lo = 0.0 if k == 0 else float(sps.beta.ppf(tail, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.isf(tail, k + 1, n - k))
    return Interval(k / n, lo, hi, n)


def fmt(x, digits: int = 3) -> str:
    """A number for the report with ``digits`` significant digits ('0.870', '-0.0123', '1.23e-05').

    Values with more integer digits than ``digits`` (below 1e6) keep their integer part
    (1234.5 -> '1235') rather than switching to scientific notation; NaN or None is 'n/a'.
    """
    if x is None:
        return "n/a"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0.0:
        return "0"
    if 10**digits <= abs(x) < 1e6:
        # round half away from zero, as readers expect (round() would give 1234.5 -> 1234)
        return str(int(math.copysign(math.floor(abs(x) + 0.5), x)))
    s = f"{x:#.{digits}g}"
    if "e" not in s:
        s = s.rstrip(".")
    return s
