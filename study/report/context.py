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
from study.analysis.claim_rule import RULE
from study.analysis.stats import fmt
from study.paths import ScaleDir
from study.report.formatting import (
    VERDICT_CLASS,
    _finite,
    _num,
    count,
    diff,
    duration,
    interval,
    value,
)
from study.report.sections import _ablation_context, _planned_seeds

TITLE = "How neural networks are trained: a reproducible benchmark of training techniques"
_VERDICT_ORDER = {
    "supported": 0,
    "contradicted": 1,
    "no meaningful effect": 2,
    "inconclusive": 3,
    "not tested": 4,
}


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


def _claims(scale_dir: Path, claims_path: Path | None, figures: dict[str, dict]) -> list[dict]:
    table = contracts.read_csv(ScaleDir(scale_dir).table("claims"), contracts.CLAIMS, True)
    if table is None and claims_path is not None and Path(claims_path).is_file():
        from study.analysis.claims_file import load_claims

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
        unit = "" if pd.isna(r.get("unit", math.nan)) else str(r.get("unit"))
        out.append(
            {
                "id": str(r.get("id", "")),
                "claim": str(r.get("claim", "")),
                "ablation": "" if pd.isna(r.get("ablation")) else str(r.get("ablation")),
                "metric": metric,
                **_in_unit(r, unit, metric),
                "verdict": verdict,
                "verdict_class": VERDICT_CLASS.get(verdict, "neutral"),
                "figure": figure,
                "figure_ref": figures.get(figure),
                "detail": "" if pd.isna(r.get("detail")) else str(r.get("detail")),
            }
        )
    return out


def _in_unit(r: pd.Series, unit: str, metric: str) -> dict[str, str]:
    """Effect, interval, margin and detectable effect as the ledger states them: in the claim's
    unit (tables/claims.csv holds them so), with the Holm-adjusted p and the seeds."""
    effect, lo, hi = (_num(r.get(k)) for k in ("effect", "lo", "hi"))
    if not unit:  # a ledger written before claims declared units
        return {"effect": diff(effect, metric) if _finite(effect) else "",
                "ci": interval(lo, hi, metric, as_diff=True), "unit": "", "margin": "",
                "mde": "", "p_adjusted": "", "seeds": ""}  # fmt: skip
    suffix = {"pp": " pp", "x": "x", "s": " s", "epochs": " ep"}.get(unit, "")

    def show(v: float) -> str:
        return (("+" if v > 0 and unit != "x" else "") + fmt(v) + suffix) if _finite(v) else ""

    p_adj = r.get("p_adjusted")
    return {
        "effect": show(effect),
        "ci": f"[{show(lo)}, {show(hi)}]" if _finite(lo) and _finite(hi) else "",
        "unit": unit,
        "margin": f"±{fmt(_num(r.get('margin')))}{suffix}" if _finite(r.get("margin")) else "",
        "mde": fmt(_num(r.get("detectable_effect"))) + suffix
        if _finite(r.get("detectable_effect")) else "",
        "p_adjusted": fmt(_num(p_adj), 2) if _finite(p_adj) else "",
        "seeds": count(r.get("seeds")) if _finite(r.get("seeds")) else "",
    }  # fmt: skip


def write_claims_ledger(scale_dir: Path, out: Path) -> str | None:
    """The ledger next to the report: ``claims.csv`` (contracts.REPORT_CLAIMS) and its forest
    plot ``figures/claims_forest.png``; returns the plot's path relative to ``out``."""
    from study.figures.forest import write_ledger_forest
    from study.outputs import atomic_path

    table = contracts.read_csv(ScaleDir(scale_dir).table("claims"), contracts.CLAIMS, True)
    if table is None or table.empty or "unit" not in table:
        return None
    with atomic_path(Path(out) / "claims.csv") as tmp:
        table.reindex(columns=list(contracts.REPORT_CLAIMS_COLUMNS)).to_csv(tmp, index=False)
    write_ledger_forest(table, Path(out) / "figures" / "claims_forest.png")
    return "figures/claims_forest.png"


