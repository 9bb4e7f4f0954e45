"""Special checks that re-read runs the study already has: weight norms across the tuned penalty
strengths, ratios of a run metric (weight norm, evaluation time), the training loss at the cuts of
a step-wise schedule, the jitter of the validation loss and the gain from re-estimating norm
statistics under shift. No new runs: each reads the tables of
the ablations that already train them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from study.analysis.ledger.kinds import _not_tested, describe, paired_estimate
from study.analysis.ledger.rule import Estimate, unit_scale
from study.analysis.ledger.values import ClaimTables, run_values
from study.analysis.stats import NAN, fmt, mean_ci, tost_paired

# A learning rate below this share of the previous epoch's marks a cut of a step-wise schedule.
CUT_RATIO = 0.5


def _shown(est: Estimate) -> Estimate:
    return Estimate(*(math.exp(v) for v in est[:3]), est.p, est.n)


def _log_mean(logs: np.ndarray) -> Estimate:
    """Mean of log ratios with its t-interval and one-sample t p (log scale)."""
    m = mean_ci(logs)
    if m.n < 2:
        return Estimate(m.mean, NAN, NAN, NAN, m.n)
    p = float(sps.ttest_1samp(logs, 0.0).pvalue) if m.std > 0 else 2.0 ** (1 - m.n)
    return Estimate(m.mean, m.lo, m.hi, p, m.n, m.std)


def run_ratio(t: ClaimTables, c: dict) -> dict:
    """The variant's run metric over the reference's, paired by seed, judged on the log scale
    (``test: equivalence`` is the TOST of the logs within ±log margin)."""
    ablation, ref, variant = c["ablation"], c["reference"], c["variant"]
    metric_claim = {**c, "source": "runs"}
    a, b = (
        run_values(t, metric_claim, ablation, variant),
        run_values(t, metric_claim, ablation, ref),
    )
    if a is None or b is None:
        return _not_tested(f"no {c['metric']} for {ablation}/{variant} and {ablation}/{ref}")
    logs_a, logs_b = np.log(a.where(a > 0)), np.log(b.where(b > 0))
    est = paired_estimate(logs_a, logs_b, "x")
    test = c.get("test", "difference")
    if test == "equivalence":
        est = est._replace(p=tost_paired(logs_a, logs_b, math.log(float(c["margin"])))[0])
    name = f"{c['metric']} {variant} / {ref}"
    return {"estimate": est, "log": True, "test": test, "detail": describe(name, _shown(est), "x")}


def penalty_shrinks_weights(t: ClaimTables, c: dict) -> dict:
    """Within each penalty's tuning grid (``strengths``: variant -> its tuned key), the weight
    norm at each strength over the norm at the next weaker one: the mean log ratio over every
    neighbouring pair of every penalty, with its t-interval over those pairs."""
    tuning = t.tuning
    if tuning is None or tuning.empty or "weight_norm" not in tuning:
        return _not_tested("no tuning runs with a weight norm")
    rows = tuning[(tuning["ablation"] == c["ablation"]) & (tuning["status"] != "diverged")]
    logs, each = [], []
    for variant, key in c["strengths"].items():
        column = f"config.{key}"
        grid = rows[rows["variant"] == variant]
        if grid.empty or column not in grid:
            continue
        norms = grid.assign(s=pd.to_numeric(grid[column], errors="coerce"))
        norms = norms.groupby("s")["weight_norm"].mean().sort_index()
        ratios = (norms / norms.shift(1)).dropna()
        logs += [math.log(r) for r in ratios if r > 0]
        each.append(f"{variant} " + " -> ".join(f"{fmt(n)}" for n in norms))
    if len(logs) < 2:
        return _not_tested(
            f"fewer than two neighbouring strengths in the tuning of {c['ablation']}"
        )
    est = _log_mean(np.asarray(logs))
    detail = describe(
        f"weight norm, stronger / weaker penalty, {len(logs)} pairs", _shown(est), "x"
    )
    return {
        "estimate": est,
        "log": True,
        "test": "difference",
        "detail": detail + f" (by rising strength: {'; '.join(each)})",
    }


def _cut_drops(h: pd.DataFrame, metric: str, cuts: list[int]) -> pd.Series:
    """Per seed, the mean fall of ``metric`` from the epoch before each cut to the cut's epoch."""
    wide = h.pivot_table(index="seed", columns="epoch", values=metric)
    falls = [wide[c - 1] - wide[c] for c in cuts if c in wide and c - 1 in wide]
    return pd.concat(falls, axis=1).mean(axis=1) if falls else pd.Series(dtype=float)


def loss_drop_at_cuts(t: ClaimTables, c: dict) -> dict:
    """The fall of the training loss across each cut of the variant's step-wise schedule (the
    epochs whose learning rate is below half the previous epoch's), minus the reference's fall
    over the same epochs, paired by seed and averaged over the cuts."""
    h, metric = t.history, c.get("metric", "train_loss")
    ablation, variant, ref = c["ablation"], c["variant"], c["reference"]
    if "ablation" not in h or metric not in h or "lr" not in h:
        return _not_tested("no history with the learning rate and " + metric)
    own = h[(h["ablation"] == ablation) & (h["variant"] == variant)]
    base = h[(h["ablation"] == ablation) & (h["variant"] == ref)]
    if own.empty or base.empty:
        return _not_tested(f"no history of {ablation}/{variant} or {ablation}/{ref}")
    lr = own.groupby("epoch")["lr"].median().sort_index()
    cuts = [int(e) for e, r in (lr / lr.shift(1)).items() if r < CUT_RATIO]
    if not cuts:
        return _not_tested(f"the learning rate of {ablation}/{variant} is never cut")
    est = paired_estimate(_cut_drops(own, metric, cuts), _cut_drops(base, metric, cuts), c["unit"])
    name = f"fall of {metric} at epochs {', '.join(map(str, cuts))}: {variant} - {ref}"
    return {"estimate": est, "test": "difference", "detail": describe(name, est, c["unit"])}


