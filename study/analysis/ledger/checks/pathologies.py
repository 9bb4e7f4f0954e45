"""Special checks on the pathologies experiment (study/experiments/pathologies/): fitted exponents
against the theory's, per-seed ratios and differences, from results/<scale>/pathologies.csv.

Exponents take their interval from the fit's standard error (Student t on the fit's residual
degrees of freedom); ratios and differences from the seeds (or the sizes, for Newton's time to a
target). The numbers are computed by study.experiments.pathologies.fits, as in the JSON beside
the CSV.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats as sps

from study import contracts
from study.analysis.ledger.checks.second_order import _log_ratio_estimate
from study.analysis.ledger.kinds import _not_tested, describe
from study.analysis.ledger.rule import Estimate
from study.analysis.ledger.values import ClaimTables, experiment_table
from study.analysis.stats import NAN, fmt, mean_ci
from study.experiments.pathologies import fits

FILE = "pathologies.csv"


def _table(t: ClaimTables, c: dict) -> pd.DataFrame | None:
    return experiment_table(t, c, FILE, contracts.PATHOLOGIES, "rerun the pathologies experiment")


def _fit(df: pd.DataFrame, c: dict) -> dict:
    if c["fit"] == "iterations":
        return fits.iteration_exponent(df, c["method"], c.get("geometry", "diagonal"))
    if c["fit"] == "noise":
        return fits.noise_exponent(df)
    return fits.cost_exponent(df, f"{c['fit']}_s")


def _se(fit: dict) -> tuple[float, int]:
    df = fit["points"] - 2
    if df < 1 or not math.isfinite(fit["hi"]):
        return NAN, max(df, 0)
    return (fit["hi"] - fit["slope"]) / float(sps.t.ppf(0.975, df)), df


def pathology_exponent(t: ClaimTables, c: dict) -> dict:
    """Fitted exponent minus the theory's (``theory``), judged for equivalence within ±margin
    (two one-sided t-tests on the fit's standard error)."""
    df = _table(t, c)
    if df is None:
        return _not_tested(f"no {c.get('file', FILE)}")
    fit = _fit(df, c)
    if fit["points"] < 3:
        return _not_tested(f"{fit['points']} points for the {c['fit']} fit; 3 are needed")
    se, dof = _se(fit)
    theory, margin = float(c["theory"]), float(c["margin"])
    effect = fit["slope"] - theory
    if se > 0:
        p = max(sps.t.sf((effect + margin) / se, dof), sps.t.cdf((effect - margin) / se, dof))
    else:
        p = 0.0 if abs(effect) < margin else 1.0
    est = Estimate(effect, fit["lo"] - theory, fit["hi"] - theory, float(p), fit["points"])
    detail = (
        f"exponent {fmt(fit['slope'])} [{fmt(fit['lo'])}, {fmt(fit['hi'])}] over "
        f"{fit['points']} points against the theory's {fmt(theory)}"
    )
    return {"estimate": est, "test": "equivalence", "detail": detail}


def pathology_exponent_gap(t: ClaimTables, c: dict) -> dict:
    """A method's iteration exponent on the rotated quadratics minus on the diagonal ones: a
    threshold claim (the whole interval above ``margin``), interval from both fits' errors."""
    df = _table(t, c)
    if df is None:
        return _not_tested(f"no {c.get('file', FILE)}")
    rotated = fits.iteration_exponent(df, c["method"], "rotated")
    diagonal = fits.iteration_exponent(df, c["method"], "diagonal")
    (se_r, df_r), (se_d, df_d) = _se(rotated), _se(diagonal)
    if min(df_r, df_d) < 1:
        return _not_tested("too few condition numbers for the two fits")
    se = math.hypot(se_r, se_d)
    half = float(sps.t.ppf(0.975, min(df_r, df_d))) * se
    gap = rotated["slope"] - diagonal["slope"]
    est = Estimate(gap, gap - half, gap + half, NAN, min(rotated["points"], diagonal["points"]))
    detail = (
        f"{c['method']}: rotated {fmt(rotated['slope'])} minus diagonal "
        f"{fmt(diagonal['slope'])} = {fmt(gap)} [{fmt(gap - half)}, {fmt(gap + half)}]"
    )
    return {"estimate": est, "test": "threshold", "detail": detail}


def _at(df: pd.DataFrame, c: dict):
    at = c.get("at")
    if at != "largest":
        return at
    rows = df[(df["experiment"] == c["experiment"]) & (df["quantity"] == c["quantity"])]
    return float(rows["x"].astype(float).max()) if len(rows) else None


def pathology_ratio(t: ClaimTables, c: dict) -> dict:
    """``top`` / ``bottom`` per seed (or per size, ``by: x``), geometric mean with its t-interval
    on the logs; at one ``x`` (a value, or ``largest``) if given."""
    df = _table(t, c)
    if df is None:
        return _not_tested(f"no {c.get('file', FILE)}")
    by = c.get("by", "seed")
    ratios = fits.paired(df, c["experiment"], c["quantity"], c["top"], c["bottom"], by, _at(df, c))
    if len(ratios) < 2:
        return _not_tested(f"fewer than 2 {by}s with both {c['top']} and {c['bottom']}")
    est = _log_ratio_estimate(ratios)
    shown = Estimate(*(math.exp(v) for v in est[:3]), est.p, est.n)
    each = ", ".join(f"{fmt(r)}" for r in ratios)
    return {
        "estimate": est,
        "log": True,
        "test": "difference",
        "detail": describe(f"{c['top']} / {c['bottom']}, geometric mean", shown, "x")
        + f" ({each})",
    }


def pathology_difference(t: ClaimTables, c: dict) -> dict:
    """``top`` minus ``bottom`` per seed, at one ``x`` if given: its mean with the t-interval, by
    the claim's ``test`` (difference: one-sample t; threshold: the interval beyond the margin)."""
    df = _table(t, c)
    if df is None:
        return _not_tested(f"no {c.get('file', FILE)}")
    at = _at(df, c)
    top = fits.per_seed(df, c["experiment"], c["quantity"], c["top"], at)
    bottom = fits.per_seed(df, c["experiment"], c["quantity"], c["bottom"], at)
    diffs = (top - bottom).dropna().to_numpy(float)
    m = mean_ci(diffs)
    if m.n < 2:
        return _not_tested(f"fewer than 2 seeds with both {c['top']} and {c['bottom']}")
    test = c.get("test", "difference")
    lo, hi = (m.lo, m.hi) if m.std > 0 else (m.mean, m.mean)
    p = NAN
    if test == "difference":
        p = float(sps.ttest_1samp(diffs, 0.0).pvalue) if m.std > 0 else 2.0 ** (1 - m.n)
    est = Estimate(m.mean, lo, hi, p, m.n, m.std)
    return {"estimate": est, "test": test,
            "detail": describe(f"{c['top']} - {c['bottom']}", est, c["unit"])}  # fmt: skip


CHECKS = {
    "pathology_exponent": (pathology_exponent, "fitted exponent - theory's"),
    "pathology_exponent_gap": (pathology_exponent_gap, "iteration exponent, rotated - diagonal"),
    "pathology_ratio": (pathology_ratio, "ratio per seed (geometric mean)"),
    "pathology_difference": (pathology_difference, "difference per seed"),
}