def _effective_epochs(runs: pd.DataFrame) -> pd.DataFrame:
    """Epochs as trained: a scale may cap what an ablation asks for (train.max_epochs)."""
    if "config.train.epochs" not in runs.columns or "config.train.max_epochs" not in runs.columns:
        return runs
    cap = pd.to_numeric(runs["config.train.max_epochs"], errors="coerce")
    runs = runs.copy()
    runs["config.train.epochs"] = runs["config.train.epochs"].where(
        cap.isna(), runs["config.train.epochs"].clip(upper=cap)
    )
    return runs


def _setup(runs: pd.DataFrame, ablations: dict[str, Any]) -> list[dict[str, str]]:
    """Facts of the setup, from the resolved configs of the runs (config.* columns)."""
    runs = _effective_epochs(runs)

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


def _provenance(scale_dir: Path, runs: pd.DataFrame, repo: str | Path | None) -> dict[str, Any]:
    wall = pd.to_numeric(runs.get("wall_s", pd.Series(dtype=float)), errors="coerce")
    tuning = contracts.read_csv(ScaleDir(scale_dir).table("tuning"), contracts.TUNING, True)
    tune_wall = (
        pd.to_numeric(tuning.get("wall_s", pd.Series(dtype=float)), errors="coerce")
        if tuning is not None
        else pd.Series(dtype=float)
    )
    versions, hardware = _run_environments(scale_dir)
    git = provenance.git_state(Path(repo) if repo else Path.cwd())
    commit = git["commit"] or "unknown (not a git repository, or no commit yet)"
    return {
        "commit": commit,
        "commit_short": commit[:12] if re.fullmatch(r"[0-9a-f]{40,64}", commit) else "unknown",
        "dirty": git["dirty"],
        "packages": [{"name": k, "version": v} for k, v in provenance.package_versions().items()],
        "run_versions": versions,
        "run_hardware": hardware,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "n_runs": len(runs),
        "n_tuning_runs": 0 if tuning is None else len(tuning),
        "compute": duration(float(wall.sum(skipna=True))),
        "tuning_compute": duration(float(tune_wall.sum(skipna=True))),
    }


def build_context(
    scale_dir: str | Path,
    ablations: dict[str, Any],
    claims_path: str | Path | None = None,
    scale: str | None = None,
    repo: str | Path | None = None,
) -> dict[str, Any]:
    """Everything the templates show, as plain values (formatted strings, paths, lists)."""
    scale_dir = Path(scale_dir)
    runs_path = ScaleDir(scale_dir).table("runs")
    runs = contracts.read_csv(runs_path, contracts.RUNS, optional=True)
    if runs is None:
        raise ReportError(f"the report needs {runs_path}; run the tables")
    sections = [_ablation_context(scale_dir, a, runs) for a in ablations.values()]
    number = 0
    for section in sections:
        for fig in section["figures"]:
            number += 1
            fig["number"] = number
    figures = {f"{f['ablation']}/{f['name']}": f for s in sections for f in s["figures"]}
    claims = _claims(scale_dir, Path(claims_path) if claims_path else None, figures)
    counts: dict[str, int] = {}
    for c in claims:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return {
        "title": TITLE,
        "rule": RULE,
        "claims_forest": None,  # set by write_claims_ledger: the path in the report folder
        "claims_forest_source": None,
        "scale": scale or scale_dir.name,
        "sections": sections,
        "claims": claims,
        "claim_counts": [
            {"verdict": k, "n": v}
            for k, v in sorted(counts.items(), key=lambda kv: (_VERDICT_ORDER.get(kv[0], 9), kv[0]))
        ],
        "setup": _setup(runs, ablations),
        "provenance": _provenance(scale_dir, runs, repo),
        "runs": _run_rows(runs),
        "ledger": run_ledger(scale_dir, runs),
    }
