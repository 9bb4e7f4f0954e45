"""Planning a large study: the time of ``snakemake -n`` on a copy of the workflow with a large
generated ablation.

Snakemake's SLURM plugin, installed with the study, asks the SLURM controller for its settings
(``scontrol show config``) when it is imported, if SLURM's tools are on the PATH. On a cluster
that answers at once; on a machine with the tools but no controller it waits up to 10 s, in
every ``snakemake`` call, whatever the study. The dry runs are timed with ``sinfo`` (the tool
the plugin looks for first) off the PATH, and the plugin's query is timed on its own.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import Report, median
from benchmarks.workflow import checkout_env, copy_workflow, time_command

# The tool whose presence makes the SLURM plugin query the controller when it is imported.
SLURM_PROBE_TOOL = "sinfo"

OPTIMS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "exponential", "cosine", "linear", "inverse_sqrt", "piecewise")


def grid_ablation(n_runs: int, seeds: int = 3) -> tuple[str, int]:
    """An ablation file (YAML text) whose grid gives at least ``n_runs`` runs: optimizers ×
    schedules (distinct Hydra compositions) × dropout rates (value overrides)."""
    side = max(1, min(len(OPTIMS), math.ceil(math.sqrt(n_runs / seeds))))
    per_rate = side * side * seeds
    rates = [round(0.05 * i, 2) for i in range(math.ceil(n_runs / per_rate))]
    text = "\n".join(
        [
            "title: Planning benchmark",
            "question: How long does planning a large study take?",
            f"baseline: optim-{OPTIMS[0]}_schedule-{SCHEDULES[0]}_dropout-{rates[0]}",
            f"seeds: {seeds}",
            "common: [train.epochs=8]",
            "grid:",
            f"  optim: [{', '.join(OPTIMS[:side])}]",
            f"  schedule: [{', '.join(SCHEDULES[:side])}]",
            f"  model.dropout: [{', '.join(str(r) for r in rates)}]",
            # Planning time is what is measured, so every cell is compared with the first, the
            # three grid keys declared as the factor (the plan checks each pair's differences).
            "compare:",
            "  - factor: [optim, schedule, model.dropout]",
            "    variants: ["
            + ", ".join(
                f"optim-{o}_schedule-{sc}_dropout-{r}"
                for o in OPTIMS[:side]
                for sc in SCHEDULES[:side]
                for r in rates
            )
            + "]",
        ]
    )
    return text + "\n", per_rate * len(rates)


def job_stats(output: str) -> dict[str, int]:
    """The ``Job stats`` table of ``snakemake -n``: rule → number of jobs."""
    stats, inside = {}, False
    for line in output.splitlines():
        if line.startswith("Job stats"):
            inside, stats = True, {}
            continue
        if inside and (m := re.match(r"^(\w+)\s+(\d+)\s*$", line)):
            stats[m.group(1)] = int(m.group(2))
            if m.group(1) == "total":
                inside = False
    return stats


def path_without(tool: str, links: Path) -> str:
    """The PATH with ``tool`` not found on it: a folder holding it is replaced by ``links``, a
    folder of links to everything else in it."""
    folders = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and (Path(folder) / tool).exists():
            links.mkdir(parents=True, exist_ok=True)
            for entry in Path(folder).iterdir():
                if entry.name != tool and not (links / entry.name).exists():
                    (links / entry.name).symlink_to(entry)
            folder = str(links)
        folders.append(folder)
    return os.pathsep.join(dict.fromkeys(folders))


def slurm_probe_s() -> float:
    """Wall time of the SLURM plugin's import-time query; 0 where SLURM's tools are absent."""
    if shutil.which(SLURM_PROBE_TOOL) is None or shutil.which("scontrol") is None:
        return 0.0
    t0 = time.perf_counter()
    with contextlib.suppress(subprocess.TimeoutExpired):  # the plugin gives up after 10 s too
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=10)
    return time.perf_counter() - t0


def dry_run_times(workflow: Path, scale: str, repeats: int) -> tuple[list[float], dict]:
    argv = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--config", f"scale={scale}"]
    env = {**checkout_env(), "PATH": path_without(SLURM_PROBE_TOOL, workflow / ".bin")}
    times, stats = [], {}
    for _ in range(repeats):
        elapsed, stdout = time_command(argv, workflow, env=env)
        times.append(elapsed)
        stats = job_stats(stdout)
    return times, stats


def planned_runs(workflow: Path, scale: str) -> int:
    """Training and tuning runs of the workflow's ablations (jobs may hold several runs each)."""
    from study.planning.ablation import plan

    planned = plan(workflow / "conf" / "ablation", scale)
    return len(planned.runs) + len(planned.tuning)


def plan_time(report: Report, n_runs: int, repeats: int, keep_ablations: bool, scale: str):
    """``snakemake -n`` of the study as it is (when its ablations are kept) and with a generated
    grid added: the planning time of a study that grows."""
    tmp = Path(tempfile.mkdtemp(prefix="study-bench-plan-"))
    try:
        copy_workflow(tmp, keep_ablations)
        study_times = dry_run_times(tmp, scale, repeats)[0] if keep_ablations else []
        text, grid_runs = grid_ablation(n_runs)
        (tmp / "conf" / "ablation" / "bench_grid.yaml").write_text(text)
        times, stats = dry_run_times(tmp, scale, repeats)
        runs = planned_runs(tmp, scale)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.section(
        f"planning: snakemake -n --cores 2 on a copy of the workflow with a generated grid "
        f"({'plus' if keep_ablations else 'without'} the study's ablations), median of {repeats}, "
        f"{SLURM_PROBE_TOOL} off the PATH"
    )
    if study_times:
        report.add("dry_run_s", median(study_times), f"snakemake -n of the {scale} study alone")
    report.add("plan_grid_runs", grid_runs, "runs of the generated ablation")
    report.add("plan_runs", runs, "training and tuning runs planned")
    report.add("plan_jobs", stats.get("total", 0), "jobs planned in all")
    report.add("plan_s", median(times), "wall time of snakemake -n")
    report.add(
        "slurm_probe_s",
        slurm_probe_s(),
        "scontrol show config: what the SLURM plugin adds to every snakemake call here "
        "(0: no SLURM tools; a cluster answers at once)",
    )
    return times, stats
