"""Ablation files: read and validate one YAML file of ``conf/ablation/`` into an :class:`Ablation`.

An ablation's name is its file's stem. Its keys and their types are checked against
``schemas/ablation.schema.yaml`` (:mod:`study.schemas`), then here what a schema cannot express:
duplicate YAML keys, a baseline that is not a variant, grid variants whose names are not plain
slugs (they become folder names and HTML) or repeat another, names in ``compare``, ``tune``,
``seeds_by_variant`` and ``shift`` that are not variants. Composing each variant's overrides and
expanding the file into runs is :mod:`study.planning.ablation`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from study.planning.search import parse_tune
from study.planning.yaml_file import YamlFileError, read_yaml
from study.schemas import DocumentError, validate_document

# Names become folder names and HTML ids (the schema holds the same pattern for listed variants).
SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# A variant's name is one folder name of its runs and the start of its batch jobs' log names
# (rules/common.smk, batch_log), which add at most a level, a seed and a count: 128 characters
# leave those well within the file system's 255 per name.
MAX_NAME = 128


class AblationError(ValueError):
    """A malformed ablation file; the message starts with the file (and variant) at fault."""


@dataclass(frozen=True)
class Comparison:
    """``variant`` measured against ``reference``; ``factor``: the keys they may differ in (None:
    inferred, see study/planning/comparisons.py)."""

    reference: str
    variant: str
    factor: tuple[str, ...] | None = None


@dataclass
class Ablation:
    name: str
    path: Path
    title: str
    question: str
    baseline: str
    seeds: int
    common: list[str] = field(default_factory=list)
    # Variants whose claims need another number of seeds than ``seeds`` (see each file's comment).
    seeds_by_variant: dict[str, int] = field(default_factory=dict)
    variants: dict[str, list[str]] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    tune: dict | None = None
    # The variants whose saved models are also scored under test-time shift (all of them for
    # ``shift: true``, none for false): each is a full pass over the shifted test sets per run.
    shift: tuple[str, ...] = ()
    figures: list[str] = field(default_factory=list)
    compare: list[Comparison] = field(default_factory=list)
    scales: list[str] | None = None  # the scales it runs at (None: every scale)
    scales_reason: str = ""  # why not at the others (the report states it there)
    # {ablation, by}: tuned values come from that ablation's selection (see tuned_source)
    tuned_from: dict | None = None


def comparisons(ablation: Ablation) -> list[tuple[str, str]]:
    """The (reference, variant) pairs the ablation supports, in file order.

    From its ``compare`` list, or every variant against the baseline when the file has none. The
    plan has checked that each pair differs in one factor only, so tables, figures and claims
    that compare through this function report no confounded difference."""
    return [(c.reference, c.variant) for c in ablation.compare]


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def ablation_error(path: Path, message: str, variant: str | None = None) -> AblationError:
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
    """Grid and listed variants (the grid first: listed ones complete it), refused when one is
    empty, a non-slug or a repeat."""
    variants = grid_variants(path, data["grid"]) if "grid" in data else {}
    for variant, overrides in (data.get("variants") or {}).items():
        if str(variant) in variants:
            raise ablation_error(path, f"grid variant {variant!r} duplicates a listed variant")
        variants[str(variant)] = list(overrides or [])
    if not variants:
        raise ablation_error(path, "no variants; add a 'variants' mapping or a 'grid'")
    for variant in variants:  # grid values become names too, so the schema alone cannot tell
        if len(variant) > MAX_NAME:
            raise ablation_error(
                path, f"variant name {variant[:40]!r}... has {len(variant)} characters; shorten "
                f"it to at most {MAX_NAME}"
            )  # fmt: skip
        if not SLUG.match(variant):
            raise ablation_error(
                path, f"variant name {variant!r} is not a slug; use lowercase [a-z0-9_.-] only"
            )
    seen: dict[tuple, str] = {}
    for variant, overrides in variants.items():
        key = tuple(sorted(overrides))
        if key in seen:
            raise ablation_error(
                path, f"same overrides as variant {seen[key]!r}; remove one of them", variant
            )
        seen[key] = variant
    return variants


def parse_ablation(path: Path, data) -> Ablation:
    """Check ``data`` against schemas/ablation.schema.yaml, then what a schema cannot say."""
    path = Path(path)
    name = path.stem
    if not SLUG.match(name):
        raise ablation_error(path, f"file name {name!r} is not a slug; rename it to [a-z0-9_.-]")
    try:
        validate_document(data, "ablation", path)
    except DocumentError as err:
        raise AblationError(str(err)) from None
    variants = _variants(path, data)
    baseline = data["baseline"]
    if baseline not in variants:
        raise ablation_error(
            path, f"baseline {baseline!r} is not a variant (variants: {', '.join(variants)})"
        )
    tune = data.get("tune")
    unknown = sorted(set((tune or {}).get("variants") or {}) - set(variants))
    if unknown:
        raise ablation_error(
            path, f"tune.variants names {unknown}, which are not variants; fix the names"
        )
    tune = parse_tune(tune, list(variants))
    seeds_by_variant = dict(data.get("seeds_by_variant") or {})
    unknown = sorted(set(seeds_by_variant) - set(variants))
    if unknown:
        raise ablation_error(
            path, f"seeds_by_variant names {unknown}, which are not variants; fix the names"
        )
    if tune is not None and data.get("tuned_from"):
        raise ablation_error(path, "has both tune and tuned_from; keep one source of tuned values")
    return Ablation(
        name=name,
        path=path,
        title=data["title"].strip(),
        question=data["question"].strip(),
        baseline=baseline,
        seeds=data["seeds"],
        seeds_by_variant=seeds_by_variant,
        common=list(data.get("common") or []),
        variants=variants,
        grid=dict(data.get("grid") or {}),
        tune=tune,
        shift=_shifted_variants(path, data.get("shift", False), variants),
        figures=list(data.get("figures") or []),
        compare=_comparisons(path, data.get("compare"), variants, baseline),
        scales=data.get("scales"),
        scales_reason=" ".join(str(data.get("scales_reason") or "").split()),
        tuned_from=data.get("tuned_from"),
    )


def _shifted_variants(path: Path, shift, variants: dict) -> tuple[str, ...]:
    """``shift: true`` scores every variant under shift, a list only the variants it names."""
    if shift is True:
        return tuple(variants)
    if not shift:
        return ()
    unknown = sorted(set(shift) - set(variants))
    if unknown:
        raise ablation_error(path, f"shift names {unknown}, which are not variants; fix the names")
    return tuple(v for v in variants if v in shift)


def _comparisons(path: Path, compare, variants: dict, baseline: str) -> list[Comparison]:
    """The ``compare`` entries as pairs: ``[ref, a, b]`` gives (ref, a) and (ref, b)."""
    if compare is None:
        return [Comparison(baseline, v) for v in variants if v != baseline]
    pairs, seen = [], set()
    for entry in compare:
        group = entry["variants"] if isinstance(entry, dict) else entry
        factor = tuple(entry["factor"]) if isinstance(entry, dict) else None
        for name in group:
            if name not in variants:
                raise ablation_error(
                    path, f"compare names {name!r}, which is not a variant; fix the name"
                )
        reference = group[0]
        # A variant may have several references (batch 512 at the scaled rate against batch 512
        # at the old rate and against batch 128), each pair checked for one factor on its own.
        for variant in group[1:]:
            if variant == reference or (reference, variant) in seen:
                raise ablation_error(
                    path,
                    f"compare measures {variant!r} against {reference!r} "
                    f"{'twice' if variant != reference else 'itself'}; list each pair once",
                )
            seen.add((reference, variant))
            pairs.append(Comparison(reference, variant, factor))
    return pairs


def load_ablation(path: str | Path) -> Ablation:
    """Read and check one ablation file's structure (overrides are checked by :func:`plan`)."""
    try:
        data = read_yaml(Path(path))
    except YamlFileError as err:
        raise AblationError(str(err)) from None
    return parse_ablation(Path(path), data)


def load_ablations(directory: str | Path) -> dict[str, Ablation]:
    files = sorted(Path(directory).glob("*.yaml")) + sorted(Path(directory).glob("*.yml"))
    ablations = {}
    for path in files:
        ablation = load_ablation(path)
        if ablation.name in ablations:
            raise ablation_error(path, f"two files define ablation {ablation.name!r}; rename one")
        ablations[ablation.name] = ablation
    return ablations
