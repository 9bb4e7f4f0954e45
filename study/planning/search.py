"""The hyperparameter search of an ablation's ``tune`` block, expanded into tuning runs.

Any config key can be searched, so every technique gets the same treatment: the learning rate of
each optimizer, the strength of each regularizer. The block names a default search for every
variant and per-variant ones::

    tune:
      key: optim.lr            # the default search: this key, at the variant's value × factors
      factors: [0.1, 1, 10]
      metric: val_loss         # selected on the validation split, never the test split
      seeds: 1                 # tuning seeds from TUNING_SEED (final runs: plan.first_seed and up)
      last: 3                  # the score is the metric's mean over the last 3 epochs
      variants:                # a variant's own search replaces the default; null: not tuned
        dropout: {key: model.dropout, values: [0.1, 0.3, 0.5]}
        none: null

``factors`` multiply the variant's composed value; ``values`` are taken as they are. Tuning runs
use seeds TUNING_SEED, TUNING_SEED + 1, ... (shifted by the workflow's ``first_seed``, as the
final runs are): no final run reuses a seed its selection was made on, so a lucky tuning draw does
not carry over into the reported result (the winner's curse).
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from study.paths import tuning_folder

TUNING_SEED = 1000


@dataclass(frozen=True)
class Search:
    """One variant's search: ``key`` at ``factors`` × its value, or at ``values``."""

    key: str
    factors: tuple[float, ...] = ()
    values: tuple[float, ...] = ()

    def points(self, cfg: DictConfig, n: int | None) -> list[float]:
        """The grid for a composed config, ``n`` points spread over it (all when None)."""
        if self.values:
            grid = sorted(self.values)
        else:
            start = OmegaConf.select(cfg, self.key)
            grid = sorted(float(f"{start * f:.3g}") for f in self.factors)
        return spread(grid, n)


@dataclass(frozen=True)
class TuningRun:
    ablation: str
    variant: str
    level: str  # folder name of the grid point, e.g. lr-0.001 or dropout-0.3
    overrides: tuple[str, ...]
    value: float
    key: str = "optim.lr"
    seed: int = 0
    dataset: str = "fashion_mnist"
    data_root: str = "resources/fashion-mnist"
    device: str = "auto"

    @property
    def folder(self) -> str:
        return tuning_folder(self.ablation, self.variant, self.level, self.seed)


def spread(values: list, n: int | None) -> list:
    """``n`` points spread evenly over ``values``, both ends included (all of them if n is None)."""
    if n is None or n >= len(values):
        return list(values)
    if n == 1:
        return [values[len(values) // 2]]
    return [values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)]


def level_name(key: str, value: float) -> str:
    """The grid point's folder name: the key's last part and the value, ``lr-0.001``."""
    return f"{key.split('.')[-1]}-{value:.3g}"


def _search(block: dict | None) -> Search | None:
    if block is None or ("factors" not in block and "values" not in block):
        return None
    return Search(
        block.get("key", "optim.lr"),
        tuple(float(f) for f in block.get("factors") or ()),
        tuple(block.get("values") or ()),
    )


def parse_tune(tune: dict | None, variants: list[str]) -> dict | None:
    """The ``tune`` block with defaults filled in and each variant's search resolved."""
    if tune is None:
        return None
    default = _search(tune)
    own = tune.get("variants") or {}
    searches = {v: _search(own[v]) if v in own else default for v in variants}
    return {
        "key": tune.get("key", "optim.lr"),
        "metric": tune.get("metric", "val_loss"),
        "seeds": int(tune.get("seeds", 1)),
        "last": int(tune.get("last", 3)),
        "searches": {v: s for v, s in searches.items() if s is not None},
    }


def tuning_runs(
    ablation, variant: str, full: list[str], cfg: DictConfig, where: dict, first_seed: int = 0
) -> list:
    """The tuning runs of one variant (none when it has no search). Their seeds start at
    TUNING_SEED + ``first_seed``: final runs (at most 100 seeds from ``first_seed``) never reach
    them."""
    search = (ablation.tune or {}).get("searches", {}).get(variant)
    if search is None:
        return []
    first = TUNING_SEED + first_seed
    seeds = range(first, first + min(ablation.tune["seeds"], int(cfg.plan.max_seeds)))
    runs = []
    for value in search.points(cfg, cfg.plan.tune_points):
        override = f"{search.key}={value}"
        for seed in seeds:
            runs.append(
                TuningRun(
                    ablation.name,
                    variant,
                    level_name(search.key, value),
                    (*full, override),
                    value,
                    search.key,
                    seed,
                    **where,
                )
            )
    return runs
