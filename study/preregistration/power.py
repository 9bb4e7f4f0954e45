"""Seeds chosen a priori: from the exploration's paired spread and each claim's margin only.

The exploration's ledger (claims.csv of an earlier study on other seeds) gives, for every paired
claim, the seeds it ran and the smallest effect they detect with 80% power; the paired standard
deviation follows from the two (the ledger computes the one from the other with the paired
t-test's power, study.analysis.power). The seeds a claim needs are then those with which its own
test reaches 80% power at its margin: a difference of the margin itself for a directional claim,
and a true difference of zero for an equivalence or non-inferiority claim. The observed effect
and p-value are never read.

A pilot's sd is itself an estimate from a few seeds, and planning on it falls short of the power
about half the time (a claim whose pilot happened to be calm gets too few seeds). The seeds are
therefore planned on the sd's one-sided 80% upper confidence limit (chi-square on n - 1 degrees
of freedom), a standard inflation for pilot-based sample sizes.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats as sps

from study.analysis import power

POWER = 0.8
ALPHA = 0.05
MAX_SEEDS_SEARCHED = 60


def pilot_sd(n: float, detectable_effect: float) -> float:
    """Paired sd of a pilot claim from its seeds and its detectable effect (claim unit)."""
    if not (math.isfinite(n) and n >= 2 and math.isfinite(detectable_effect)):
        return math.nan
    unit = power.detectable_effect(int(n), 1.0)
    return detectable_effect / unit if unit > 0 else math.nan


SD_CONFIDENCE = 0.8


def planning_sd(sd: float, n: int) -> float:
    """The upper SD_CONFIDENCE confidence limit of a pilot sd estimated from ``n`` pairs."""
    if not math.isfinite(sd) or n < 2:
        return math.nan
    return sd * math.sqrt((n - 1) / float(sps.chi2.ppf(1 - SD_CONFIDENCE, n - 1)))


def seeds_for(test: str, margin: float, sd: float) -> int | None:
    """Fewest seeds giving 80% power at the margin for the claim's test; None when no pilot
    spread exists or more than MAX_SEEDS_SEARCHED would be needed."""
    if not math.isfinite(sd):
        return None
    if test == "difference":
        return power.seeds_needed(margin, sd, ALPHA, POWER, MAX_SEEDS_SEARCHED)
    if test == "noninferiority":
        # one-sided test against the margin, at a true difference of zero
        return power.seeds_needed(margin, sd, ALPHA, POWER, MAX_SEEDS_SEARCHED, two_sided=False)
    if test == "equivalence":
        # TOST at a true difference of zero: both one-sided tests must reject; each at 90% power
        # keeps the pair at 80% or more
        return power.seeds_needed(margin, sd, ALPHA, 0.9, MAX_SEEDS_SEARCHED, two_sided=False)
    return None  # threshold and special tests are powered by their own design (their note says)


def detectable_at(n: int, sd: float) -> float:
    return power.detectable_effect(n, sd) if n >= 2 and math.isfinite(sd) else math.nan


def plan_claim(row: pd.Series | None, test: str, margin: float) -> dict:
    """The pilot's spread and the seeds the claim needs; row is the claim's exploration row."""
    if row is None:
        return {"pilot_sd": None, "pilot_seeds": None, "seeds_needed": None}
    n = float(row.get("seeds", math.nan))
    sd = pilot_sd(n, float(row.get("detectable_effect", math.nan)))
    if not math.isfinite(sd) or sd == 0:  # no spread measured: nothing to plan on
        return {"pilot_sd": None, "pilot_seeds": None, "seeds_needed": None}
    upper = planning_sd(sd, int(n))
    need = seeds_for(test, margin, upper)
    return {
        "pilot_sd": float(f"{sd:.4g}"),
        "planning_sd": float(f"{upper:.4g}"),
        "pilot_seeds": None if pd.isna(row.get("seeds")) else int(row["seeds"]),
        "seeds_needed": need,
    }
