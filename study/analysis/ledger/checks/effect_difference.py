"""Special check: does a technique help more in one setting than in another (a difference of
two paired effects, an interaction of two factors)?

For a statement such as "augmentation helps most with little data": the technique's effect in
the ``small`` setting minus its effect in the ``large`` one, each a variant minus its reference on
the same seed, so every seed gives one difference of differences.
"""

from __future__ import annotations

import pandas as pd

from study.analysis.ledger.kinds import _not_tested, describe, paired_estimate
from study.analysis.ledger.rule import unit_scale
from study.analysis.ledger.values import ClaimTables, run_values


def _effect(t: ClaimTables, c: dict, pair: dict) -> pd.Series | None:
    a = run_values(t, c, c["ablation"], pair["variant"])
    b = run_values(t, c, c["ablation"], pair["reference"])
    if a is None or b is None:
        return None
    return (a - b) * unit_scale(c["unit"])


def effect_difference(t: ClaimTables, c: dict) -> dict:
    """(variant − reference) in ``small`` minus (variant − reference) in ``large``, paired by
    seed, in the claim's unit."""
    small, large = _effect(t, c, c["small"]), _effect(t, c, c["large"])
    if small is None or large is None:
        names = [p[k] for p in (c["small"], c["large"]) for k in ("variant", "reference")]
        return _not_tested(f"no {c['metric']} for every one of {c['ablation']}/{', '.join(names)}")
    est = paired_estimate(small, large, c["unit"])
    s, g = c["small"], c["large"]
    name = f"({s['variant']} - {s['reference']}) - ({g['variant']} - {g['reference']})"
    return {"estimate": est, "test": "difference", "detail": describe(name, est, c["unit"])}


CHECKS = {
    "effect_difference": (
        effect_difference,
        "effect in the small setting - effect in the large one",
    ),
}
