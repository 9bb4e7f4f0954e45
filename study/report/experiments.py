"""The paper's method and the results that are not one ablation's table: the setup of each ablation
from its runs' resolved configs, the test-time shifts as conf/shift.yaml defines them, the
class-prior shift results and the second-order scaling experiment."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import yaml

from study import contracts
from study.analysis.stats import mean_ci
from study.paths import STUDY_ROOT, ScaleDir
from study.report.formatting import count, fmt, interval, pct

SHIFT_SETTINGS = STUDY_ROOT / "conf" / "shift.yaml"

# What each corruption's parameter is (the values per severity come from the shift table).
CORRUPTION_PARAMETERS = {
    "gaussian_noise": "standard deviation of added Gaussian noise (pixel range 0–1)",
    "brightness": "offset added to every pixel before clipping",
    "contrast": "factor scaling each pixel's distance to the image mean",
    "blur": "Gaussian blur sigma in pixels",
    "pixelate": "side in pixels of the blocks an image is averaged over",
}

# Facts of an ablation's setup: label → config column(s) of runs.csv.
_SETUP_FACTS = (
    ("Model", ("config.model.name", "config.model.width", "config.model.blocks")),
    ("Normalization", ("config.model.norm",)),
    ("Training images", ("config.data.n_train",)),
    ("Epochs", ("config.train.epochs",)),
    ("Batch size", ("config.train.batch_size",)),
    ("Optimizer", ("config.optim.name",)),
    ("Learning rate", ("config.optim.lr",)),
    ("Weight decay", ("config.optim.weight_decay",)),
    ("Schedule", ("config.schedule.name",)),
    ("Warmup (fraction of steps)", ("config.schedule.warmup",)),
)


def _shown(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return count(v) if v.is_integer() else fmt(v)
    return str(v)


def effective_epochs(runs: pd.DataFrame) -> pd.DataFrame:
    """Epochs as trained: a scale may cap what an ablation asks for (train.max_epochs)."""
    if "config.train.epochs" not in runs.columns or "config.train.max_epochs" not in runs.columns:
        return runs
    cap = pd.to_numeric(runs["config.train.max_epochs"], errors="coerce")
    runs = runs.copy()
    runs["config.train.epochs"] = runs["config.train.epochs"].where(
        cap.isna(), runs["config.train.epochs"].clip(upper=cap)
    )
    return runs


def ablation_setup(ablation: Any, runs: pd.DataFrame) -> dict[str, Any]:
    """What every run of the ablation shares (one value) and what differs (listed per value),
    from the resolved configs, plus each variant's overrides: the technique and its strength."""
    own = effective_epochs(runs[runs["ablation"] == ablation.name]) if len(runs) else runs
    facts = []
    for label, columns in _SETUP_FACTS:
        present = [c for c in columns if c in own.columns]
        if not present or own.empty:
            continue
        values = list(dict.fromkeys(" × ".join(_shown(v) for v in row) for row in
                                    own[present].itertuples(index=False)))  # fmt: skip
        if label == "Learning rate" and ablation.tune:
            facts.append({"key": label, "value": "tuned per variant on validation (see below)"})
        elif len(values) == 1:
            facts.append({"key": label, "value": values[0]})
        else:
            facts.append({"key": label, "value": "varies: " + ", ".join(values)})
    variants = [
        {"variant": name, "overrides": " ".join(overrides) or "(the common settings)"}
        for name, overrides in ablation.variants.items()
    ]
    return {
        "common": " ".join(ablation.common),
        "facts": facts,
        "variants": variants,
        "tune": _tuning_sentence(ablation.tune)
        or _borrowed_tuning_sentence(getattr(ablation, "tuned_from", None)),
        "shift": bool(ablation.shift),
    }


