"""Ablations planned: every variant's overrides composed and checked, then expanded into runs.

An ablation is a YAML file in ``conf/ablation/`` (read and validated by
:mod:`study.planning.ablation_file`). Everything is checked when the workflow is planned
(``snakemake -n``), so a typo never costs a training run: every variant's overrides are composed
with Hydra and validated by :mod:`study.config`, and each declared comparison must differ in one
factor of the composed configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from study.components.norms import effective_settings
from study.config import ConfigError, compose, validate
from study.paths import run_folder
from study.planning.ablation_file import (
    Ablation,
    AblationError,
    Comparison,
    ablation_error,
    comparisons,
    grid_variants,
    load_ablation,
    load_ablations,
)
from study.planning.comparisons import (
    confound,
    differing_keys,
    flat,
    shared_setting_differences,
)
from study.planning.search import TuningRun, spread, tuning_runs
from study.planning.seeds import final_seeds, planned_seeds

__all__ = [
    "Ablation",
    "AblationError",
    "Comparison",
    "Plan",
    "Run",
    "TuningRun",
    "comparisons",
    "grid_variants",
    "load_ablation",
    "load_ablations",
    "plan",
    "spread",
]


@dataclass(frozen=True)
class Run:
    """One training run: a variant of an ablation at one seed."""

    ablation: str
    variant: str
    seed: int
    overrides: tuple[str, ...]
    tuned: bool  # a hyperparameter comes from a tuning selection
    dataset: str = "fashion_mnist"
    data_root: str = "resources/fashion-mnist"
    device: str = "auto"
    # (ablation, variant) of the selection entry it takes: its own, or another ablation's
    selection: tuple[str, str] | None = None

    @property
    def folder(self) -> str:
        return run_folder(self.ablation, self.variant, self.seed)


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


@dataclass
class Plan:
    scale: str
    ablations: dict[str, Ablation]
    runs: list[Run]
    tuning: list[TuningRun]

    def runs_of(self, ablation: str) -> list[Run]:
        return [r for r in self.runs if r.ablation == ablation]


def _composed(ablation: Ablation, scale: str) -> dict[str, tuple[list[str], object]]:
    """Each variant's overrides and composed, validated config."""
    out = {}
    for variant, overrides in ablation.variants.items():
        full = [f"scale={scale}", *ablation.common, *overrides]
        try:
            cfg = compose(full)
            validate(cfg)
        except ConfigError as err:
            raise ablation_error(ablation.path, str(err), variant) from None
        out[variant] = (full, cfg)
    return out


def check_comparisons(ablation: Ablation, configs: dict[str, object]) -> None:
    """Refuse a comparison whose composed configs differ in more than its one factor."""
    flats = {v: flat(cfg) for v, cfg in configs.items()}
    norms = {v: effective_settings(cfg.model) for v, cfg in configs.items()}
    for c in ablation.compare:
        keys = differing_keys(flats[c.reference], flats[c.variant])
        keys += shared_setting_differences(norms[c.reference], norms[c.variant])
        why = confound(keys, c.factor)
        if why:
            raise ablation_error(
                ablation.path,
                f"comparison {c.reference} vs {c.variant} {why}; make the two variants differ in "
                "one technique, declare its factor keys, or drop the pair from compare",
            )


def runs_here(ablation: Ablation, scale: str) -> bool:
    """Whether the ablation runs at ``scale``: its ``scales`` name it, or the scale whose plan
    this one runs (``run.plan_as``: full_tiny runs full's ablations at a tiny size)."""
    if ablation.scales is None or scale in ablation.scales:
        return True
    return compose([f"scale={scale}"]).run.plan_as in ablation.scales


def tuned_source(
    ablation: Ablation, variant: str, cfg, ablations: dict[str, Ablation], scale: str
) -> tuple[str, str] | None:
    """The selection entry (ablation, variant) a variant takes its tuned value from: its own
    search, or with ``tuned_from`` the source ablation's variant named by the value of ``by``
    (the same tuning budget reused, instead of tuning every cell of a grid again)."""
    if variant in (ablation.tune or {}).get("searches", {}):
        return ablation.name, variant
    if not ablation.tuned_from:
        return None
    name, by = ablation.tuned_from["ablation"], ablation.tuned_from["by"]
    source = ablations.get(name)
    if source is None or not source.tune or not runs_here(source, scale):
        raise ablation_error(
            ablation.path,
            f"tuned_from names ablation {name!r}, which has no tune block running at scale "
            f"{scale!r}; name one that has",
        )
    entry = str(OmegaConf.select(cfg, by))
    if entry not in source.tune["searches"]:
        raise ablation_error(
            ablation.path,
            f"tuned_from: {by}={entry} names no tuned variant of {name!r} (tuned: "
            f"{', '.join(source.tune['searches'])}); tune it there or change {by}",
            variant,
        )
    return name, entry


def plan_ablation(
    ablation: Ablation,
    scale: str,
    ablations: dict[str, Ablation] | None = None,
    first_seed: int = 0,
) -> tuple[list[Run], list[TuningRun]]:
    """The final and tuning runs of ``ablation``; final seeds numbered by :func:`final_seeds`."""
    composed = _composed(ablation, scale)
    check_comparisons(ablation, {v: cfg for v, (_, cfg) in composed.items()})
    if not runs_here(ablation, scale):
        return [], []  # a full-scale-only ablation: checked, but not run at this scale
    runs, tuning = [], []
    for variant, (full, cfg) in composed.items():
        where = {"dataset": cfg.data.name, "data_root": cfg.data.root, "device": cfg.device}
        seeds = planned_seeds(ablation.seeds_by_variant.get(variant, ablation.seeds), cfg.plan)
        source = tuned_source(ablation, variant, cfg, ablations or {}, scale)
        runs += [
            Run(ablation.name, variant, s, tuple(full), source is not None, **where,
                selection=source)
            for s in final_seeds(seeds, cfg.plan, first_seed)
        ]  # fmt: skip
        tuning += tuning_runs(ablation, variant, full, cfg, where, first_seed)
    return runs, tuning


def plan(ablation_dir: str | Path, scale: str, first_seed: int = 0) -> Plan:
    """Every run of the study at ``scale``, final runs' seeds numbered from ``first_seed``;
    AblationError on the first bad file or variant."""
    ablations = load_ablations(ablation_dir)
    if not ablations:
        raise AblationError(f"{ablation_dir}: no ablation files (*.yaml); add one")
    runs, tuning = [], []
    for ablation in ablations.values():
        r, t = plan_ablation(ablation, scale, ablations, first_seed)
        runs += r
        tuning += t
    # An ablation restricted to other scales is checked above but gets no tables or figures here.
    here = {n: a for n, a in ablations.items() if runs_here(a, scale)}
    return Plan(scale, here, runs, tuning)
