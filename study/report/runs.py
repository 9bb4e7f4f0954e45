"""The runs behind the report: one row per run for the appendix and runs.csv, the commit each
run was trained at, whether they all came from the report's own clean commit, and the study's
compute, package versions and hardware."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import pandas as pd

from study import contracts, provenance
from study.analysis.gather import metrics_files
from study.analysis.stats import fmt
from study.paths import ScaleDir
from study.provenance import run_commits, run_fingerprints

__all__ = ["run_commits", "run_fingerprints", "run_ledger", "run_rows", "study_provenance"]
from study.report.formatting import _num, count, duration, value


def _run_environments(scale_dir: Path, ablations: list[str]) -> tuple[list[str], list[str]]:
    """Distinct package versions and hardware recorded by the study's runs (their metrics.json;
    another study's runs in the same scale folder are not this report's)."""
    versions: dict[str, None] = {}
    hardware: dict[str, None] = {}
    for path in metrics_files(ScaleDir(scale_dir).runs, ablations):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for target, key in ((versions, "versions"), (hardware, "hardware")):
            entry = metrics.get(key)
            if isinstance(entry, dict) and entry:
                target[", ".join(f"{k} {v}" for k, v in sorted(entry.items()))] = None
    return list(versions), list(hardware)


def run_rows(runs: pd.DataFrame) -> list[dict[str, str]]:
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
    "fingerprint",
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
    return ledger.assign(commit=commits, dirty=dirty)[list(LEDGER_COLUMNS)]


def study_provenance(
    scale_dir: Path, runs: pd.DataFrame, ledger: pd.DataFrame, git: dict[str, Any]
) -> dict[str, Any]:
    """Commit, tree state and compute of the study's runs (``runs`` holds only its ablations)."""
    wall = pd.to_numeric(runs.get("wall_s", pd.Series(dtype=float)), errors="coerce")
    tuning = contracts.read_csv(ScaleDir(scale_dir).table("tuning"), contracts.TUNING, True)
    ablations = sorted(set(runs["ablation"])) if "ablation" in runs.columns else []
    if tuning is not None and "ablation" in tuning.columns:
        tuning = tuning[tuning["ablation"].isin(ablations)]
    tune_wall = (
        pd.to_numeric(tuning.get("wall_s", pd.Series(dtype=float)), errors="coerce")
        if tuning is not None
        else pd.Series(dtype=float)
    )
    versions, hardware = _run_environments(scale_dir, ablations)
    commit = git["commit"] or "unknown (not a git repository, or no commit yet)"
    return {
        "commit": commit,
        "commit_short": commit[:12] if re.fullmatch(r"[0-9a-f]{40,64}", commit) else "unknown",
        "dirty": git["dirty"],
        "runs_from": run_commits(ledger, git["commit"], git["dirty"], git.get("changed")),
        "fingerprints": run_fingerprints(ledger.get("fingerprint", [None] * len(ledger))),
        "packages": [{"name": k, "version": v} for k, v in provenance.package_versions().items()],
        "run_versions": versions,
        "run_hardware": hardware,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "n_runs": len(runs),
        "n_tuning_runs": 0 if tuning is None else len(tuning),
        "compute": duration(float(wall.sum(skipna=True))),
        "tuning_compute": duration(float(tune_wall.sum(skipna=True))),
    }