def _borrowed_tuning_sentence(tuned_from: dict | None) -> str:
    """Where an ablation that reuses another one's tuning took its values from."""
    if not tuned_from:
        return ""
    return (
        f"Not tuned again: each variant takes the value that the {tuned_from['ablation']} "
        f"ablation selected on the validation split for its {tuned_from['by']} (the same "
        "tuning budget for all of them)."
    )


def _tuning_sentence(tune: dict | None) -> str:
    """What was tuned, over which grid, on how many seeds and by which score."""
    if not tune:
        return ""

    def grid(factors, values) -> str:
        if factors:
            return "its default × " + ", ".join(fmt(f) for f in factors)
        return ", ".join(fmt(v) for v in values)

    # A planned ablation has each variant's search resolved; a bare block has one default search.
    searches = tune.get("searches") or {
        "every variant": SimpleNamespace(
            key=tune.get("key", "optim.lr"),
            factors=tune.get("factors", ()),
            values=tune.get("values", ()),
        )
    }
    parts = [f"{v}: {s.key} over {grid(s.factors, s.values)}" for v, s in searches.items()]
    seeds, last = int(tune.get("seeds", 1)), int(tune.get("last", 1))
    return (
        "Tuned on the validation split, the same budget for every variant ("
        + "; ".join(parts)
        + f"), {seeds} tuning seed{'s' if seeds > 1 else ''} (never a final seed) per point, "
        f"scored by the mean {tune.get('metric', 'val_loss')} of the last {last} epochs."
    )


def shift_definitions(shift: pd.DataFrame | None, settings: Path = SHIFT_SETTINGS) -> dict:
    """The corruptions (parameter per severity), the drift stream and the class-prior shift, as
    conf/shift.yaml defines them; the parameters are those the shift table recorded."""
    if not Path(settings).is_file():
        return {}
    conf = yaml.safe_load(Path(settings).read_text()) or {}
    corruptions = []
    for name in conf.get("corruptions", []):
        params = ""
        if shift is not None and {"param", "severity"} <= set(shift.columns):
            rows = shift[(shift["shift"] == name) & shift["param"].notna()]
            rows = rows.drop_duplicates("severity").sort_values("severity")
            pairs = (f"{_shown(r.severity)}: {_shown(r.param)}" for r in rows.itertuples())
            params = ", ".join(pairs)
        corruptions.append(
            {"name": name, "meaning": CORRUPTION_PARAMETERS.get(name, ""), "params": params}
        )
    drift = conf.get("drift") or {}
    prior = conf.get("prior") or {}
    return {
        "corruptions": corruptions,
        "severities": ", ".join(str(s) for s in conf.get("severities", [])),
        "drift": (
            f"the test set cut into {drift.get('slices')} time slices whose severity grows "
            f"linearly from 0 (clean) to {drift.get('max_severity')}; each image gets one "
            f"corruption drawn from {', '.join(drift.get('mix', []))}"
            if drift
            else ""
        ),
        "prior": (
            "long-tailed test subsets whose largest/smallest class ratio is "
            + ", ".join(str(r) for r in prior.get("ratios", []))
            + " (a power law over a fixed random class order): p(y) changes, p(x | y) does not"
            if prior
            else ""
        ),
        "adabn": "AdaBN (Li et al. 2016): the normalization statistics re-estimated on the shifted "
        "inputs, without labels",
        "scored": _scored_variants(shift),
    }


def _scored_variants(shift: pd.DataFrame | None) -> str:
    """Which variants' models the shift table scores, per ablation ("normalization: batchnorm,
    batchrenorm"): an ablation's file may score only some (its ``shift:`` list)."""
    if shift is None or not {"ablation", "variant"} <= set(shift.columns):
        return ""
    pairs = shift[["ablation", "variant"]].drop_duplicates()
    return "; ".join(
        f"{ablation}: {', '.join(rows['variant'])}" for ablation, rows in pairs.groupby("ablation")
    )


