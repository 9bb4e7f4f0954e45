"""A slice of the default study, run for real twice side by side: one run per job, then as many
as the workflow batches (``runs_per_job`` in conf/workflow.yaml).

A copy of the workflow with one ablation shaped like the default study's (four variants of the
regularization ablation at 6 seeds, 10-epoch runs as the default study's 10 to 15, evaluated
under shift) is run with ``snakemake --cores 2`` at ``runs_per_job`` 1 and at the workflow's
setting, one after the other on the same machine. At the workflow's setting that is 4 training
and 4 shift jobs of 6 runs, two of each per core as in the default study (about 80 jobs on 2
cores); a slice of one job per core would measure its start-up and its tail, not the study.
From each run's Snakemake log and run folders: the pipeline efficiency (every job doing study
work counts: training, shift) and the evaluation share of the runs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.pipeline import efficiency, eval_share
from benchmarks.report import Report
from benchmarks.workflow import ROOT, copy_workflow, data_cache, time_command

SLICE = """title: Pipeline benchmark slice
question: How much of the machine does a slice of the study use?
baseline: none
seeds: {seeds}
common: [optim=adamw, schedule=cosine, train.epochs={epochs}]
variants:
{variants}
shift: true
"""

# Variants of the default study's regularization ablation, with its overrides as that file has
# them; the slice keeps its own common settings (10 epochs instead of 15).
VARIANTS = ("none", "dropout", "weight_decay", "cutout")
REGULARIZATION = ROOT / "conf" / "ablation" / "regularization.yaml"


@dataclass
class SliceShape:
    scale: str = "default"
    variants: int = 4
    seeds: int = 6
    epochs: int = 10

    @classmethod
    def quick(cls) -> SliceShape:
        return cls(scale="smoke", variants=2, seeds=2, epochs=1)

    def names(self) -> tuple[str, ...]:
        return VARIANTS[: self.variants]

    def ablation(self) -> str:
        overrides = yaml.safe_load(REGULARIZATION.read_text())["variants"]
        lines = "\n".join(f"  {n}: [{', '.join(overrides[n])}]" for n in self.names())
        return SLICE.format(seeds=self.seeds, epochs=self.epochs, variants=lines)

    def targets(self) -> list[str]:
        scale = yaml.safe_load((ROOT / "conf" / "scale" / f"{self.scale}.yaml").read_text())
        first = int((scale.get("plan") or {}).get("first_seed", 0) or 0)  # as the plan numbers them
        return [
            f"results/{self.scale}/runs/slice/{variant}/seed{seed}/shift.csv"
            for variant in self.names()
            for seed in range(first, first + self.seeds)
        ]


def workflow_runs_per_job() -> int:
    """The study's own setting: what the default study runs with."""
    settings = yaml.safe_load((ROOT / "conf" / "workflow.yaml").read_text())
    return int(settings.get("runs_per_job", 1))


def run_slice(tmp: Path, shape: SliceShape, runs_per_job: int, cache: Path):
    """Run the slice in a fresh copy; returns its scale folder, Snakemake log and wall time."""
    copy_workflow(tmp, keep_ablations=False)
    (tmp / "conf" / "ablation" / "slice.yaml").write_text(shape.ablation())
    scale = shape.scale
    results = tmp / "results"
    # The data cache is preparation, not the study work measured here (and the copy has no raw
    # data files to prepare it from).
    target = results / scale / "data" / "fashion_mnist.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cache, target)
    argv = [sys.executable, "-m", "snakemake", "--cores", "2", "--config", f"scale={scale}"]
    argv += [f"runs_per_job={runs_per_job}", "results=results", "--", *shape.targets()]
    elapsed, _ = time_command(argv, tmp, timeout=1800)
    log = max((tmp / ".snakemake" / "log").glob("*.snakemake.log"))
    return results / scale, log, elapsed


def slice_study(report: Report, shape: SliceShape, cache: Path | None) -> dict:
    """Efficiency and evaluation share of the slice at runs_per_job 1 and the workflow's."""
    found = {}
    batched = workflow_runs_per_job()
    data = Path(tempfile.mkdtemp(prefix="study-bench-data-"))
    try:
        cache = data_cache(cache, data)
        for runs_per_job in sorted({1, batched}):
            tmp = Path(tempfile.mkdtemp(prefix=f"study-bench-slice{runs_per_job}-"))
            try:
                scale_dir, log, elapsed = run_slice(tmp, shape, runs_per_job, cache)
                prefix = f"slice_rpj{runs_per_job}:"
                found[runs_per_job] = efficiency(report, scale_dir, log, 2, prefix=prefix)
                report.add(prefix + "wall_s", elapsed, "snakemake --cores 2, planning included")
                shares = eval_share(report, scale_dir, prefix=prefix)
                found[runs_per_job]["eval_share"] = shares["all"][1] / sum(shares["all"][:2])
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    report.section(
        f"slice ({shape.scale} scale, {shape.variants} variants × {shape.seeds} seeds, "
        f"{shape.epochs} epochs per run): batched against one run per job"
    )
    report.add(
        "slice_efficiency", found[batched]["efficiency"], f"runs_per_job {batched}, every study job"
    )
    report.add("eval_share:slice", found[batched]["eval_share"], "eval_s / (train_s + eval_s)")
    report.add(
        "slice_efficiency_gain",
        found[batched]["efficiency"] / found[1]["efficiency"],
        f"efficiency at runs_per_job {batched} / at 1",
    )
    return found
