"""How many final seeds a variant runs at a scale, and which."""

from __future__ import annotations

from study.config import ConfigError
from study.planning.search import TUNING_SEED

__all__ = ["final_seeds", "planned_seeds"]


def final_seeds(n: int, plan_cfg, offset: int = 0) -> range:
    """The seeds of a variant's final runs: ``n`` consecutive seeds from the scale's
    ``plan.first_seed`` plus the workflow's ``first_seed`` (a replication's offset, which moves
    the tuning seeds too). A confirmatory study numbers its seeds from a base no earlier study
    used, so none of its numbers was seen before its tests were fixed (docs/preregistration.md)."""
    base = int(plan_cfg.get("first_seed", 0) or 0)
    if base < 0 or base + n > TUNING_SEED:
        raise ConfigError(
            f"plan.first_seed={base} with {n} seeds reaches outside 0..{TUNING_SEED - 1}; "
            f"final seeds must stay below the tuning seeds ({TUNING_SEED} and up): lower it"
        )
    return range(base + offset, base + offset + n)


def planned_seeds(seeds: int, plan_cfg) -> int:
    """Seeds per variant at a scale: the ablation's own number (chosen from the power its claims
    need; see the comment beside ``seeds:`` in each file), raised to the scale's floor
    ``plan.min_seeds`` and capped by ``plan.max_seeds`` (so smoke runs 2, full at least 5)."""
    floor = int(plan_cfg.get("min_seeds", 1) or 1)
    cap = int(plan_cfg.get("max_seeds", seeds) or seeds)
    return min(max(seeds, floor), cap)