def prior_shift(
    shift: pd.DataFrame | None, ablation: str = "normalization", order: list[str] | None = None
) -> dict[str, Any]:
    """Test accuracy under class-prior shift: one row per variant, one column per imbalance ratio
    without and with AdaBN; each cell the mean over seeds with its 95% interval (clipped to the
    0–100% an accuracy can take)."""
    if shift is None or "param" not in shift.columns:
        return {}
    rows = shift[(shift["shift"] == "prior") & (shift["ablation"] == ablation)].copy()
    if rows.empty:
        return {}
    rows["ratio"] = pd.to_numeric(rows["param"], errors="coerce")
    rows["adapted"] = rows["adapted"].astype(str) == "True"
    columns = [(r, a) for r in sorted(rows["ratio"].dropna().unique()) for a in (False, True)]
    table = []
    rank = {v: i for i, v in enumerate(order or [])}
    groups = sorted(rows.groupby("variant"), key=lambda g: (rank.get(g[0], len(rank)), g[0]))
    for variant, part in groups:
        cells = []
        for ratio, adapted in columns:
            sel = part[(part["ratio"] == ratio) & (part["adapted"] == adapted)]
            ci = mean_ci(pd.to_numeric(sel["accuracy"], errors="coerce"))
            bounds = interval(max(ci.lo, 0.0), min(ci.hi, 1.0), "test_acc")
            cells.append({"accuracy": pct(ci.mean), "ci": bounds})
        table.append({"variant": str(variant), "cells": cells, "n": int(part["seed"].nunique())})
    return {
        "columns": [
            {
                "ratio": _shown(float(r)),
                "adapted": a,
                "label": f"ratio {_shown(float(r))}" + (", AdaBN" if a else ""),
            }
            for r, a in columns
        ],  # fmt: skip
        "rows": table,
    }


def read_shift(scale_dir: Path) -> pd.DataFrame | None:
    return contracts.read_csv(ScaleDir(scale_dir).table("shift"), contracts.SHIFT, optional=True)


def _exponent(fit: dict | None) -> str:
    if not fit or fit.get("slope") is None or not math.isfinite(fit["slope"]):
        return "n/a"
    return f"{fmt(fit['slope'])} [{fmt(fit['lo'])}, {fmt(fit['hi'])}]"


_CROSSOVER_WORDS = {
    "measured": "N ≈ {n} (between the measured N {lo} and {hi})",
    "first_order_faster_everywhere": (
        "none in the measured {span}: first-order faster at every size (below N {first})"
    ),
    "extrapolated": (
        "none in the measured {span}: Newton faster at every size; the fitted laws meet at "
        "N ≈ {n} (extrapolation)"
    ),
    "none": "none: Newton faster at every size of the measured {span}; the fitted laws never meet",
    "ambiguous": "ambiguous: the faster method changes more than once in the measured {span}",
    "second_order_never_reached": "none: Newton reached the target at no size",
    "first_order_never_reached": "none: no first-order method reached the target at any size",
    "too_few_sizes": "n/a: fewer than two sizes where both reached the target",
}


def crossover_text(cross: dict | None) -> str:
    """The crossover in words, with the measured sizes that bracket it or the range it lies
    outside of; "n/a" when it was not computed."""
    if not cross or cross.get("status") not in _CROSSOVER_WORDS:
        return "n/a"
    span, bracket = cross.get("range") or [None, None], cross.get("bracket") or [None, None]
    changes = cross.get("changes") or 0
    noisy = f"; the faster method changes {changes} times over the sizes" if changes > 1 else ""
    return (
        _CROSSOVER_WORDS[cross["status"]].format(
            n=fmt(cross.get("n")),
            lo=count(bracket[0]) if bracket[0] else "",
            hi=count(bracket[1]) if bracket[1] else "",
            span=f"N {count(span[0])}–{count(span[1])}" if span[0] else "",
            first=count(span[0]) if span[0] else "",
        )
        + noisy
    )


