"""A finished study's use of the machine, from its run folders and its Snakemake log.

- ``efficiency``: in-run time of the study's jobs over its wall time × cores; also the mean
  per-job overhead.
- ``eval_share``: evaluation time over training + evaluation time, per ablation.
"""

from __future__ import annotations

import math
import os
import re
import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks.report import Report
from benchmarks.snakemake_log import job_metrics, jobs_under, parse_snakemake_log
from benchmarks.workflow import read_metrics

# Rules whose jobs do study work without a metrics.json of their own: their in-run time is the
# job's wall time (from the log) less the start-up measured on the training jobs.
UNTIMED_WORK_RULES = ("shift", "second_order", "pathologies")

# The workflow makes one rule per batch of runs: train, train_1, train_2, ... (rules/common.smk,
# batch_rules); a rule's kind is its name without that batch number.
BATCH_SUFFIX = re.compile(r"_\d+$")


def rule_kind(rule: str) -> str:
    """``shift_3`` → ``shift``: the rule a batch rule was made from."""
    return BATCH_SUFFIX.sub("", rule)


def job_in_run(log, job, scale_dir: Path) -> tuple[float, list[Path]]:
    """Seconds inside runs of a training or tuning job (the sum of its runs' wall_s) and the
    metrics.json files it wrote."""
    paths = [p for p in job_metrics(log, job, scale_dir) if p.is_file()]
    return sum(float(read_metrics(p)["wall_s"]) for p in paths), paths


def efficiency(
    report: Report, scale_dir: Path, log_path: Path, cores: int | None = None, prefix: str = ""
) -> dict:
    """Time inside study work over wall × cores: training and tuning jobs count the wall_s of
    their runs, shift and second-order jobs their wall time less a training job's start-up."""
    scale_dir = Path(scale_dir).resolve()
    log = parse_snakemake_log(log_path)
    cores = cores or log.cores or os.cpu_count() or 1
    in_run, overheads, job_walls, untimed = 0.0, [], [], []
    by_rule: dict[str, list[float]] = defaultdict(list)
    counted: set[Path] = set()
    for job in jobs_under(log, scale_dir):
        by_rule[rule_kind(job.rule)].append(job.seconds)
        seconds, paths = job_in_run(log, job, scale_dir)
        if not paths:
            if rule_kind(job.rule) in UNTIMED_WORK_RULES:
                untimed.append(job.seconds)
            continue
        in_run += seconds
        counted.update(paths)
        overheads.append(job.seconds - seconds)
        job_walls.append(job.seconds)
    on_disk = set(scale_dir.rglob("metrics.json"))
    if not counted:
        # A log that names no outputs (another Snakemake version): count every run on disk.
        for path in on_disk:
            in_run += float(read_metrics(path)["wall_s"])
        counted = on_disk
    startup = statistics.median(overheads) if overheads else 0.0
    untimed_s = sum(max(0.0, s - startup) for s in untimed)
    capacity = log.wall_s * cores
    busy = sum(s for walls in by_rule.values() for s in walls)
    report.section(f"pipeline efficiency: {scale_dir.name} study, log {log.path.name}")
    report.add(prefix + "study_wall_s", log.wall_s, "first to last timestamp of the Snakemake log")
    report.add(prefix + "study_cores", cores, "Snakemake --cores")
    report.add(
        prefix + "study_jobs", len(jobs_under(log, scale_dir)), "finished jobs of this scale"
    )
    report.add(prefix + "in_run_jobs", len(overheads), "training and tuning jobs with metrics.json")
    report.add(prefix + "in_run_runs", len(counted), "runs and tuning runs with a metrics.json")
    if len(on_disk) != len(counted):
        report.add(
            prefix + "metrics_not_from_log", len(on_disk - counted), "metrics.json not counted"
        )
    report.add(prefix + "in_run_s", in_run, "sum of metrics.json wall_s")
    if untimed:
        report.add(
            prefix + "untimed_work_s", untimed_s,
            f"{len(untimed)} shift/second-order job(s): wall less {startup:.1f} s start-up",
        )  # fmt: skip
    report.add(
        prefix + "efficiency", (in_run + untimed_s) / capacity, "study work / (wall × cores)"
    )
    report.add(prefix + "busy_fraction", busy / capacity, "time cores ran any job / (wall × cores)")
    if overheads:
        report.add(
            prefix + "job_overhead_mean_s",
            statistics.fmean(overheads),
            "per training job: job wall (log, 1 s resolution) − its runs' wall_s",
        )
        report.add(
            prefix + "job_wall_mean_s",
            statistics.fmean(job_walls),
            "per training job, from the log",
        )
        report.add(
            prefix + "training_jobs_in_run",
            in_run / sum(job_walls),
            "Σ runs' wall_s / Σ training and tuning job walls: what start-up leaves",
        )
    for rule, walls in sorted(by_rule.items(), key=lambda kv: -sum(kv[1])):
        report.add(f"{prefix}rule_s:{rule}", sum(walls), f"{len(walls)} job(s)")
    return {
        "in_run_s": in_run,
        "capacity_s": capacity,
        "overheads": overheads,
        "untimed_s": untimed_s,
        "efficiency": (in_run + untimed_s) / capacity,
    }


def eval_share(
    report: Report, scale_dir: Path, prefix: str = ""
) -> dict[str, tuple[float, float, int]]:
    """eval_s / (train_s + eval_s), summed over the runs of each ablation and over all runs."""
    scale_dir = Path(scale_dir)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for path in sorted(scale_dir.rglob("metrics.json")):
        rel = path.relative_to(scale_dir).parts
        metrics = read_metrics(path)
        kind = "tune" if rel[0] == "tune" else "runs"
        key = f"{kind}/{metrics.get('ablation') or rel[min(1, len(rel) - 2)]}"
        for k in (key, "all"):
            totals[k][0] += float(metrics.get("train_s") or 0.0)
            totals[k][1] += float(metrics.get("eval_s") or 0.0)
            totals[k][2] += 1
    report.section(f"evaluation share: {scale_dir.name} study, eval_s / (train_s + eval_s)")
    shares = {}
    for key in sorted(totals, key=lambda k: (k == "all", k)):
        train_s, eval_s, n = totals[key]
        share = eval_s / (train_s + eval_s) if train_s + eval_s > 0 else math.nan
        shares[key] = (train_s, eval_s, n)
        report.add(
            f"{prefix}eval_share:{key}",
            share,
            f"{n} runs, train {train_s:.1f} s, eval {eval_s:.1f} s",
        )
    return shares
