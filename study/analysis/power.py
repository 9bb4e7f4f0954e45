"""What a paired comparison over a few seeds can detect: power of the paired t-test.

A paired t-test on n seeds is a one-sample t-test on the n differences. If the true mean
difference is ``effect`` and the differences have standard deviation ``sd``, the t statistic
follows the noncentral t distribution with n - 1 degrees of freedom and noncentrality
effect / sd * sqrt(n); the power is its mass beyond the critical values of the central t. With 3
seeds the critical value is 4.30 (two-sided, alpha 0.05), so only effects of 3.26 standard
deviations of the difference are found with 80% power: a statement every "inconclusive" should
come with.
"""

from __future__ import annotations

import math

from scipy import optimize
from scipy import stats as sps

NAN = float("nan")


def _power_standardized(d: float, n: int, alpha: float, two_sided: bool) -> float:
    df, nc = n - 1, d * math.sqrt(n)
    if two_sided:
        crit = float(sps.t.isf(alpha / 2, df))
        wrong_side = float(sps.nct.cdf(-crit, df, nc))
        # far from the wrong-side critical value scipy's nct.cdf can underflow to NaN (1 degree
        # of freedom, noncentrality ~ 10); the mass there is below 1e-10 and counts as 0
        return float(sps.nct.sf(crit, df, nc)) + (wrong_side if math.isfinite(wrong_side) else 0.0)
    return float(sps.nct.sf(float(sps.t.isf(alpha, df)), df, nc))


def paired_power(
    effect: float, sd: float, n: int, alpha: float = 0.05, two_sided: bool = True
) -> float:
    """Probability that a paired t-test on ``n`` pairs rejects at ``alpha`` when the true mean
    difference is ``effect`` and the differences have standard deviation ``sd``.

    One-sided means the alternative in the direction of ``effect``.
    """
    if n < 2 or not (math.isfinite(effect) and math.isfinite(sd)) or sd < 0:
        return NAN
    if sd == 0.0:
        return 1.0 if effect != 0.0 else alpha
    return _power_standardized(abs(effect) / sd, n, alpha, two_sided)


def detectable_effect(
    n: int, sd: float, alpha: float = 0.05, power: float = 0.8, two_sided: bool = True
) -> float:
    """Smallest true mean difference a paired t-test on ``n`` pairs finds with probability
    ``power`` at level ``alpha``, for differences with standard deviation ``sd``.

    Solved for the standardized effect (brentq on the noncentral-t power) and scaled by ``sd``.
    NaN when it cannot be said: fewer than 2 pairs or an unknown sd.
    """
    if not 0 < alpha < power < 1:
        raise ValueError(f"need 0 < alpha < power < 1, got alpha={alpha}, power={power}")
    if n < 2 or not math.isfinite(sd) or sd < 0:
        return NAN
    if sd == 0.0:
        return 0.0

    def shortfall(d: float) -> float:
        return _power_standardized(d, n, alpha, two_sided) - power

    # at d = 0 the power is alpha < power; double the upper end until the power is reached
    upper = 1.0
    while shortfall(upper) < 0:
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-13)) * sd


def seeds_needed(
    effect: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    n_max: int = 50,
    two_sided: bool = True,
) -> int | None:
    """Fewest pairs (seeds) with which a paired t-test finds ``effect`` with probability
    ``power``; None if even ``n_max`` seeds are not enough (or the effect is 0 or unknown).

    Consistent with :func:`detectable_effect`: the answer n is the first with
    detectable_effect(n, sd) <= |effect|.
    """
    if not 0 < alpha < power < 1:
        raise ValueError(f"need 0 < alpha < power < 1, got alpha={alpha}, power={power}")
    if not (math.isfinite(effect) and math.isfinite(sd)) or sd < 0 or effect == 0.0:
        return None
    for n in range(2, n_max + 1):
        # the tolerance absorbs the root-finder's last digits, so that an effect equal to
        # detectable_effect(n, sd) is found with n seeds
        if paired_power(effect, sd, n, alpha, two_sided) >= power - 1e-9:
            return n
    return None
