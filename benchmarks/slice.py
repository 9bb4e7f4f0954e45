"""A slice of the study, run for real twice side by side: one run per job, then several.

A copy of the workflow with one small ablation (two variants of the regularization ablation,
their seeds, evaluated under shift) is run with ``snakemake --cores 2`` at ``runs_per_job`` 1
and 3, one after the other on the same machine. From each run's Snakemake log and run folders:
the pipeline efficiency (every job doing study work counts: training, shift) and the evaluation
share of the runs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.pipeline import efficiency, eval_share
from benchmarks.report import Report
from benchmarks.workflow import copy_workflow, data_cache, time_command

SLICE = """title: Pipeline benchmark slice
question: How much of the machine does a slice of the study use?
baseline: none
seeds: 3
common: [optim=adamw, schedule=cosine, train.epochs={epochs}]
variants:
  none: []
  dropout: [model.dropout=0.5]
shift: true
"""


def run_slice(tmp: Path, scale: str, epochs: int, runs_per_job: int, cache: Path):
    """Run the slice in a fresh copy; returns its scale folder and Snakemake log."""
    copy_workflow(tmp, keep_ablations=False)
    (tmp / "conf" / "ablation" / "slice.yaml").write_text(SLICE.format(epochs=epochs))
    results = tmp / "results"
    # The data cache is preparation, not the study work measured here (and the copy has no raw
    # data files to prepare it from).
    target = results / scale / "data" / "fashion_mnist.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cache, target)
    seeds = 2 if scale == "smoke" else 3
    targets = [
        f"results/{scale}/runs/slice/{variant}/seed{seed}/shift.csv"
        for variant in ("none", "dropout")
        for seed in range(seeds)
    ]
    argv = [sys.executable, "-m", "snakemake", "--cores", "2", "--config", f"scale={scale}"]
    argv += [f"runs_per_job={runs_per_job}", "results=results", "--", *targets]
    elapsed, _ = time_command(argv, tmp, timeout=1800)
    log = max((tmp / ".snakemake" / "log").glob("*.snakemake.log"))
    return results / scale, log, elapsed


def slice_study(report: Report, scale: str, epochs: int, cache: Path | None) -> dict:
    """Efficiency and evaluation share of the slice at runs_per_job 1 and 3."""
    found = {}
    data = Path(tempfile.mkdtemp(prefix="study-bench-data-"))
    try:
        cache = data_cache(cache, data)
        for runs_per_job in (1, 3):
            tmp = Path(tempfile.mkdtemp(prefix=f"study-bench-slice{runs_per_job}-"))
            try:
                scale_dir, log, elapsed = run_slice(tmp, scale, epochs, runs_per_job, cache)
                prefix = f"slice_rpj{runs_per_job}:"
                found[runs_per_job] = efficiency(report, scale_dir, log, 2, prefix=prefix)
                report.add(prefix + "wall_s", elapsed, "snakemake --cores 2, planning included")
                shares = eval_share(report, scale_dir, prefix=prefix)
                found[runs_per_job]["eval_share"] = shares["all"][1] / sum(shares["all"][:2])
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    report.section(f"slice ({scale} scale, {epochs} epochs per run): batched against one per job")
    report.add("slice_efficiency", found[3]["efficiency"], "runs_per_job 3, every study job")
    report.add("eval_share:slice", found[3]["eval_share"], "eval_s / (train_s + eval_s)")
    report.add(
        "slice_efficiency_gain",
        found[3]["efficiency"] / found[1]["efficiency"],
        "efficiency at runs_per_job 3 / at 1",
    )
    return found
