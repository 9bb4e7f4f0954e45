"""Ablation files: load, validate and expand them into the study's runs.

An ablation is a YAML file in ``conf/ablation/``; its name is the file's stem. Everything in it is
checked when the workflow is planned (``snakemake -n``), so a typo never costs a training run: its
keys and their types against ``schemas/ablation.schema.yaml`` (:mod:`study.schemas`), then here
what a schema cannot express: duplicate YAML keys, a baseline that is not a variant, grid
variants whose names are not plain slugs (they become folder names and HTML) or repeat another,
and every variant's overrides, which are composed with Hydra and validated by :mod:`study.config`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from study.config import ConfigError, compose, validate
from study.paths import run_folder, tuning_folder
from study.schemas import DocumentError, validate_document

# Names become folder names and HTML ids (the schema holds the same pattern for listed variants).
SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class AblationError(ValueError):
    """A malformed ablation file; the message starts with the file (and variant) at fault."""


@dataclass
class Ablation:
    name: str
    path: Path
    title: str
    question: str
    baseline: str
    seeds: int
    common: list[str] = field(default_factory=list)
    variants: dict[str, list[str]] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    tune: dict | None = None
    shift: bool = False
    figures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    """One training run: a variant of an ablation at one seed."""

    ablation: str
    variant: str
    seed: int
    overrides: tuple[str, ...]
    tuned: bool  # its learning rate comes from the ablation's tuning selection
    dataset: str = "fashion_mnist"
    data_root: str = "resources/fashion-mnist"
    device: str = "auto"

    @property
    def folder(self) -> str:
        return run_folder(self.ablation, self.variant, self.seed)


@dataclass(frozen=True)
class TuningRun:
    ablation: str
    variant: str
    level: str  # folder name of the grid point, e.g. lr-0.001
    overrides: tuple[str, ...]
    lr: float
    dataset: str = "fashion_mnist"
    data_root: str = "resources/fashion-mnist"
    device: str = "auto"

    @property
    def folder(self) -> str:
        return tuning_folder(self.ablation, self.variant, self.level)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loading that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise AblationError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path):
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise AblationError(f"{path}: cannot read ({err.strerror})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except AblationError as err:
        raise AblationError(f"{path}: {err}; keep one") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise AblationError(f"{path}: YAML does not parse{where}: {problem}") from None


def _fail(path: Path, message: str, variant: str | None = None) -> AblationError:
    where = f"{path} (variant {variant!r})" if variant else str(path)
    return AblationError(f"{where}: {message}")


def _format_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def grid_variants(path: Path, grid: dict[str, list]) -> dict[str, list[str]]:
    """Cartesian product of override axes, named readably: ``optim-adam_schedule-cosine``.

    ``grid`` is already checked against the schema: a mapping of key → non-empty list."""
    axes = [[(key, _format_value(v)) for v in values] for key, values in grid.items()]
    variants = {}
    for combo in itertools.product(*axes):
        name = "_".join(f"{key.split('.')[-1]}-{value}" for key, value in combo).lower()
        variants[name] = [f"{key}={value}" for key, value in combo]
    return variants


def _variants(path: Path, data: dict) -> dict[str, list[str]]:
    """Listed and grid variants, refused when one is empty, a non-slug or a repeat."""
    variants = {str(v): list(o or []) for v, o in (data.get("variants") or {}).items()}
    grid = grid_variants(path, data["grid"]) if "grid" in data else {}
    for variant, overrides in grid.items():
        if variant in variants:
            raise _fail(path, f"grid variant {variant!r} duplicates a listed variant")
        variants[variant] = overrides
    if not variants:
        raise _fail(path, "no variants; add a 'variants' mapping or a 'grid'")
    for variant in variants:  # grid values become names too, so the schema alone cannot tell
        if not SLUG.match(variant):
            raise _fail(
                path, f"variant name {variant!r} is not a slug; use lowercase [a-z0-9_.-] only"
            )
    seen: dict[tuple, str] = {}
    for variant, overrides in variants.items():
        key = tuple(sorted(overrides))
        if key in seen:
            raise _fail(
                path, f"same overrides as variant {seen[key]!r}; remove one of them", variant
            )
        seen[key] = variant
    return variants


def parse_ablation(path: Path, data) -> Ablation:
    """Check ``data`` against schemas/ablation.schema.yaml, then what a schema cannot say."""
    path = Path(path)
    name = path.stem
    if not SLUG.match(name):
        raise _fail(path, f"file name {name!r} is not a slug; rename it to [a-z0-9_.-]")
    try:
        validate_document(data, "ablation", path)
    except DocumentError as err:
        raise AblationError(str(err)) from None
    variants = _variants(path, data)
    baseline = data["baseline"]
    if baseline not in variants:
        raise _fail(
            path, f"baseline {baseline!r} is not a variant (variants: {', '.join(variants)})"
        )
    tune = data.get("tune")
    if tune is not None:
        tune = {
            "key": tune.get("key", "optim.lr"),
            "factors": sorted(float(f) for f in tune["factors"]),
            "metric": tune.get("metric", "val_loss"),
        }
    return Ablation(
        name=name,
        path=path,
        title=data["title"].strip(),
        question=data["question"].strip(),
        baseline=baseline,
        seeds=data["seeds"],
        common=list(data.get("common") or []),
        variants=variants,
        grid=dict(data.get("grid") or {}),
        tune=tune,
        shift=data.get("shift", False),
        figures=list(data.get("figures") or []),
    )


def load_ablation(path: str | Path) -> Ablation:
    """Read and check one ablation file's structure (overrides are checked by :func:`plan`)."""
    return parse_ablation(Path(path), read_yaml(Path(path)))


