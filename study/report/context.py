"""The report's context: everything the templates show, from the tables, captions and run folders
of one scale (claims ledger, setup, provenance, every run), as plain formatted values."""

from __future__ import annotations

import json
import math
import os
import platform
import re
from pathlib import Path
from typing import Any

import pandas as pd

from study import contracts, provenance
from study.analysis.ledger.rule import RULE
from study.analysis.stats import fmt
from study.paths import ScaleDir
from study.report.experiments import (
    ablation_setup,
    effective_epochs,
    prior_shift,
    read_shift,
    second_order,
    shift_definitions,
)
from study.report.formatting import (
    VERDICT_CLASS,
    _num,
    anchor,
    count,
    duration,
    value,
)
from study.report.ledger import _in_unit
from study.report.narrative import (
    INTRODUCTION,
    REFERENCES,
    abstract,
    discussion,
    holm_sentence,
    limitations,
    reproduce_command,
    verdict_counts,
)
from study.report.sections import _ablation_context, _display_width, _planned_seeds

TITLE = "How neural networks are trained: a reproducible benchmark of training techniques"
# The course's order of topics: the paper's sections follow it; an ablation not listed comes after
# these, in file-name order. ``python -m study.report --order`` replaces it.
COURSE_ORDER = ("regularization", "optimizers", "schedules", "optimizer_schedule", "normalization")


class ReportError(RuntimeError):
    """An input the report cannot do without (e.g. no runs.csv) is absent."""


