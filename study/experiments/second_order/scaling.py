"""Scaling laws of the second-order experiment: power-law fits, the crossover, extrapolations.

Cost per iteration is modelled as ``c · N^k``: ``k`` is the least-squares slope of log cost against
log N, with a Student-t interval (exact for normal residuals on the log scale). The crossover is the
N at which the fastest first-order method's wall time to the target drops below Newton's,
interpolated linearly in log-log between the two measured sizes that bracket it (both reported).
It is also computed as if Newton had built its Hessian by autograd, to separate the algorithm's
cost from that of a generic Hessian.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = [
    "EXTRAPOLATE_TO", "crossover", "fit_power_law", "grows_at_least", "order_statistic_interval",
    "predict", "summarize",
]  # fmt: skip

EXTRAPOLATE_TO = (1e6, 1e8)


def order_statistic_interval(values: Sequence[float], level: float = 0.95):
    """(median, lo, hi, coverage): the narrowest symmetric order-statistic interval for the median
    whose coverage is at least ``level``; with too few values, the range and its coverage
    (5 values: min..max, 1 - 2/2⁵ = 93.75%)."""
    x = np.sort(np.asarray(values, dtype=float))
    r = len(x)
    if r == 0:
        return math.nan, math.nan, math.nan, math.nan
    k = 1  # X_(k) <= median <= X_(r-k+1) fails only if fewer than k (or more than r-k) lie below
    while k + 1 <= r // 2 and 1 - 2 * stats.binom.cdf(k, r, 0.5) >= level:
        k += 1
    coverage = 1 - 2 * stats.binom.cdf(k - 1, r, 0.5)
    return float(np.median(x)), float(x[k - 1]), float(x[r - k]), float(coverage)


def fit_power_law(n: Sequence[float], y: Sequence[float], level: float = 0.95) -> dict:
    """Least squares log y = a + k log N: slope ``k`` with its interval, intercept, points."""
    lx, ly = np.log(np.asarray(n, dtype=float)), np.log(np.asarray(y, dtype=float))
    m = len(lx)
    if m < 2:
        return {"slope": math.nan, "lo": math.nan, "hi": math.nan, "points": m}
    sxx = float(((lx - lx.mean()) ** 2).sum())
    slope = float(((lx - lx.mean()) * (ly - ly.mean())).sum() / sxx)
    intercept = float(ly.mean() - slope * lx.mean())
    residual = ly - (intercept + slope * lx)
    s = math.sqrt(float((residual**2).sum()) / (m - 2)) if m > 2 else math.inf
    half = float(stats.t.ppf(0.5 + level / 2, m - 2)) * s / math.sqrt(sxx) if m > 2 else math.inf
    return {
        "slope": slope, "lo": slope - half, "hi": slope + half, "level": level,
        "intercept": intercept, "residual_sd": s, "points": m,
        "x_mean": float(lx.mean()), "sxx": sxx,
    }  # fmt: skip


def grows_at_least(fit: dict, power: float, tol: float = 1e-9) -> str:
    """Verdict on "cost grows at least as N^power": supported if the whole slope interval is at or
    above ``power``, contradicted if it is entirely below, otherwise inconclusive."""
    if not math.isfinite(fit["slope"]):
        return "inconclusive"
    if fit["lo"] >= power - tol:
        return "supported"
    if fit["hi"] < power - tol:
        return "contradicted"
    return "inconclusive"


def predict(fit: dict, n: float) -> dict:
    """The fitted cost at ``n`` with the interval of the fitted mean (an extrapolation when ``n``
    lies beyond the measured sizes)."""
    if fit["points"] < 2:
        return {"n": n, "value": math.nan, "lo": math.nan, "hi": math.nan}
    x0 = math.log(n)
    centre = fit["intercept"] + fit["slope"] * x0
    df = fit["points"] - 2
    if df > 0 and math.isfinite(fit["residual_sd"]):
        se = fit["residual_sd"] * math.sqrt(
            1 / fit["points"] + (x0 - fit["x_mean"]) ** 2 / fit["sxx"]
        )
        half = float(stats.t.ppf(0.5 + fit["level"] / 2, df)) * se
    else:
        half = math.inf
    return {"n": n, "value": math.exp(centre), "lo": _exp(centre - half), "hi": _exp(centre + half)}


def _exp(v: float) -> float:
    return math.exp(v) if v < 700 else math.inf


def crossover(n: Sequence[float], t_second: Sequence[float], t_first: Sequence[float]) -> dict:
    """The N where first-order wall time to the target drops below second-order's.

    Every answer names the sizes compared (``range``: smallest and largest N at which both reached
    the target) and ``bracket``, the two measured sizes the crossover lies between (None for an
    open side). Interpolated on log-log between the last pair of measured sizes where the sign of
    log(t_second / t_first) turns positive ("measured", with the number of ``changes`` of the
    faster method over the sizes: 1 for a clean crossing). If first-order methods are faster at
    every size, "first_order_faster_everywhere" (below the smallest N: bracket [None, smallest]);
    if never, both curves are fitted as power laws and their intersection is returned
    ("extrapolated", bracket [largest, None]; or "none" when the fitted curves do not meet beyond
    the measured sizes). A side that never reached the target leaves nothing to compare.
    """
    pts = sorted(
        (a, math.log(b / c), b, c) for a, b, c in zip(n, t_second, t_first, strict=True)
        if all(math.isfinite(v) and v > 0 for v in (a, b, c))
    )  # fmt: skip
    for name, times in (("second_order", t_second), ("first_order", t_first)):
        if not any(math.isfinite(v) and v > 0 for v in times):
            return {"n": None, "status": f"{name}_never_reached", "range": None, "bracket": None}
    if len(pts) < 2:
        return {"n": None, "status": "too_few_sizes", "range": None, "bracket": None}
    span = [pts[0][0], pts[-1][0]]
    gap = [p[1] for p in pts]
    changes = sum((g0 > 0) != (g1 > 0) for g0, g1 in zip(gap[:-1], gap[1:], strict=True))
    if all(g > 0 for g in gap):
        return _cross(None, "first_order_faster_everywhere", span, [None, span[0]])
    for (n0, g0, *_), (n1, g1, *_) in reversed(list(zip(pts[:-1], pts[1:], strict=True))):
        if g0 <= 0 < g1:
            frac = -g0 / (g1 - g0)
            at = math.exp(math.log(n0) + frac * math.log(n1 / n0))
            return _cross(at, "measured", span, [n0, n1], changes)
    if gap[-1] > 0:  # faster first-order at the large end, after a non-monotone stretch
        return _cross(None, "ambiguous", span, None)
    second = fit_power_law([p[0] for p in pts], [p[2] for p in pts])
    first = fit_power_law([p[0] for p in pts], [p[3] for p in pts])
    dk = second["slope"] - first["slope"]
    if dk <= 0:
        return _cross(None, "none", span, [span[1], None])
    log_n = (first["intercept"] - second["intercept"]) / dk
    at = math.exp(log_n) if log_n < 700 else math.inf
    return _cross(at, "extrapolated", span, [span[1], None])


def _cross(at, status: str, span: list, bracket: list | None, changes: int = 0) -> dict:
    """``changes``: how often the faster method changes across the measured sizes; more than one
    means timings within noise of each other somewhere, and the last change is the one reported."""
    return {"n": at, "status": status, "range": span, "bracket": bracket, "changes": changes}


def _best_first_order(rows: list[dict], sizes: list[int]) -> list[float]:
    """The fastest first-order (not quasi-Newton) wall time to the target at each size."""
    best = []
    for size in sizes:
        times = [
            r["s_to_target"] for r in rows
            if r["n_params"] == size and r["method"] not in ("newton", "lbfgs")
            and r["target_reached"]
        ]  # fmt: skip
        best.append(min(times, default=math.nan))
    return best


def _with_autograd_hessian(row: dict) -> float:
    """Newton's wall time to the target had it built its Hessian by autograd: the timed step with
    its own Hessian's time replaced by the autograd one's."""
    own, autograd = row.get("hessian_s_median"), row.get("autograd_hessian_s_median")
    if own is None or autograd is None or not all(map(math.isfinite, (own, autograd))):
        return math.nan
    return (
        row["s_to_target"] / row["s_per_iter_median"] * (row["s_per_iter_median"] - own + autograd)
    )


def summarize(
    rows: list[dict], second_order: str = "newton", rel: float = 1e-3, fit_min_n: float = 0
) -> dict:
    """Per problem family: Newton's time and memory exponents (fitted on the sizes of at least
    ``fit_min_n`` parameters), the crossover (over every size), extrapolations."""
    families = {}
    for family in sorted({r["family"] for r in rows}):
        mine = [r for r in rows if r["family"] == family]
        newton = sorted(
            (r for r in mine if r["method"] == second_order), key=lambda r: r["n_params"]
        )
        if not newton:
            continue
        sizes = [r["n_params"] for r in newton]
        fitted = [r for r in newton if r["n_params"] >= fit_min_n]
        time_fit, memory_fit, hessian_fit, solve_fit = (
            fit_power_law([r["n_params"] for r in fitted], [r[column] for r in fitted])
            for column in ("s_per_iter_median", "peak_bytes", "hessian_s_median", "solve_s_median")
        )
        first_best = _best_first_order(mine, sizes)
        cross = crossover(sizes, [r["s_to_target"] for r in newton], first_best)
        autograd_s = [_with_autograd_hessian(r) for r in newton]
        families[family] = {
            "n_params": sizes,
            "fit_n_params": [r["n_params"] for r in fitted],
            "time_exponent": _public(time_fit),
            "memory_exponent": _public(memory_fit),
            "hessian_time_exponent": _public(hessian_fit),
            "solve_time_exponent": _public(solve_fit),
            "time_grows_at_least_quadratically": grows_at_least(time_fit, 2.0),
            "memory_grows_at_least_quadratically": grows_at_least(memory_fit, 2.0),
            "crossover": cross,
            "newton_s_to_target": [r["s_to_target"] for r in newton],
            "best_first_order_s_to_target": first_best,
            "hessian_method": sorted({r.get("hessian_method") or "autograd" for r in newton}),
            "hessian_s": [r["hessian_s_median"] for r in newton],
            "autograd_hessian_s": [r.get("autograd_hessian_s_median", math.nan) for r in newton],
            "crossover_with_autograd_hessian": crossover(sizes, autograd_s, first_best),
            "extrapolation": {
                f"{n:.0e}": {
                    "extrapolated": n > max(sizes),
                    "s_per_iter": predict(time_fit, n),
                    "peak_bytes": predict(memory_fit, n),
                    "hessian_bytes_float64": 8 * n * n,
                }
                for n in EXTRAPOLATE_TO
            },
        }
    return {
        "target": f"within {rel:g} relative of the lowest loss any method reached on the problem",
        "memory_basis": "computed from tensor sizes (float64), not measured",
        "time_basis": "median of timed repeats of one Newton iteration (Hessian + Cholesky solve)",
        "families": families,
    }


def _public(fit: dict) -> dict:
    return {k: fit.get(k) for k in ("slope", "lo", "hi", "level", "points", "intercept")}