def load_ablations(directory: str | Path) -> dict[str, Ablation]:
    files = sorted(Path(directory).glob("*.yaml")) + sorted(Path(directory).glob("*.yml"))
    ablations = {}
    for path in files:
        ablation = load_ablation(path)
        if ablation.name in ablations:
            raise _fail(path, f"two files define ablation {ablation.name!r}; rename one")
        ablations[ablation.name] = ablation
    return ablations


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


def spread(values: list, n: int | None) -> list:
    """``n`` points spread evenly over ``values``, both ends included (all of them if n is None)."""
    if n is None or n >= len(values):
        return list(values)
    if n == 1:
        return [values[len(values) // 2]]
    return [values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)]


def lr_level(lr: float) -> str:
    return f"lr-{lr:.3g}"


def planned_seeds(seeds: int, plan_cfg) -> int:
    """Seeds per variant at a scale: the ablation's own number (chosen from the power its claims
    need; see the comment beside ``seeds:`` in each file), raised to the scale's floor
    ``plan.min_seeds`` and capped by ``plan.max_seeds`` (so smoke runs 2, full at least 5)."""
    floor = int(plan_cfg.get("min_seeds", 1) or 1)
    cap = int(plan_cfg.get("max_seeds", seeds) or seeds)
    return min(max(seeds, floor), cap)


def plan_ablation(ablation: Ablation, scale: str) -> tuple[list[Run], list[TuningRun]]:
    runs, tuning = [], []
    for variant, overrides in ablation.variants.items():
        full = [f"scale={scale}", *ablation.common, *overrides]
        try:
            cfg = compose(full)
            validate(cfg)
        except ConfigError as err:
            raise _fail(ablation.path, str(err), variant) from None
        where = {"dataset": cfg.data.name, "data_root": cfg.data.root, "device": cfg.device}
        for seed in range(planned_seeds(ablation.seeds, cfg.plan)):
            runs.append(
                Run(ablation.name, variant, seed, tuple(full), ablation.tune is not None, **where)
            )
        if ablation.tune:
            factors = spread(ablation.tune["factors"], cfg.plan.tune_points)
            for factor in factors:
                lr = float(f"{cfg.optim.lr * factor:.3g}")
                tuning.append(
                    TuningRun(
                        ablation.name,
                        variant,
                        lr_level(lr),
                        (*full, f"optim.lr={lr}"),
                        lr,
                        **where,
                    )
                )
    return runs, tuning


def plan(ablation_dir: str | Path, scale: str) -> Plan:
    """Every run of the study at ``scale``; AblationError on the first bad file or variant."""
    ablations = load_ablations(ablation_dir)
    if not ablations:
        raise AblationError(f"{ablation_dir}: no ablation files (*.yaml); add one")
    runs, tuning = [], []
    for ablation in ablations.values():
        r, t = plan_ablation(ablation, scale)
        runs += r
        tuning += t
    return Plan(scale, ablations, runs, tuning)
