"""Special checks on the second-order experiment (study/experiments/second_order/): Newton
against first-order methods in iterations, time per step and extrapolated cost at scale."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from study import contracts
from study.analysis.ledger.claims_file import ClaimsError
from study.analysis.ledger.kinds import _not_tested, describe
from study.analysis.ledger.rule import Estimate
from study.analysis.ledger.values import ClaimTables, _matches, experiment_table
from study.analysis.stats import NAN, fmt, mean_ci


def _second_order_table(t: ClaimTables, c: dict) -> pd.DataFrame | None:
    return experiment_table(t, c, "second_order.csv", contracts.SECOND_ORDER, "rerun the benchmark")


def _methods(df: pd.DataFrame, c: dict) -> tuple[str, list[str]]:
    """The second-order method and the first-order ones (neither it nor a quasi-Newton one)."""
    second = c.get("method", "newton")
    skip = {second, *c.get("quasi_newton", ["lbfgs"])}
    return second, sorted(m for m in set(df["method"]) if m not in skip)


def _log_ratio_estimate(ratios: pd.Series) -> Estimate:
    """Mean log ratio over problems with its t-interval and one-sample t p (log scale)."""
    logs = np.log(ratios[np.isfinite(ratios) & (ratios > 0)].to_numpy(float))
    m = mean_ci(logs)
    if m.n < 2:
        return Estimate(m.mean, NAN, NAN, NAN, m.n)
    p = float(sps.ttest_1samp(logs, 0.0).pvalue) if m.std > 0 else 2.0 ** (1 - m.n)
    return Estimate(m.mean, m.lo, m.hi, p, m.n, m.std)


def _per_problem(df: pd.DataFrame, c: dict, column: str, reached_only: bool) -> pd.DataFrame:
    second, first = _methods(df, c)
    rows = df[_matches(df["reached"], [True, 1, "yes"])] if reached_only else df
    value = rows.assign(v=pd.to_numeric(rows[column], errors="coerce"))
    wide = value.pivot_table(index="problem", columns="method", values="v", aggfunc="min")
    if second not in wide or not any(m in wide for m in first):
        return pd.DataFrame()
    best_first = wide[[m for m in first if m in wide]].min(axis=1)
    return pd.DataFrame({"second": wide[second], "first": best_first}).dropna()


def _ratio_claim(
    t: ClaimTables, c: dict, column: str, reached: bool, word: str, first_over_second: bool
) -> dict:
    df = _second_order_table(t, c)
    if df is None:
        return _not_tested(f"no {c.get('file', 'second_order.csv')}")
    if column not in df:
        return _not_tested(f"second_order.csv has no {column}; rerun the benchmark")
    table = _per_problem(df, c, column, reached)
    if table.empty:
        return _not_tested("no problem where both a second- and a first-order method " + word)
    ratios = table["first"] / table["second"] if first_over_second else None
    if ratios is None:
        ratios = table["second"] / table["first"]
    est = _log_ratio_estimate(ratios)
    each = ", ".join(f"{p} {fmt(r)}x" for p, r in ratios.items())
    shown = Estimate(*(math.exp(v) for v in est[:3]), est.p, est.n)
    return {
        "estimate": est,
        "log": True,
        "test": "difference",
        "detail": describe(f"geometric mean over {est.n} problems", shown, "x") + f" ({each})",
    }


def second_order_iterations(t: ClaimTables, c: dict) -> dict:
    """Iterations to the target of the best first-order method divided by Newton's, per problem
    (both must reach it), as a geometric mean over problems with its t-interval on the logs."""
    return _ratio_claim(t, c, "iterations", True, "reached the target", True)


def second_order_step_time(t: ClaimTables, c: dict) -> dict:
    """Newton's seconds per iteration (median of timed repeats) divided by the fastest
    first-order method's, per problem, as a geometric mean over problems (t on the logs)."""
    return _ratio_claim(t, c, "s_per_iter_median", False, "was timed", False)


def second_order_at_scale(t: ClaimTables, c: dict) -> dict:
    """Newton's fitted cost per iteration (``quantity``: s_per_iter or peak_bytes) extrapolated
    to ``at`` parameters, as a multiple of the declared ``budget``, with the interval of the
    fitted power law; from the family measured at the most sizes. A threshold claim: the whole
    interval above 1 (the budget) supports it. Beyond the largest size fitted it is an
    extrapolation, and its result says so (``extrapolated``, ``basis``: what the fitted points
    are), for the ledger to carry into claims.csv."""
    path = t.scale_dir / c.get("file", "second_order.json")
    if not path.exists():
        return _not_tested(f"no {path.name}")
    try:
        families = json.loads(path.read_text())["families"]
    except (OSError, ValueError, KeyError) as e:
        raise ClaimsError(
            f"{path}: unreadable ({type(e).__name__}: {e}); rerun the benchmark"
        ) from None
    key, quantity, budget = f"{float(c['at']):.0e}", c["quantity"], float(c["budget"])
    found = {
        name: f["extrapolation"][key][quantity]
        for name, f in families.items()
        if key in f.get("extrapolation", {}) and quantity in f["extrapolation"][key]
    }
    if not found:
        return _not_tested(f"{path.name} has no {quantity} extrapolated to {key} parameters")
    name = max(found, key=lambda n: len(families[n].get("n_params", [])))
    pred = found[name]
    est = Estimate(pred["value"] / budget, pred["lo"] / budget, pred["hi"] / budget, NAN, 0)
    fit = "time_exponent" if quantity == "s_per_iter" else "memory_exponent"
    exponent = families[name].get(fit) or {"slope": NAN, "lo": NAN, "hi": NAN, "points": 0}
    each = "; ".join(f"{n} {fmt(p['value'] / budget)}x" for n, p in found.items())
    point = families[name]["extrapolation"][key]
    extrapolated = bool(point.get("extrapolated", True))
    basis = BASIS.get(quantity, "measured")
    detail = (
        f"{'extrapolation' if extrapolated else 'interpolation'} of {basis}; "
        f"{name}: {quantity} at {key} parameters = {fmt(est.effect)}x the budget of "
        f"{fmt(budget)} [{fmt(est.lo)}, {fmt(est.hi)}], fitted exponent "
        f"{fmt(exponent['slope'])} [{fmt(exponent['lo'])}, {fmt(exponent['hi'])}] over "
        f"{exponent['points']} sizes (all families: {each})"
    )
    return {
        "estimate": est,
        "test": "threshold",
        "detail": detail,
        "extrapolated": extrapolated,
        "basis": basis,
    }


# What the fitted points of each quantity are: the memory is arithmetic on the tensors a Newton
# step holds (study.experiments.second_order.peak_bytes), never a measured peak; the time is the
# median of timed repeats.
BASIS = {
    "peak_bytes": "bytes computed from tensor sizes (not measured)",
    "s_per_iter": "measured seconds per iteration",
}


CHECKS = {
    "second_order_iterations": (
        second_order_iterations,
        "iterations to target, best first-order / Newton",
    ),
    "second_order_step_time": (
        second_order_step_time,
        "s per iteration, Newton / fastest first-order",
    ),
    "second_order_at_scale": (second_order_at_scale, "extrapolated cost per iteration / budget"),
}
