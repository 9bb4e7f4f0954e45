"""The claim kinds of the ledger: ``compare``, ``near_best`` and ``diverges``.

Each takes the tables and one claim and returns what was measured, in the claim's unit: an
:class:`~study.analysis.ledger.rule.Estimate` (effect, 95% interval, the p-value of the claim's
own test, pairs, spread), the test it is judged by and a sentence with the numbers behind it. The
verdict is not decided here: the ledger (study.analysis.ledger.evaluate) first adjusts the p-values
(Benjamini–Hochberg) of all claims, then applies the one rule of study.analysis.ledger.rule.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from study.analysis.ledger.rule import Estimate, unit_scale
from study.analysis.ledger.values import ClaimTables, _metric_label, run_values
from study.analysis.stats import (
    NAN,
    fmt,
    mean_ci,
    median_range,
    paired_diff,
    permutation_p,
    proportion_ci,
    tost_paired,
)

# The level of a learning-rate grid point (study.planning.search.level_name of optim.lr).
LR_LEVEL = "lr-"


def _not_tested(detail: str) -> dict:
    return {"estimate": None, "test": "difference", "detail": detail}


def _absent(t: ClaimTables, c: dict, ablation: str, variant: str) -> str:
    """Why a claim is not tested: the ablation, the variant or only the metric is missing."""
    runs = t.runs
    if "ablation" not in runs or not (runs["ablation"] == ablation).any():
        return f"no runs of ablation {ablation}"
    if not ((runs["ablation"] == ablation) & (runs["variant"] == variant)).any():
        return f"no runs of {ablation}/{variant}"
    return f"no {_metric_label(c)} for {ablation}/{variant}"


def _signed(x) -> str:
    s = fmt(x)
    return "+" + s if isinstance(x, float | int) and np.isfinite(x) and x > 0 else s


def describe(name: str, e: Estimate, unit: str) -> str:
    text = f"{name}: {_signed(e.effect)} {unit}"
    if np.isfinite(e.lo):
        text += f" [{fmt(e.lo)}, {fmt(e.hi)}]"
    text += f", {e.n} paired seed{'s' if e.n != 1 else ''}"
    if np.isfinite(e.p):
        text += f", p {fmt(e.p, 2)}"
    return text


def paired_estimate(a: pd.Series, b: pd.Series, unit: str) -> Estimate:
    """Mean paired difference with its t-interval and p; for whole epochs, the median paired
    difference with its range and the exact sign-flip p (a t-interval on integers invents
    impossible values)."""
    if unit == "epochs":
        a, b = a.align(b, join="inner")
        d = (a - b).dropna()
        r = median_range(d)
        sd = float(d.std(ddof=1)) if len(d) > 1 else NAN
        return Estimate(r.estimate, r.lo, r.hi, permutation_p(d) if len(d) else NAN, r.n, sd)
    d = paired_diff(a, b)
    return Estimate(d.diff, d.lo, d.hi, d.p, d.n, d.sd)


def _variants(t: ClaimTables, c: dict) -> list[str]:
    if "variant" in c:
        return [c["variant"]]
    if c["variants"] == "*":
        found = t.runs.loc[t.runs["ablation"] == c["ablation"], "variant"]
        return [v for v in dict.fromkeys(found) if v != c["reference"]]
    return list(c["variants"])


def _scaled(t: ClaimTables, c: dict, ablation: str, variant: str) -> pd.Series | None:
    values = run_values(t, c, ablation, variant)
    return None if values is None else values * unit_scale(c["unit"])


def _guard(t: ClaimTables, c: dict, present: dict, base_ref: str) -> dict | None:
    """The claim's guard: a second metric that must not get meaningfully worse (e.g. test
    accuracy for "curbs overfitting"), measured like the main one."""
    g = c.get("guard")
    if not g:
        return None
    gc = {**c, "metric": g["metric"], "unit": g["unit"], "source": "runs"}
    base = _scaled(t, gc, c["ablation"], base_ref)
    values = {v: _scaled(t, gc, c["ablation"], v) for v in present}
    if base is None or any(s is None for s in values.values()):
        return {"lo": NAN, "hi": NAN, **g, "text": f"no {g['metric']} to check"}
    mean = pd.concat(values, axis=1).mean(axis=1, skipna=False)
    e = paired_estimate(mean, base, g["unit"])
    # "Not meaningfully worse" is a non-inferiority test: one-sided at 5%, i.e. the 90% interval
    # (as the rule's equivalence tests); the 95% interval is shown in the text.
    ni = paired_diff(mean, base, level=0.90)
    return {
        "lo": ni.lo,
        "hi": ni.hi,
        **g,
        "text": describe(f"guard {g['metric']}", e, g["unit"])
        + f", 90% [{fmt(ni.lo)}, {fmt(ni.hi)}]",
    }


def compare(t: ClaimTables, c: dict) -> dict:
    """Variant(s) minus the reference variant, paired by seed, in the claim's unit.

    With several variants, ``combine`` says how: ``mean`` averages the variants seed by seed
    into one comparison; ``all`` is judged on the weakest comparison (largest p: an
    intersection-union test needs no correction), ``any`` on the strongest with its p times the
    number of variants (Bonferroni within the claim). ``test: equivalence`` uses the TOST p.
    """
    ablation, ref, unit = c["ablation"], c["reference"], c["unit"]
    base = _scaled(t, c, ablation, ref)
    if base is None:
        return _not_tested(_absent(t, c, ablation, ref))
    variants = _variants(t, c)
    present = {v: s for v in variants if (s := _scaled(t, c, ablation, v)) is not None}
    absent = [v for v in variants if v not in present]
    note = f"; no runs of {', '.join(absent)}" if absent else ""
    if not present:
        return _not_tested(_absent(t, c, ablation, ", ".join(variants) or "*"))
    test = c.get("test", "difference")
    combine = c.get("combine", "all")
    each = {v: paired_estimate(s, base, unit) for v, s in present.items()}
    if combine == "mean" or len(present) == 1:
        values = pd.concat(present, axis=1).mean(axis=1, skipna=False)
        est = paired_estimate(values, base, unit)
        name = f"{'mean of ' if len(present) > 1 else ''}{', '.join(present)} - {ref}"
        if test == "equivalence":
            est = est._replace(p=tost_paired(values, base, float(c["margin"]))[0])
        detail = describe(name, est, unit)
        if len(present) > 1:  # each variant's own difference, so a mean does not hide one
            detail += f" (each: {', '.join(f'{v} {_signed(e.effect)}' for v, e in each.items())})"
    else:
        pick = max if combine == "all" else min
        chosen = pick(each, key=lambda v: each[v].p if np.isfinite(each[v].p) else 1.0)
        est = each[chosen]
        if combine == "any":
            est = est._replace(p=min(1.0, est.p * len(each)))
        detail = f"{combine}, judged on {chosen}: " + "; ".join(
            describe(f"{v} - {ref}", e, unit) for v, e in each.items()
        )
    return {
        "estimate": est,
        "test": test,
        "detail": detail + note,
        "guard": _guard(t, c, present, ref),
    }


def _noninferiority_p(e: Estimate, margin: float, sign: float) -> float:
    """One-sided p of "the variant is worse than the best by at least ``margin``"."""
    g = sign * e.effect
    if e.n < 2 or not (np.isfinite(g) and np.isfinite(e.sd)):
        return NAN
    if e.sd == 0.0:
        return 0.5**e.n if g > -margin else 1.0
    return float(sps.t.sf((g + margin) / (e.sd / math.sqrt(e.n)), e.n - 1))


def selection_metric(metric: str) -> str:
    """The validation metric a best competitor is chosen on: the test split is only reported."""
    return "val_" + metric.removeprefix("test_") if metric.startswith("test_") else metric


def near_best(t: ClaimTables, c: dict) -> dict:
    """The variant is at most ``margin`` worse than the best other variant (paired by seed):
    a non-inferiority test on the claim's metric. The best other variant is the one with the
    best mean of the *validation* metric (:func:`selection_metric`; among ``among`` if given),
    so the competitor is not chosen on the split the claim is judged on; the variant itself being
    best is fine."""
    ablation, variant, unit = c["ablation"], c["variant"], c["unit"]
    own = _scaled(t, c, ablation, variant)
    if own is None:
        return _not_tested(_absent(t, c, ablation, variant))
    found = t.runs.loc[t.runs["ablation"] == ablation, "variant"]
    wanted = c.get("among") or list(dict.fromkeys(found))
    others = [v for v in wanted if v != variant]
    values = {v: s for v in others if (s := _scaled(t, c, ablation, v)) is not None}
    missing = [v for v in others if v not in values]
    if c.get("among") and missing:
        return _not_tested(f"no runs of {', '.join(f'{ablation}/{v}' for v in missing)}")
    chooser = {**c, "metric": selection_metric(c["metric"]), "source": "runs"}
    chosen_on = {v: run_values(t, chooser, ablation, v) for v in values}
    means = {
        v: m
        for v, s in chosen_on.items()
        if s is not None and np.isfinite(m := mean_ci(s.dropna()).mean)
    }
    if not means:
        return _not_tested(
            f"no {chooser['metric']} of another variant of {ablation} to choose the best by"
        )
    sign = 1.0 if c["expect"] == "higher" else -1.0
    best = max(means, key=lambda v: sign * means[v])
    est = paired_estimate(own, values[best], unit)
    est = est._replace(p=_noninferiority_p(est, float(c["margin"]), sign))
    detail = describe(f"{variant} - best other ({best}, by {chooser['metric']})", est, unit)
    return {"estimate": est, "test": "noninferiority", "detail": detail}


def learning_rate_grids(table: pd.DataFrame, lr_col: str) -> pd.DataFrame:
    """The rows of ``table`` that belong to a learning-rate grid: tuning runs whose searched key
    is the learning rate (their level is ``lr-<value>``, study.planning.search.level_name), or,
    without levels, the (ablation, variant) groups whose learning rate varies. A search of
    another key (a regularizer's strength at a fixed rate) has a "highest rate" that is the one
    rate it ran at: it says nothing about too high a rate."""
    if "level" in table:
        return table[table["level"].astype(str).str.startswith(LR_LEVEL)]
    rates = table.groupby(["ablation", "variant"])[lr_col].transform("nunique")
    return table[rates > 1]


def diverges(t: ClaimTables, c: dict) -> dict:
    """Runs at too high a learning rate diverge: the fraction that diverged among the runs of
    learning-rate grids (:func:`learning_rate_grids`) with lr > ``lr_above`` or, without it, at
    the highest learning rate of each (ablation, variant) grid, with its exact (Clopper-Pearson)
    interval and the exact binomial p of "more than ``margin`` diverge"."""
    source = c.get("source", "tuning")
    table = t.tuning if source == "tuning" else t.runs
    if table is None or table.empty or "status" not in table:
        return _not_tested(f"no {source} runs")
    if "ablation" in c and c["ablation"] is not None:
        wanted = c["ablation"] if isinstance(c["ablation"], list) else [c["ablation"]]
        table = table[table["ablation"].isin(wanted)]
    lr_col = next((k for k in ("lr", "config.optim.lr") if k in table), None)
    if table.empty or lr_col is None:
        return _not_tested(f"no {source} runs with a learning rate" + _scope(c))
    table = table.assign(_lr=pd.to_numeric(table[lr_col], errors="coerce"))
    table = learning_rate_grids(table, "_lr")
    if table.empty:
        return _not_tested(f"no learning-rate grid among the {source} runs" + _scope(c))
    if "lr_above" in c:
        top = table[table["_lr"] > float(c["lr_above"])]
        scope = f"lr > {fmt(c['lr_above'])}"
    else:
        top_lr = table.groupby(["ablation", "variant"])["_lr"].transform("max")
        top = table[table["_lr"] == top_lr]
        scope = "the highest lr of each grid"
    if top.empty:
        return _not_tested(f"no {source} runs at {scope}" + _scope(c))
    n, k = len(top), int((top["status"] == "diverged").sum())
    ci = proportion_ci(k, n)
    margin = float(c["margin"])
    p = float(sps.binomtest(k, n, margin, alternative="greater").pvalue) if margin < 1 else NAN
    groups = top.groupby(["ablation", "variant"]).agg(
        lr=("_lr", "max"),
        k=("status", lambda s: int((s == "diverged").sum())),
        n=("status", "size"),
    )
    each = ", ".join(f"{a}/{v} lr {fmt(g.lr)}: {g.k}/{g.n}" for (a, v), g in groups.iterrows())
    return {
        "estimate": Estimate(ci.estimate, ci.lo, ci.hi, p, n),
        "test": "threshold",
        "detail": f"diverged {k}/{n} runs of learning-rate grids at {scope} ({each}); exact "
        f"binomial p of > "
        f"{fmt(margin)}: {fmt(p, 2)}",
    }


def _scope(c: dict) -> str:
    return f" of {c['ablation']}" if c.get("ablation") else ""
