"""The claim kind ``interaction``: does one factor's effect depend on another's level?

A grid of two factors (the optimizer × schedule ablation) asks a question no comparison with one
corner answers: does the best schedule depend on the optimizer? For each level of the first
factor (an optimizer) the claim declares the pair of cells whose difference is the second
factor's effect there (cosine minus constant, paired by seed); the interaction is the difference
of those effects between two levels, again paired by seed (seed k trains every cell on the same
split, initialization and batch order).

Why the largest difference of effects, and not a test of heterogeneity across all levels: the
question is answered by two optimizers whose schedule effects differ, and that difference has a
unit (pp) that can be held against the claim's margin; an F statistic has none. With k levels
there are k(k-1)/2 such differences, so the one judged is Bonferroni-corrected within the claim
(its p times the number of pairs, its interval at 1 - 0.05/pairs) before the ledger's own
correction. The negation ("does not depend") needs every difference inside ±margin: when all
pairs' intervals lie inside it, the pair reaching farthest is the one judged, so "no meaningful
effect" can only come from the least favourable pair.
"""

from __future__ import annotations

import itertools
import math

import pandas as pd

from study.analysis.ledger.kinds import _absent, _not_tested, _scaled, _signed, describe
from study.analysis.ledger.rule import Estimate
from study.analysis.stats import fmt, mean_ci, paired_diff


def level_effects(t, c: dict) -> tuple[dict[str, pd.Series], list[str]]:
    """Each level's effect per seed (variant minus reference, claim unit) and what is missing."""
    effects, missing = {}, []
    for level, (ref, variant) in c["effects"].items():
        base, other = (_scaled(t, c, c["ablation"], v) for v in (ref, variant))
        if base is None or other is None:
            missing.append(_absent(t, c, c["ablation"], ref if base is None else variant))
            continue
        effects[level] = (other - base).dropna()
    return effects, missing


def _reach(d) -> float:
    """How far a difference's interval reaches from 0."""
    return max(abs(d.lo), abs(d.hi)) if math.isfinite(d.lo) else math.inf


def interaction(t, c: dict) -> dict:
    """The largest difference between two levels' effects, Bonferroni-corrected over the pairs;
    see the module docstring for why and for how the negation is judged."""
    effects, missing = level_effects(t, c)
    if len(effects) < 2:
        return _not_tested("; ".join(missing) or "fewer than two levels with both cells")
    unit, margin = c["unit"], float(c["margin"])
    pairs = list(itertools.combinations(effects, 2))
    level = 1 - 0.05 / len(pairs)
    diffs = {}
    for a, b in pairs:
        d = paired_diff(effects[a], effects[b], level=level)
        if d.n and d.diff < 0:  # oriented so the judged difference is the larger effect first
            a, b = b, a
            d = paired_diff(effects[a], effects[b], level=level)
        diffs[(a, b)] = d
    finite = {k: d for k, d in diffs.items() if math.isfinite(d.diff)}
    if not finite:
        return _not_tested("no seed with all four cells of any two levels")
    inside = {k: paired_diff(effects[k[0]], effects[k[1]], level=0.90) for k in finite}
    if all(math.isfinite(d.lo) and -margin < d.lo and d.hi < margin for d in inside.values()):
        chosen = max(finite, key=lambda k: _reach(inside[k]))
    else:
        chosen = max(finite, key=lambda k: abs(finite[k].diff))
    d = finite[chosen]
    p = min(1.0, d.p * len(pairs)) if math.isfinite(d.p) else d.p
    est = Estimate(d.diff, d.lo, d.hi, p, d.n, d.sd)
    each = ", ".join(
        f"{lv} {_signed(m.mean)} [{fmt(m.lo)}, {fmt(m.hi)}]"
        for lv, m in ((lv, mean_ci(e.to_numpy(float))) for lv, e in effects.items())
    )
    name = f"({chosen[0]} effect) - ({chosen[1]} effect)"
    detail = (
        describe(name, est, unit)
        + f", {fmt(100 * level, 3)}% interval and p Bonferroni-corrected over {len(pairs)} pairs"
        + f"; each level's effect: {each}"
        + (f"; {'; '.join(missing)}" if missing else "")
    )
    return {"estimate": est, "test": "difference", "detail": detail}
