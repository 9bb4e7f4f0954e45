"""The claim kinds of the ledger: ``compare``, ``near_best`` and ``diverges``.

Each takes the tables and one claim and returns the effect, its 95% interval, the verdict and a
sentence with the numbers behind it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from study.analysis.claim_values import ClaimTables, _metric_label, run_values
from study.analysis.stats import fmt, mean_ci, paired_diff, verdict


def _not_tested(detail: str) -> dict:
    return {
        "effect": math.nan,
        "lo": math.nan,
        "hi": math.nan,
        "verdict": "not tested",
        "detail": detail,
    }


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


def _directional(lo: float, hi: float, expect: str) -> str:
    v = verdict(lo, hi, higher_is_better=expect == "higher")
    return {"better": "supported", "worse": "contradicted"}.get(v, "inconclusive")


def _describe(name: str, d) -> str:
    text = f"{name}: {_signed(d.diff)}"
    if np.isfinite(d.lo):
        text += f" [{fmt(d.lo)}, {fmt(d.hi)}]"
    text += f", {d.n} paired seed{'s' if d.n != 1 else ''}"
    if np.isfinite(d.p):
        text += f", p {fmt(d.p, 2)}"
    return text


def _variants(t: ClaimTables, c: dict) -> list[str]:
    if "variant" in c:
        return [c["variant"]]
    if c["variants"] == "*":
        found = t.runs.loc[t.runs["ablation"] == c["ablation"], "variant"]
        return [v for v in dict.fromkeys(found) if v != c["reference"]]
    return list(c["variants"])


def _combined(verdicts: list[str], combine: str) -> str:
    """The verdict of several comparisons: ``all`` must all hold, ``any`` needs one to hold."""
    if combine == "all":
        if all(v == "supported" for v in verdicts):
            return "supported"
        return "contradicted" if "contradicted" in verdicts else "inconclusive"
    if "supported" in verdicts:
        return "supported"
    return "contradicted" if all(v == "contradicted" for v in verdicts) else "inconclusive"


def compare(t: ClaimTables, c: dict) -> dict:
    """Variant(s) minus the reference variant, paired by seed; the CI decides.

    With several variants, ``combine`` says how: ``all`` (default) compares each variant
    separately and is supported only if every comparison is, contradicted if any is (effect: the
    mean of the differences, interval: the envelope of the intervals); ``any`` is supported if at
    least one comparison is and contradicted only if all are; ``mean`` averages the variants
    seed by seed and makes a single paired comparison. Variants without runs are skipped and
    named in the detail; if none has runs the claim is not tested.
    """
    ablation, ref = c["ablation"], c["reference"]
    base = run_values(t, c, ablation, ref)
    if base is None:
        return _not_tested(_absent(t, c, ablation, ref))
    variants = _variants(t, c)
    present = {v: s for v in variants if (s := run_values(t, c, ablation, v)) is not None}
    absent = [v for v in variants if v not in present]
    note = f"; no runs of {', '.join(absent)}" if absent else ""
    if not present:
        return _not_tested(_absent(t, c, ablation, ", ".join(variants) or "*"))
    combine = c.get("combine", "all")
    if combine == "mean" or len(present) == 1:
        values = pd.concat(present, axis=1).mean(axis=1, skipna=False)
        d = paired_diff(values, base)
        name = f"{'mean of ' if len(present) > 1 else ''}{', '.join(present)} - {ref}"
        detail = _describe(name, d)
        if len(present) > 1:  # each variant's own difference, so a mean does not hide one
            each = (f"{v} {_signed(paired_diff(s, base).diff)}" for v, s in present.items())
            detail += f" (each: {', '.join(each)})"
        return {
            "effect": d.diff,
            "lo": d.lo,
            "hi": d.hi,
            "verdict": _directional(d.lo, d.hi, c["expect"]),
            "detail": detail + note,
        }
    diffs = {v: paired_diff(s, base) for v, s in present.items()}
    verdicts = [_directional(d.lo, d.hi, c["expect"]) for d in diffs.values()]
    overall = _combined(verdicts, combine)
    parts = [
        f"{_describe(f'{v} - {ref}', d)} ({verdict_})"
        for (v, d), verdict_ in zip(diffs.items(), verdicts, strict=True)
    ]
    return {
        "effect": float(np.mean([d.diff for d in diffs.values()])),
        "lo": float(np.min([d.lo for d in diffs.values()])),
        "hi": float(np.max([d.hi for d in diffs.values()])),
        "verdict": overall,
        "detail": f"{combine}: " + "; ".join(parts) + note,
    }


def near_best(t: ClaimTables, c: dict) -> dict:
    """The variant is at most ``tolerance`` worse than the best other variant (paired by seed).

    The best other variant is the one with the best mean (among ``among`` if given). Supported if
    the whole interval of (variant − best) lies above −tolerance in the good direction,
    contradicted if it lies entirely beyond −tolerance, else inconclusive.
    """
    ablation, variant, tol = c["ablation"], c["variant"], float(c["tolerance"])
    own = run_values(t, c, ablation, variant)
    if own is None:
        return _not_tested(_absent(t, c, ablation, variant))
    found = t.runs.loc[t.runs["ablation"] == ablation, "variant"]
    others = [v for v in (c.get("among") or dict.fromkeys(found)) if v != variant]
    values = {v: s for v in others if (s := run_values(t, c, ablation, v)) is not None}
    means = {v: mean_ci(s).mean for v, s in values.items()}
    means = {v: m for v, m in means.items() if np.isfinite(m)}
    if not means:
        return _not_tested(f"no other variant of {ablation} to compare {variant} with")
    sign = 1.0 if c["expect"] == "higher" else -1.0
    best = max(means, key=lambda v: sign * means[v])
    d = paired_diff(own, values[best])
    # Orient so that positive means "variant better", then test against the tolerance band.
    glo, ghi = sorted((sign * d.lo, sign * d.hi))
    if not (np.isfinite(glo) and np.isfinite(ghi)):
        result = "inconclusive"
    elif glo >= -tol:
        result = "supported"
    elif ghi < -tol:
        result = "contradicted"
    else:
        result = "inconclusive"
    detail = _describe(f"{variant} - best other ({best})", d) + f", tolerance {fmt(tol)}"
    return {"effect": d.diff, "lo": d.lo, "hi": d.hi, "verdict": result, "detail": detail}


def diverges(t: ClaimTables, c: dict) -> dict:
    """Runs at too high a learning rate diverge.

    Looks at the runs with lr > ``lr_above`` or, without it, at the highest learning rate of each
    (ablation, variant) grid, in the tuning table (``source: tuning``, default) or in runs.csv.
    The effect is the fraction that diverged, with its exact (Clopper–Pearson) 95% interval:
    supported if the fraction is at least ``min_fraction`` (default 0.5), contradicted if none
    diverged, else inconclusive.
    """
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
    ci = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
    min_fraction = float(c.get("min_fraction", 0.5))
    result = "supported" if k / n >= min_fraction else "contradicted" if k == 0 else "inconclusive"
    groups = (
        top.groupby(["ablation", "variant"])
        .agg(
            lr=("_lr", "max"),
            k=("status", lambda s: int((s == "diverged").sum())),
            n=("status", "size"),
        )
        .reset_index()
    )
    each = ", ".join(
        f"{g.ablation}/{g.variant} lr {fmt(g.lr)}: {g.k}/{g.n}" for g in groups.itertuples()
    )
    return {
        "effect": k / n,
        "lo": ci.low,
        "hi": ci.high,
        "verdict": result,
        "detail": f"diverged {k}/{n} runs at {scope} ({each}); needs {fmt(min_fraction)}",
    }


def _scope(c: dict) -> str:
    return f" of {c['ablation']}" if c.get("ablation") else ""
