"""Ablation files: load, validate and expand them into the study's runs.

An ablation is a YAML file in ``conf/ablation/``; its name is the file's stem. Everything in it is
checked when the workflow is planned (``snakemake -n``), so a typo never costs a training run:
unknown or misspelled keys, duplicate YAML keys, a baseline that is not a variant, names that are
not plain slugs (they become folder names and HTML), and every variant's overrides, which are
composed with Hydra and validated by :mod:`study.config`.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from study.config import ConfigError, compose, validate
from study.paths import run_folder, tuning_folder

SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
TOP_LEVEL_KEYS = {
    "title": "a one-line title",
    "question": "the question the ablation answers",
    "baseline": "the variant every other variant is compared with",
    "seeds": "how many seeds each variant runs",
    "common": "overrides shared by every variant",
    "variants": "variant name → list of overrides",
    "grid": "override key → list of values; their cartesian product adds variants",
    "tune": "per-variant learning-rate search: {key, factors, metric}",
    "shift": "evaluate the saved models under test-time distribution shift",
    "figures": "extra figures to draw for this ablation",
}
REQUIRED = ("title", "question", "baseline", "seeds")
TUNE_KEYS = {"key", "factors", "metric"}
TUNE_METRICS = ("val_loss", "val_acc")


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


def _overrides(path: Path, value, what: str, variant: str | None = None) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, f"{what} must be a list of 'key=value' strings", variant)
    return list(value)


def _format_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def grid_variants(path: Path, grid) -> dict[str, list[str]]:
    """Cartesian product of override axes, named readably: ``optim-adam_schedule-cosine``."""
    if not isinstance(grid, dict) or not grid:
        raise _fail(path, "grid must be a mapping of override key → list of values")
    axes = []
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _fail(path, f"grid axis {key!r} must be a non-empty list of values")
        axes.append([(key, _format_value(v)) for v in values])
    variants = {}
    for combo in itertools.product(*axes):
        name = "_".join(f"{key.split('.')[-1]}-{value}" for key, value in combo).lower()
        variants[name] = [f"{key}={value}" for key, value in combo]
    return variants


def parse_ablation(path: Path, data) -> Ablation:
    path = Path(path)
    name = path.stem
    if not SLUG.match(name):
        raise _fail(path, f"file name {name!r} is not a slug; rename it to [a-z0-9_.-]")
    if not isinstance(data, dict):
        raise _fail(path, "must be a YAML mapping with keys " + ", ".join(REQUIRED))
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _fail(path, f"unknown key {key!r}{hint} (known: {', '.join(TOP_LEVEL_KEYS)})")
    for key in REQUIRED:
        if key not in data:
            raise _fail(path, f"missing key {key!r} ({TOP_LEVEL_KEYS[key]})")
    for key in ("title", "question", "baseline"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise _fail(path, f"{key} must be a non-empty string")
    seeds = data["seeds"]
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= 100:
        raise _fail(path, f"seeds={seeds!r} must be an integer from 1 to 100")
    common = _overrides(path, data.get("common"), "common")
    variants: dict[str, list[str]] = {}
    raw_variants = data.get("variants") or {}
    if not isinstance(raw_variants, dict):
        raise _fail(path, "variants must be a mapping of variant name → list of overrides")
    for variant, overrides in raw_variants.items():
        variants[str(variant)] = _overrides(path, overrides, "its overrides", str(variant))
    if "grid" in data:
        for variant, overrides in grid_variants(path, data["grid"]).items():
            if variant in variants:
                raise _fail(path, f"grid variant {variant!r} duplicates a listed variant")
            variants[variant] = overrides
    if not variants:
        raise _fail(path, "no variants; add a 'variants' mapping or a 'grid'")
    for variant in variants:
        if not SLUG.match(variant) or variant in (".", ".."):
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
    baseline = data["baseline"]
    if baseline not in variants:
        raise _fail(
            path, f"baseline {baseline!r} is not a variant (variants: {', '.join(variants)})"
        )
    tune = data.get("tune")
    if tune is not None:
        tune = _parse_tune(path, tune)
    shift = data.get("shift", False)
    if not isinstance(shift, bool):
        raise _fail(path, "shift must be true or false")
    figures = data.get("figures") or []
    if not isinstance(figures, list) or not all(isinstance(f, str) for f in figures):
        raise _fail(path, "figures must be a list of figure names")
    return Ablation(
        name=name,
        path=path,
        title=data["title"].strip(),
        question=data["question"].strip(),
        baseline=baseline,
        seeds=seeds,
        common=common,
        variants=variants,
        grid=dict(data.get("grid") or {}),
        tune=tune,
        shift=shift,
        figures=figures,
    )


def _parse_tune(path: Path, tune) -> dict:
    if not isinstance(tune, dict) or set(tune) - TUNE_KEYS:
        raise _fail(path, f"tune must be a mapping with keys {sorted(TUNE_KEYS)}")
    factors = tune.get("factors")
    if (
        not isinstance(factors, list)
        or len(factors) < 2
        or not all(isinstance(f, (int, float)) and math.isfinite(f) and f > 0 for f in factors)
    ):
        raise _fail(path, "tune.factors must be a list of at least two positive numbers")
    metric = tune.get("metric", "val_loss")
    if metric not in TUNE_METRICS:
        raise _fail(path, f"tune.metric={metric!r}; use one of {', '.join(TUNE_METRICS)}")
    key = tune.get("key", "optim.lr")
    if key != "optim.lr":
        raise _fail(path, f"tune.key={key!r}; only optim.lr can be tuned")
    return {"key": key, "factors": sorted(float(f) for f in factors), "metric": metric}


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
        seeds = min(ablation.seeds, int(cfg.plan.max_seeds))
        for seed in range(seeds):
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
