"""Start-up: ``python -c "import torch"`` against a training job's start-up up to its first
optimizer step (the real job's ``main`` with the data left out), in fresh interpreters."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from benchmarks.report import Report, median
from benchmarks.training import JOB_PROBE, TRAIN_ENTRY
from benchmarks.workflow import data_cache, read_metrics, time_command

HEAVY_MODULES = ("pandas", "matplotlib", "seaborn", "scipy")


def startup_commands(tmp: Path, cache: Path, job_overrides) -> dict[str, list[str]]:
    """The timed commands, each run in a fresh interpreter."""
    probe = f"HEAVY = {HEAVY_MODULES!r}\nOUT = {str(tmp / 'run')!r}\n{JOB_PROBE}"
    # A whole (short) training job as the workflow starts it: its wall time outside the
    # run's own wall_s is what every job of a study pays on top of its in-run time.
    # The batch form the workflow's jobs use (runs_per_job > 1), with one run.
    real_job = [sys.executable, "-m", TRAIN_ENTRY, "threads=1", "device=cpu", "run.verbose=false"]
    real_job += [f"run.cache={cache}", "--", "data.n_train=1280", "train.epochs=1"]
    real_job += [*job_overrides, f"run.out={tmp / 'job'}"]
    return {
        "torch": [sys.executable, "-c", "import torch"],
        "study_train": [sys.executable, "-c", f"import {TRAIN_ENTRY}"],
        "job": [sys.executable, "-c", probe],
        "real_job": real_job,
    }


def time_rounds(commands: dict[str, list[str]], repeats: int, tmp: Path):
    """Seconds per command over ``repeats`` rounds, and the modules the probe job loaded."""
    # An untimed first round fills the file cache, as a study's second job finds it
    # (skipped for a single repeat, which only checks that everything runs).
    warm = 1 if repeats > 1 else 0
    times: dict[str, list[float]] = defaultdict(list)
    loaded: list[str] = []
    for repeat in range(repeats + warm):
        for name, argv in commands.items():
            if name == "real_job":  # a batch job skips a run it finds finished
                shutil.rmtree(tmp / "job", ignore_errors=True)
            elapsed, stdout = time_command(argv, tmp)
            if name == "real_job":
                elapsed -= read_metrics(tmp / "job" / "metrics.json")["wall_s"]
            if repeat >= warm:
                times[name].append(elapsed)
            if name == "job":
                loaded = json.loads(stdout.strip().splitlines()[-1])
    return times, loaded


def startup(report: Report, repeats: int, cache: Path | None, job_overrides=()):
    tmp = Path(tempfile.mkdtemp(prefix="study-bench-startup-"))
    try:
        commands = startup_commands(tmp, data_cache(cache, tmp), job_overrides)
        times, loaded = time_rounds(commands, repeats, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report_startup(report, repeats, times, loaded)
    return times, loaded


def report_startup(report: Report, repeats: int, times: dict[str, list[float]], loaded):
    torch_s, job_s = median(times["torch"]), median(times["job"])
    heavy = [m for m in loaded if m in HEAVY_MODULES]
    report.section(f"start-up: fresh interpreters, median of {repeats}")
    report.add("startup_import_torch_s", torch_s, 'python -c "import torch"')
    report.add("startup_import_study_train_s", median(times["study_train"]), "import study.train")
    report.add(
        "startup_job_s",
        job_s,
        "study.train.main → Hydra compose → model → optimizer → first step (no data)",
    )
    report.add("startup_ratio", job_s / torch_s, "job start-up / import torch")
    report.add(
        "job_process_overhead_s",
        median(times["real_job"]),
        "python -m study.train: process wall − in-run wall_s (start-up, outputs, exit)",
    )
    report.add(
        "startup_heavy_imports",
        len(heavy),
        f"of {', '.join(HEAVY_MODULES)} loaded by the job: {', '.join(heavy) or 'none'}; "
        f"compiler stack (torch._dynamo) loaded: {'yes' if 'torch._dynamo' in loaded else 'no'}",
    )
