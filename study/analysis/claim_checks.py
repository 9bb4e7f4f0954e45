"""Special claims: checks that fit no generic kind (``kind: special`` with a ``check`` name)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from study import contracts
from study.analysis.claim_kinds import _describe, _not_tested
from study.analysis.claim_values import ClaimTables, _matches, run_values
from study.analysis.claims_file import ClaimsError
from study.analysis.stats import fmt, paired_diff


def early_stopping_near_minimum(t: ClaimTables, c: dict) -> dict:
    """Early stopping returns the model of (about) the epoch where the un-stopped run's
    validation loss is lowest.

    Per seed: the stopped variant's ``best_epoch`` minus the epoch of the lowest val_loss in the
    reference (un-stopped) run's history. Supported if the 95% interval of the mean lies within
    ±``tolerance`` epochs (an equivalence test), contradicted if it lies entirely outside.
    """
    ablation, variant, ref = c["ablation"], c["variant"], c["reference"]
    tol = float(c.get("tolerance", 2))
    stopped = run_values(t, {**c, "metric": "best_epoch", "source": "runs"}, ablation, variant)
    h = t.history
    if stopped is None or "ablation" not in h or "val_loss" not in h:
        return _not_tested(f"no runs or history of {ablation}/{variant}")
    h = h[(h["ablation"] == ablation) & (h["variant"] == ref)].dropna(subset=["val_loss"])
    if h.empty:
        return _not_tested(f"no history of the reference {ablation}/{ref}")
    minimum = h.loc[h.groupby("seed")["val_loss"].idxmin()].set_index("seed")["epoch"]
    d = paired_diff(stopped, minimum.astype(float))
    if not (np.isfinite(d.lo) and np.isfinite(d.hi)):
        result = "inconclusive"
    elif -tol <= d.lo and d.hi <= tol:
        result = "supported"
    elif d.lo > tol or d.hi < -tol:
        result = "contradicted"
    else:
        result = "inconclusive"
    name = f"{variant} best_epoch - val_loss minimum of {ref}"
    return {
        "effect": d.diff,
        "lo": d.lo,
        "hi": d.hi,
        "verdict": result,
        "detail": _describe(name, d) + f", tolerance ±{fmt(tol)} epochs",
    }


def _second_order_table(path) -> pd.DataFrame:
    """The benchmark's table with ``seconds_per_iter`` (computed from the totals if absent)."""
    try:
        df = contracts.read_csv(path, contracts.SECOND_ORDER)
        contracts.require_columns(df, contracts.SECOND_ORDER, path)
    except contracts.ContractError as e:
        raise ClaimsError(f"{e}; rerun the benchmark") from None
    # study.experiments.second_order writes s_per_iter; compute it for files with only the totals.
    if "seconds_per_iter" not in df:
        if "s_per_iter" in df:
            df["seconds_per_iter"] = df["s_per_iter"]
        else:
            df["seconds_per_iter"] = df["seconds"] / df["iterations"].clip(lower=1)
    return df


def second_order_cost(t: ClaimTables, c: dict) -> dict:
    """Second-order methods reach the target in fewer iterations, each costing more time.

    From ``<scale-dir>/<file>`` (columns method, iterations, seconds, reached and optionally
    seconds_per_iter or s_per_iter), as written by study.experiments.second_order.
    Supported if every second-order method needs fewer iterations (mean over the rows that
    reached the target) than the best first-order method AND takes more seconds per iteration
    than the slowest first-order method; contradicted if either part fails. The effect is the
    iteration ratio (worst second-order / best first-order). No interval: these are single
    measurements.
    """
    path = t.scale_dir / c.get("file", "second_order.csv")
    if not path.exists():
        return _not_tested(f"no {path.name}")
    df = _second_order_table(path)
    second_names = set(c.get("second_order", ["lbfgs"]))
    is_second = df["method"].isin(second_names)
    if not is_second.any() or is_second.all():
        return _not_tested(f"{path.name} needs both first- and second-order methods")
    reached = df[_matches(df["reached"], [True, 1, "yes"])]
    iters = reached.groupby("method")["iterations"].mean()
    spi = df.groupby("method")["seconds_per_iter"].mean()
    second = sorted(set(df.loc[is_second, "method"]))
    first = sorted(set(df.loc[~is_second, "method"]))
    spi_text = ", ".join(f"{m} {fmt(spi[m])} s/iter" for m in second + first)
    if not all(m in iters for m in second) or not any(m in iters for m in first):
        return {
            "effect": math.nan,
            "lo": math.nan,
            "hi": math.nan,
            "verdict": "inconclusive",
            "detail": f"not every method reached the target; {spi_text}",
        }
    best_first = min((m for m in first if m in iters), key=lambda m: iters[m])
    fewer = all(iters[m] < iters[best_first] for m in second)
    costlier = all(spi[m] > spi[first].max() for m in second)
    ratio = max(iters[m] for m in second) / iters[best_first]
    iter_text = ", ".join(f"{m} {fmt(iters[m])}" for m in second + [best_first])
    return {
        "effect": float(ratio),
        "lo": math.nan,
        "hi": math.nan,
        "verdict": "supported" if fewer and costlier else "contradicted",
        "detail": f"iterations to target: {iter_text} (best first-order); {spi_text}",
    }


# The special checks named by claims (schemas/claims.schema.yaml), and the metric each shows.
CHECK_METRICS = {
    "early_stopping_near_minimum": "best_epoch - val_loss argmin (epochs)",
    "second_order_cost": "iterations ratio (second/first order)",
}
CHECKS: dict[str, Callable[[ClaimTables, dict], dict]] = {
    "early_stopping_near_minimum": early_stopping_near_minimum,
    "second_order_cost": second_order_cost,
}