def _fit_sizes(info: dict) -> str:
    """The sizes the exponents were fitted on, as a range ("N 90–1,290"), or all of them."""
    fitted = info.get("fit_n_params", info.get("n_params", []))
    return f"N {count(fitted[0])}–{count(fitted[-1])}" if fitted else "n/a"


def _hessian_text(info: dict) -> str:
    """How Newton built its Hessian, and the cost of the closed form against autograd's at the
    smallest and largest sizes (the per-row overhead of a generic Hessian)."""
    method = ", ".join(info.get("hessian_method", [])).replace("_", " ") or "n/a"
    own, generic = info.get("hessian_s", []), info.get("autograd_hessian_s", [])
    if "closed_form" not in info.get("hessian_method", []) or not own:
        return method
    sizes = info.get("n_params", [])
    parts = [
        f"N {count(sizes[i])}: {fmt(own[i] * 1e3)} ms vs {fmt(generic[i] * 1e3)} ms by autograd"
        for i in sorted({0, len(own) - 1})
    ]
    return f"{method} ({'; '.join(parts)})"


def second_order(scale_dir: Path) -> dict[str, Any] | None:
    """Newton's cost exponents with their intervals, the crossover with first-order methods and the
    extrapolations (labelled as such), from second_order.json; None when it was not run."""
    path = ScaleDir(scale_dir).second_order.with_suffix(".json")
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    families = []
    for family, info in summary.get("families", {}).items():
        cross = info.get("crossover") or {}
        extrapolations = [
            {
                "n": size,
                "label": "extrapolation" if e.get("extrapolated") else "measured range",
                "s_per_iter": fmt(e["s_per_iter"]["value"]),
                "s_ci": f"[{fmt(e['s_per_iter']['lo'])}, {fmt(e['s_per_iter']['hi'])}]",
                "hessian_gb": fmt(e["hessian_bytes_float64"] / 1e9),
            }
            for size, e in info.get("extrapolation", {}).items()
        ]
        families.append(
            {
                "family": family,
                "sizes": ", ".join(count(s) for s in info.get("n_params", [])),
                "fit_sizes": _fit_sizes(info),
                "time_exponent": _exponent(info.get("time_exponent")),
                "memory_exponent": _exponent(info.get("memory_exponent")),
                "crossover": crossover_text(cross),
                "hessian": _hessian_text(info),
                "autograd_crossover": crossover_text(info.get("crossover_with_autograd_hessian")),
                "extrapolations": extrapolations,
            }
        )
    return {
        "target": summary.get("target", ""),
        "time_basis": summary.get("time_basis", ""),
        "memory_basis": summary.get("memory_basis", ""),
        "families": families,
    }


PATHOLOGIES_CAPTION = (
    "Optimization pathologies on problems built to show them: iterations to a target against the "
    "condition number on rotated and axis-aligned quadratics (grey: slopes 1 and 0.5), steps to "
    "escape a strict saddle (dotted: gradient descent's closed form), minibatch gradient variance "
    "against B with the exact finite-population law, and the first layer's gradient against depth."
)


def pathologies(scale_dir: Path) -> dict[str, Any] | None:
    """The pathologies experiment's fitted exponents with their intervals (pathologies.json);
    None when it was not run. Verdicts are the ledger's (the claims block of the pathologies)."""
    path = ScaleDir(scale_dir).pathologies.with_suffix(".json")
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    named = {f"iterations vs κ, {k}": v for k, v in summary.get("iteration_exponents", {}).items()}
    for key, label in (("noise_exponent", "minibatch variance vs B"),
                       ("hessian_exponent", "Newton's Hessian build vs N"),
                       ("solve_exponent", "Newton's solve vs N")):  # fmt: skip
        if key in summary:
            named[label] = summary[key]
    return {
        "exponents": [{"fit": k, "exponent": _exponent(v)} for k, v in named.items()],
        "cpu_seconds": fmt(summary.get("cpu_seconds")),
        "caption": PATHOLOGIES_CAPTION,
    }