def _first_rise(losses: pd.Series) -> float:
    rises = losses.index[losses.diff() > 0]
    return float(rises[0] - 1) if len(rises) else float(losses.index[-1])


def first_rise_before_minimum(t: ClaimTables, c: dict) -> dict:
    """Per run of the variant, the epoch of its lowest validation loss minus the last epoch
    before the first rise (where a stop at the first rise would keep the model): positive when
    the validation loss rises and falls again before its minimum. Median with its range and the
    exact sign-flip p, in epochs."""
    h, metric = t.history, c.get("metric", "val_loss")
    ablation, variant = c["ablation"], c["variant"]
    if "ablation" not in h or metric not in h:
        return _not_tested(f"no history with {metric}")
    rows = h[(h["ablation"] == ablation) & (h["variant"] == variant)].dropna(subset=[metric])
    if rows.empty:
        return _not_tested(f"no history of {ablation}/{variant}")
    late = {}
    for seed, run in rows.groupby("seed"):
        losses = run.set_index("epoch")[metric].sort_index()
        late[seed] = float(losses.idxmin()) - _first_rise(losses)
    late = pd.Series(late, dtype=float)
    est = paired_estimate(late, pd.Series(0.0, index=late.index), "epochs")
    name = f"{metric} minimum - first rise, {ablation}/{variant}"
    return {"estimate": est, "test": "difference", "detail": describe(name, est, "epochs")}


def adaptation_gain(t: ClaimTables, c: dict) -> dict:
    """Under shift, the variant's metric with its norm statistics re-estimated on the shifted
    data (AdaBN, shift.csv ``adapted`` true) minus with the statistics stored in training
    (``adapted`` false), per run over the rows ``where_not`` keeps, paired by seed: stale stored
    statistics show as a gain."""
    ablation, variant, unit = c["ablation"], c["variant"], c["unit"]
    shifted = {**c, "source": "shift"}
    adapted = run_values(t, {**shifted, "where": {"adapted": True}}, ablation, variant)
    stored = run_values(t, {**shifted, "where": {"adapted": False}}, ablation, variant)
    if adapted is None or stored is None:
        return _not_tested(f"no adapted and stored rows of {ablation}/{variant} in shift.csv")
    scale = unit_scale(unit)
    est = paired_estimate(adapted * scale, stored * scale, unit)
    name = f"{c['metric']} under shift, re-estimated - stored statistics, {ablation}/{variant}"
    return {"estimate": est, "test": "difference", "detail": describe(name, est, unit)}


def lowest_rate_slower(t: ClaimTables, c: dict) -> dict:
    """In each variant's learning-rate grid of the ablation's tuning runs, the metric at the
    lowest rate minus at the middle rate of the grid (the optimizer's usual rate when the grid
    is symmetric), paired by variant: a rate far too low is still far from done."""
    tuning, metric = t.tuning, c.get("metric", "train_loss")
    if tuning is None or tuning.empty or metric not in tuning or "lr" not in tuning:
        return _not_tested(f"no tuning runs with lr and {metric}")
    rows = tuning[tuning["ablation"] == c["ablation"]]
    lowest, middle = {}, {}
    for variant, grid in rows.groupby("variant"):
        # the grid's middle counts every rate tried; a diverged run's loss is no value
        rates = sorted(set(grid["lr"]))
        ok = grid[grid["status"] != "diverged"].groupby("lr")[metric].mean()
        low, mid = rates[0], rates[len(rates) // 2]
        if len(rates) >= 3 and low in ok and mid in ok:
            lowest[variant], middle[variant] = ok[low], ok[mid]
    if len(lowest) < 2:
        return _not_tested(f"fewer than two learning-rate grids in the tuning of {c['ablation']}")
    scale = unit_scale(c["unit"])
    a, b = pd.Series(lowest) * scale, pd.Series(middle) * scale
    est = paired_estimate(a, b, c["unit"])
    name = f"{metric} at the lowest rate - at the middle rate, over {len(a)} grids"
    return {"estimate": est, "test": "difference", "detail": describe(name, est, c["unit"])}


CHECKS = {
    "run_ratio": (run_ratio, "variant / reference of a run metric"),
    "penalty_shrinks_weights": (
        penalty_shrinks_weights,
        "weight norm, stronger / weaker penalty (tuning grid)",
    ),
    "loss_drop_at_cuts": (loss_drop_at_cuts, "fall of the loss at the schedule's cuts"),
    "first_rise_before_minimum": (
        first_rise_before_minimum,
        "epochs from the first rise of the validation loss to its minimum",
    ),
    "adaptation_gain": (adaptation_gain, "re-estimated - stored norm statistics under shift"),
    "lowest_rate_slower": (lowest_rate_slower, "lowest - middle learning rate of each grid"),
}
