"""The one verdict rule of the study: the ledger, the per-ablation tables and the key findings all
judge an effect here, so the same comparison cannot be "supported" in one place and
"inconclusive" in another (only the family of the multiplicity correction differs, and the report
says which).

Every effect is expressed in its claim's unit (:data:`UNITS`) before it is judged, so a margin
declared as "0.5 pp" is compared with an accuracy difference times 100.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from study.analysis import power
from study.analysis.stats import NAN, benjamini_hochberg, claim_verdict, holm

ALPHA = 0.05

# A claim's unit and the factor from the measured value to it: accuracies and gaps are fractions
# in runs.csv and read as percentage points; the others are shown as measured.
# "exponent": the slope of a log-log fit (a scaling law), compared with the theory's.
UNITS = {
    "pp": 100.0, "loss": 1.0, "fraction": 1.0, "epochs": 1.0, "x": 1.0, "s": 1.0,
    "exponent": 1.0,
}  # fmt: skip

# What a claim tests: a directional difference (the default), equivalence within ±margin,
# non-inferiority (not worse than the margin), or a threshold (the whole interval beyond it).
TESTS = ("difference", "equivalence", "noninferiority", "threshold")

RULE = (
    "One rule decides every verdict, in the per-ablation tables, the key findings and the claims "
    "ledger: an effect is supported (in the tables: better) when its 95% interval excludes 0 in "
    "the claimed direction and its adjusted p is below 0.05, contradicted (worse) when that "
    "holds the other way, and of no meaningful effect when its 90% interval lies inside "
    "±margin, the smallest effect of interest declared before the data (this takes precedence); "
    "otherwise it is inconclusive. Equivalence and non-inferiority claims are supported by their "
    "one-sided tests against the margin; threshold claims (a proportion, an extrapolation) when "
    "their whole 95% interval lies beyond the threshold. The p-values are adjusted with "
    "Benjamini and Hochberg's procedure (false-discovery rate 5%) over every tested claim of the "
    "ledger, and within each ablation and metric in the tables: among the claims called "
    "supported or contradicted, at most 5% are expected to be wrong. Each "
    "comparison also shows the smallest effect its seeds detect with 80% power."
)

# The tables' verdict words for the ledger's, variant versus baseline in the metric's good
# direction.
TABLE_WORDS = {"supported": "better", "contradicted": "worse"}
# An equivalence claim says "within ±margin either way": supported, it is no difference to speak
# of, contradicted, a difference beyond the margin on some side; never better or worse, which
# would read a claim of sameness as a win.
EQUIVALENCE_WORDS = {"supported": "equivalent", "contradicted": "not equivalent"}
# The smallest effect of interest of the tables' comparisons, per metric and in its raw unit
# (fractions, nats): half an accuracy point is the study's resolution on 10,000 test images
# (50 images); 0.02 nats of test loss is about what one accuracy point moves it; a generalization
# gap that moves by less than one point changes no conclusion about overfitting.
TABLE_MARGINS = {"test_acc": 0.005, "test_loss": 0.02, "gap_acc": 0.01}


class Estimate(NamedTuple):
    """An effect in its claim's unit: estimate, 95% interval, the p-value of the claim's test,
    pairs, standard deviation of the paired differences (NaN where not a paired mean)."""

    effect: float
    lo: float
    hi: float
    p: float
    n: int
    sd: float = NAN


def unit_scale(unit: str) -> float:
    return UNITS[unit]


def detectable(n: int, sd: float) -> float:
    """Smallest true effect a paired t-test on ``n`` seeds finds with 80% power (claim unit)."""
    return power.detectable_effect(n, sd) if n >= 2 and math.isfinite(sd) else NAN


class _Diff(NamedTuple):  # what stats.claim_verdict reads
    diff: float
    lo: float
    hi: float
    p: float
    n: int
    sd: float


def judge(est: Estimate, p_adjusted: float, margin: float, direction: str, test: str) -> str:
    """The verdict of one effect: one of stats.CLAIM_VERDICTS.

    ``direction`` is the claimed side ('higher' or 'lower'; for non-inferiority, the good side;
    for a threshold, the side of ``margin`` the interval should lie on).
    """
    if not math.isfinite(est.effect):
        return "inconclusive"
    if test == "difference":
        d = _Diff(est.effect, est.lo, est.hi, est.p, est.n, est.sd)
        return claim_verdict(d, p_adjusted if math.isfinite(p_adjusted) else NAN, margin, direction)
    sign = 1.0 if direction == "higher" else -1.0
    lo, hi = sorted((sign * est.lo, sign * est.hi))
    significant = math.isfinite(p_adjusted) and p_adjusted < ALPHA
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if test == "equivalence":
        if significant:
            return "supported"
        return "contradicted" if lo > margin or hi < -margin else "inconclusive"
    if test == "noninferiority":
        if significant:
            return "supported"
        return "contradicted" if hi < -margin else "inconclusive"
    if test == "threshold":  # the whole interval beyond the threshold, and its exact test if any
        threshold = sign * margin
        if lo > threshold and (significant or not math.isfinite(est.p)):
            return "supported"
        return "contradicted" if hi < threshold else "inconclusive"
    raise ValueError(f"unknown test {test!r}; one of {', '.join(TESTS)}")


# The ledger tests some twenty unrelated claims of a course; Holm's family-wise control over all
# of them would make a claim's verdict depend on how many others the course happens to make.
# Controlling the false-discovery rate answers the reader's question (how many of these verdicts
# could be wrong) and the report still states how many survive Holm (holm_sensitivity).
ADJUSTMENT = "Benjamini–Hochberg"


def adjust(pvalues) -> np.ndarray:
    """Benjamini–Hochberg over one family (every tested claim of the ledger, or one ablation and
    metric)."""
    return benjamini_hochberg(pvalues)


def holm_sensitivity(pvalues, verdicts) -> tuple[int, int]:
    """Of the claims supported or contradicted on a p-value, how many would stay so under Holm's
    family-wise correction over the same p-values: (kept, decided)."""
    p = np.asarray(list(pvalues), dtype=float)
    decided = np.array([v in ("supported", "contradicted") for v in verdicts]) & np.isfinite(p)
    return int((decided & (holm(p) < ALPHA)).sum()), int(decided.sum())


def table_verdict(d, p_adjusted: float, metric: str, higher_is_better: bool) -> str:
    """The tables' word (better, worse, no meaningful effect, inconclusive) for variant minus
    baseline on ``metric``, from the same rule as the ledger with the metric's default margin."""
    if not (math.isfinite(d.lo) and math.isfinite(d.hi)):
        return "inconclusive"
    direction = "higher" if higher_is_better else "lower"
    est = Estimate(d.diff, d.lo, d.hi, d.p, d.n, d.sd)
    word = judge(est, p_adjusted, TABLE_MARGINS[metric], direction, "difference")
    return TABLE_WORDS.get(word, word)
