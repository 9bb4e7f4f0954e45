"""Statistics over seeds: t-intervals, paired differences, Holm correction, verdicts.

Every comparison in the study is between a handful of seeds, so intervals use Student's t (not a
normal approximation) and differences between variants are paired by seed: the same seed shares
the data split, the initialization and the batch order, which removes most of the seed-to-seed
variance from the difference.

Non-finite values (NaN from a diverged run's loss, or a missing run) are dropped before any
computation; the returned ``n`` says how many values were actually used.
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


def paired_diff(a, b, level: float = 0.95) -> PairedDiff:
    """Mean of ``a - b`` over pairs, its t-interval and the paired t-test p-value.

    ``a`` and ``b`` are either pandas Series indexed by seed (aligned on the index, so a seed
    missing from either side is simply not a pair) or equal-length sequences in seed order.
    Pairs where either value is non-finite are dropped.

    When all differences are identical (a deterministic quantity, e.g. epochs run without early
    stopping) the t statistic is undefined; the interval is then the single value and p is 1
    for a zero difference and 0 otherwise.
    """
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        a, b = a.align(b, join="inner")
    a = np.asarray(pd.to_numeric(pd.Series(list(a), dtype=object), errors="coerce"), float)
    b = np.asarray(pd.to_numeric(pd.Series(list(b), dtype=object), errors="coerce"), float)
    if a.shape != b.shape:
        raise ValueError(f"paired_diff needs equal lengths, got {len(a)} and {len(b)}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = len(d)
    if n == 0:
        return PairedDiff(NAN, NAN, NAN, NAN, 0)
    mean = float(d.mean())
    if n == 1:
        return PairedDiff(mean, NAN, NAN, NAN, 1)
    std = float(d.std(ddof=1))
    if std == 0.0:
        return PairedDiff(mean, mean, mean, 1.0 if mean == 0.0 else 0.0, n)
    ci = mean_ci(d, level)
    p = float(sps.ttest_rel(a[keep], b[keep]).pvalue)
    return PairedDiff(mean, ci.lo, ci.hi, p, n)


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


def verdict(
    lo: float,
    hi: float,
    higher_is_better: bool,
    p_adjusted: float | None = None,
    alpha: float = 0.05,
) -> str:
    """'better', 'worse' or 'inconclusive' for a difference (variant − baseline) with CI [lo, hi].

    An interval that contains 0, or is unknown (NaN), is inconclusive. With ``p_adjusted`` (the
    Holm-adjusted p-value of the comparison), an interval that excludes 0 but whose adjusted p is
    not below ``alpha`` is inconclusive too: with many variants, some unadjusted intervals exclude
    0 by chance.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0.0 <= hi:
        return "inconclusive"
    if p_adjusted is not None and not (math.isfinite(p_adjusted) and p_adjusted < alpha):
        return "inconclusive"
    up = lo > 0.0
    return "better" if up == higher_is_better else "worse"


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