def _run_environments(scale_dir: Path) -> tuple[list[str], list[str]]:
    """Distinct package versions and hardware recorded by the runs (from their metrics.json)."""
    versions: dict[str, None] = {}
    hardware: dict[str, None] = {}
    for path in sorted(ScaleDir(scale_dir).runs.glob("*/*/seed*/metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for target, key in ((versions, "versions"), (hardware, "hardware")):
            entry = metrics.get(key)
            if isinstance(entry, dict) and entry:
                target[", ".join(f"{k} {v}" for k, v in sorted(entry.items()))] = None
    return list(versions), list(hardware)


def _text(row: pd.Series, column: str) -> str:
    """A cell as text; empty when the column is absent or the cell is empty."""
    cell = row.get(column)
    return "" if cell is None or (not isinstance(cell, str) and pd.isna(cell)) else str(cell)


def _unit(row: pd.Series, metric: str) -> str:
    """The effect's unit: the claims table's own ``unit`` when it has one, else percentage points
    for accuracies and the metric's name for anything else."""
    return _text(row, "unit") or ("pp" if "acc" in metric else metric.replace("_", " "))


def _claims(
    table: pd.DataFrame | None, claims_path: Path | None, figures: dict[str, dict]
) -> list[dict]:
    """The ledger's rows as shown; without tables/claims.csv, ``claims_path``'s as not evaluated."""
    if table is None and claims_path is not None and Path(claims_path).is_file():
        from study.analysis.ledger.claims_file import load_claims

        table = pd.DataFrame(
            [
                {
                    "id": c["id"],
                    "claim": c["claim"],
                    "ablation": c.get("ablation", ""),
                    "metric": c.get("metric", ""),
                    "verdict": "not evaluated",
                    "figure": c.get("figure", ""),
                    "detail": "tables/claims.csv does not exist yet",
                }
                for c in load_claims(claims_path)
            ]
        )
    if table is None:
        return []
    out = []
    for _, r in table.iterrows():
        metric = "" if pd.isna(r.get("metric")) else str(r.get("metric"))
        figure = "" if pd.isna(r.get("figure")) else str(r.get("figure"))
        verdict = "" if pd.isna(r.get("verdict")) else str(r.get("verdict"))
        out.append(
            {
                "id": str(r.get("id", "")),
                "claim": str(r.get("claim", "")),
                "ablation": "" if pd.isna(r.get("ablation")) else str(r.get("ablation")),
                "metric": metric,
                **_in_unit(r, _text(r, "unit"), metric),
                "verdict": verdict,
                "verdict_class": VERDICT_CLASS.get(verdict, "neutral"),
                "figure": figure,
                "figure_ref": figures.get(figure),
                "detail": "" if pd.isna(r.get("detail")) else str(r.get("detail")),
                "unit": _unit(r, metric),
            }
        )
    return out


def _setup(runs: pd.DataFrame, ablations: dict[str, Any]) -> list[dict[str, str]]:
    """Facts of the setup, from the resolved configs of the runs (config.* columns)."""
    runs = effective_epochs(runs)

    def values(column: str) -> str:
        if column not in runs.columns:
            return ""
        distinct = [v for v in dict.fromkeys(runs[column].tolist())]
        shown = []
        for v in distinct:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                shown.append("all")
            elif isinstance(v, float) and v.is_integer():
                shown.append(str(int(v)))
            else:
                shown.append(str(v))
        return ", ".join(dict.fromkeys(shown))

    facts = [
        ("Dataset", values("config.data.name")),
        ("Training images (subsample of the official training set)", values("config.data.n_train")),
        ("Validation images (held out from training; selection only)", values("config.data.n_val")),
        ("Test images (official test set; reporting only)", values("config.data.n_test")),
        ("Split seed (the same split for every run)", values("config.data.split_seed")),
        ("Model", values("config.model.name")),
        ("Width", values("config.model.width")),
        ("Residual blocks", values("config.model.blocks")),
        ("Epochs", values("config.train.epochs")),
        ("Batch size", values("config.train.batch_size")),
        ("Optimizers", values("config.optim.name")),
        ("Schedules", values("config.schedule.name")),
        (
            "Seeds per variant",
            ", ".join(
                f"{a.name} {_planned_seeds(a, runs[runs['ablation'] == a.name])}"
                for a in ablations.values()
            )
            if "ablation" in runs.columns
            else "",
        ),
    ]
    return [{"key": k, "value": v} for k, v in facts if v]


def _run_rows(runs: pd.DataFrame) -> list[dict[str, str]]:
    """The appendix: every run with its outcome and config hash, formatted."""
    rows = []
    for _, r in runs.iterrows():
        rows.append(
            {
                "ablation": str(r.get("ablation", "")),
                "variant": str(r.get("variant", "")),
                "seed": str(r.get("seed", "")),
                "status": str(r.get("status", "")),
                "test_acc": value(r.get("test_acc"), "test_acc"),
                "val_acc": value(r.get("val_acc"), "val_acc"),
                "test_loss": value(r.get("test_loss"), "test_loss"),
                "epochs": count(r.get("epochs_run")),
                "wall_s": fmt(_num(r.get("wall_s"))),
                "config_hash": "" if pd.isna(r.get("config_hash")) else str(r.get("config_hash")),
            }
        )
    return rows


# The columns of the report's runs.csv: enough to check a rerun value for value.
LEDGER_COLUMNS = (
    "ablation",
    "variant",
    "seed",
    "status",
    "test_acc",
    "test_loss",
    "val_acc",
    "val_loss",
    "epochs_run",
    "lr",
    "wall_s",
    "config_hash",
    "commit",
    "dirty",
)


def run_ledger(scale_dir: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run (raw values from runs.csv) with the commit each run was trained at."""
    ledger = runs.reindex(columns=[c for c in LEDGER_COLUMNS if c not in ("commit", "dirty")])
    commits, dirty = [], []
    for _, r in ledger.iterrows():
        path = ScaleDir(scale_dir).run(r["ablation"], r["variant"], int(r["seed"]))
        try:
            versions = json.loads((path / "metrics.json").read_text()).get("versions") or {}
        except (OSError, ValueError, AttributeError):
            versions = {}
        commits.append(versions.get("commit"))
        dirty.append(versions.get("dirty"))
    return ledger.assign(commit=commits, dirty=dirty)


def run_commits(ledger: pd.DataFrame, commit: str | None, dirty: bool | None) -> dict[str, Any]:
    """Whether every run came from the report's own commit with a clean tree, and if not, how
    many runs came from which commit and tree state. ``clean`` is True only when it is known."""
    groups: dict[tuple[str, str], int] = {}
    for run_commit, run_dirty in zip(ledger["commit"], ledger["dirty"], strict=True):
        known = isinstance(run_commit, str) and run_commit
        key = (
            run_commit[:12] if known else "unknown",
            {True: "uncommitted changes", False: "clean"}.get(run_dirty, "tree state unknown"),
        )
        groups[key] = groups.get(key, 0) + 1
    same = [
        c == commit and d is False for c, d in zip(ledger["commit"], ledger["dirty"], strict=True)
    ]
    reasons = []
    if not commit:
        reasons.append("the report was not built in a git checkout")
    elif dirty is not False:
        reasons.append("the report was built from a tree with uncommitted changes")
    if not all(same):
        reasons.append(f"{len(same) - sum(same)} of {len(same)} runs came from another commit or "
                       "a tree with uncommitted changes")  # fmt: skip
    return {
        "clean": bool(commit) and dirty is False and all(same),
        "reasons": reasons,
        "groups": [
            {"commit": c, "state": d, "n": n}
            for (c, d), n in sorted(groups.items(), key=lambda kv: -kv[1])
        ],
    }


def _provenance(
    scale_dir: Path, runs: pd.DataFrame, ledger: pd.DataFrame, git: dict[str, Any]
) -> dict[str, Any]:
    wall = pd.to_numeric(runs.get("wall_s", pd.Series(dtype=float)), errors="coerce")
    tuning = contracts.read_csv(ScaleDir(scale_dir).table("tuning"), contracts.TUNING, True)
    tune_wall = (
        pd.to_numeric(tuning.get("wall_s", pd.Series(dtype=float)), errors="coerce")
        if tuning is not None
        else pd.Series(dtype=float)
    )
    versions, hardware = _run_environments(scale_dir)
    commit = git["commit"] or "unknown (not a git repository, or no commit yet)"
    return {
        "commit": commit,
        "commit_short": commit[:12] if re.fullmatch(r"[0-9a-f]{40,64}", commit) else "unknown",
        "dirty": git["dirty"],
        "runs_from": run_commits(ledger, git["commit"], git["dirty"]),
        "packages": [{"name": k, "version": v} for k, v in provenance.package_versions().items()],
        "run_versions": versions,
        "run_hardware": hardware,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "n_runs": len(runs),
        "n_tuning_runs": 0 if tuning is None else len(tuning),
        "compute": duration(float(wall.sum(skipna=True))),
        "tuning_compute": duration(float(tune_wall.sum(skipna=True))),
    }


def ordered(ablations: dict[str, Any], order: tuple[str, ...] = COURSE_ORDER) -> list[Any]:
    """The ablations in the paper's order: those named in ``order`` first, then the rest."""
    rank = {name: i for i, name in enumerate(order)}
    names = sorted(ablations, key=lambda n: (rank.get(n, len(rank)), n))
    return [ablations[n] for n in names]


def _extra_figure(scale_dir: Path, rel: str, caption: str) -> dict[str, Any] | None:
    """A figure that belongs to no ablation (the claims forest plot, the second-order scaling)."""
    png = scale_dir / rel
    if not png.is_file():
        return None
    name = Path(rel).stem
    return {"name": name, "ablation": "", "caption": caption, "source": png, "rel": rel,
            "anchor": anchor("fig", name), "width": _display_width(png)}  # fmt: skip


FOREST_CAPTION = (
    "Every claim's effect with its 95% confidence interval, coloured by verdict; the shaded band "
    "is the claim's margin of no meaningful effect."
)
SECOND_ORDER_CAPTION = (
    "Newton's method: seconds and bytes per iteration against the number of parameters N on "
    "log-log axes, with the fitted power laws (solid over the sizes fitted, dashed where they "
    "are extrapolated to 1e8); iterations to the target per method; and wall time to the target "
    "of Newton and of the fastest first-order method, with the crossover marked (vertical line) "
    "over the two measured sizes that bracket it (shaded)."
)


def _section(scale_dir: Path, ablation: Any, runs: pd.DataFrame) -> dict[str, Any]:
    section = _ablation_context(scale_dir, ablation, runs)
    section["setup"] = ablation_setup(ablation, runs)
    return section


def _rule(ledger: pd.DataFrame | None) -> str:
    """The verdict rule, with how many of this ledger's verdicts Holm's correction would keep."""
    return f"{RULE} {holm_sentence(ledger)}".strip()


def _elsewhere(ablation: Any) -> dict[str, Any]:
    """An ablation that runs only at other scales, as the limitations name it."""
    return {
        "title": ablation.title,
        "scales": list(ablation.scales or []),
        "reason": ablation.scales_reason,
    }


def build_context(
    scale_dir: str | Path,
    ablations: dict[str, Any],
    claims_path: str | Path | None = None,
    scale: str | None = None,
    repo: str | Path | None = None,
    order: tuple[str, ...] = COURSE_ORDER,
    git: dict[str, Any] | None = None,
    elsewhere: list[Any] = (),
) -> dict[str, Any]:
    """Everything the templates show, as plain values (formatted strings, paths, lists).

    ``git`` is the tree's state (study.provenance.git_state) taken before the report wrote
    anything: its own outputs in paper/ are tracked files and must not make it look dirty.
    ``elsewhere``: the ablations that run only at other scales (named among the limitations)."""
    scale_dir = Path(scale_dir)
    git = git or provenance.git_state(Path(repo) if repo else Path.cwd())
    runs_path = ScaleDir(scale_dir).table("runs")
    runs = contracts.read_csv(runs_path, contracts.RUNS, optional=True)
    if runs is None:
        raise ReportError(f"the report needs {runs_path}; run the tables")
    sections = [_section(scale_dir, a, runs) for a in ordered(ablations, order)]
    forest = _extra_figure(scale_dir, "figures/claims_forest.png", FOREST_CAPTION)
    scaling = _extra_figure(scale_dir, "figures/second_order/scaling.png", SECOND_ORDER_CAPTION)
    every = [forest, *(f for s in sections for f in s["figures"]), scaling]
    for number, fig in enumerate((f for f in every if f), start=1):
        fig["number"] = number
    figures = {f"{f['ablation']}/{f['name']}": f for s in sections for f in s["figures"]}
    claims_table = contracts.read_csv(ScaleDir(scale_dir).table("claims"), contracts.CLAIMS, True)
    claims = _claims(claims_table, Path(claims_path) if claims_path else None, figures)
    ledger = run_ledger(scale_dir, runs)
    shift = read_shift(scale_dir)
    context = {
        "title": TITLE,
        "scale": scale or scale_dir.name,
        "sections": sections,
        "claims": claims,
        "rule": _rule(claims_table),
        "claim_counts": verdict_counts(claims),
        "forest": forest,
        "setup": _setup(runs, ablations),
        "shift_definitions": shift_definitions(shift),
        "prior_shift": prior_shift(
            shift, order=list(getattr(ablations.get("normalization"), "variants", []))
        ),
        "second_order": second_order(scale_dir),
        "second_order_figure": scaling,
        "provenance": _provenance(scale_dir, runs, ledger, git),
        "runs": _run_rows(runs),
        "ledger": ledger,
        "references": [{"key": k, "text": t} for k, t in REFERENCES],
        "introduction": list(INTRODUCTION),
        "reproduce": reproduce_command(scale or scale_dir.name),
        "elsewhere": [_elsewhere(a) for a in elsewhere],
    }
    context["abstract"] = abstract(context)
    context["discussion"] = discussion(claims)
    context["limitations"] = limitations(context)
    return context
