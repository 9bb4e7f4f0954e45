"""The study on a real SLURM cluster: the laptop's command with `--profile profiles/slurm` runs
every job through sbatch and gives the laptop's numbers, value for value.

The cluster is the single-node one that `.ci/slurm/start` sets up on this machine (slurmctld,
slurmd and munge on localhost, no accounting database). In CI (CI set) a cluster that cannot be
started fails these tests; elsewhere they are skipped only when SLURM is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
import yaml
from workflow_copy import (
    ROOT,
    TIMING,
    assert_same_runs,
    comparable_runs,
    copy_workflow,
    reference_study,
    snakemake,
    tail,
)

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

# The executor waits 10 s before its first status check and 40 s after a round in which a job
# finished (more after rounds without one): right for hours-long jobs on a busy cluster, but it
# would dominate a smoke study whose jobs take seconds. The tests check every second instead.
FAST_STATUS = ("--seconds-between-status-checks=1", "--slurm-init-seconds-before-status-checks=1")


def cluster_answers() -> bool:
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
        nodes = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return False
    usable = {"idle", "mixed", "allocated", "completing"}
    return "is UP" in ping.stdout and bool(usable & set(nodes.stdout.split()))


@pytest.fixture(scope="module")
def slurm_cluster():
    """A SLURM cluster that answers; started (and afterwards stopped) here if none runs."""
    if cluster_answers():
        yield
        return
    installed = all(shutil.which(c) for c in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not installed and not os.environ.get("CI"):
        pytest.skip("SLURM is not installed (.ci/slurm/start installs and starts it, as root)")
    start = subprocess.run(
        [str(ROOT / ".ci/slurm/start")], capture_output=True, text=True, timeout=600
    )
    if start.returncode != 0 or not cluster_answers():
        pytest.fail(f".ci/slurm/start could not start a cluster:\n{start.stdout}\n{start.stderr}")
    yield
    subprocess.run([str(ROOT / ".ci/slurm/stop")], capture_output=True, timeout=120)


def test_smoke_study_through_sbatch_gives_the_local_numbers(
    slurm_cluster, tmp_path, tmp_path_factory
):
    local = reference_study(tmp_path_factory)
    study = copy_workflow(tmp_path / "study")
    start = time.perf_counter()
    result = snakemake(
        study, "--profile", "profiles/slurm", "--config", "scale=smoke", *FAST_STATUS
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 0, tail(result)
    print(f"\nreduced smoke study: SLURM {seconds:.0f} s, local (--cores 2) {local.seconds:.0f} s")

    # Every job went through sbatch: a SLURM job for each job of the DAG but the target rule.
    log = result.stdout + result.stderr
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    planned = re.search(r"^total\s+(\d+)$", log, re.MULTILINE)
    assert planned, tail(result)
    assert len(set(submitted)) >= int(planned.group(1)) - 1, tail(result)
    assert re.findall(r"^localrule (\w+):", log, re.MULTILINE) == ["all"], tail(result)
    assert (study / "results/smoke/paper/report.html").is_file()
    assert_same_runs(comparable_runs(study), comparable_runs(local.path))


def test_a_cuda_run_asks_the_scheduler_for_a_gpu(slurm_cluster, tmp_path):
    # The workflow declares resources gpu=1 for each run whose device is cuda ...
    study = copy_workflow(tmp_path / "study")
    ablation = study / "conf/ablation/regularization.yaml"
    spec = yaml.safe_load(ablation.read_text())
    spec["common"].append("device=cuda")
    ablation.write_text(yaml.safe_dump(spec, sort_keys=False))
    plan = snakemake(study, "-n", "--profile", "profiles/slurm", "--config", "scale=smoke")
    assert plan.returncode == 0, tail(plan)
    jobs = plan.stdout.split("\n\n")
    train = [j for j in jobs if re.search(r"^rule train:", j, re.MULTILINE)]
    prepare = [j for j in jobs if re.search(r"^rule prepare_data:", j, re.MULTILINE)]
    assert train and prepare, tail(plan)
    assert all(re.search(r"resources: .*\bgpu=1\b", j) for j in train), train[0]
    assert not any(re.search(r"\bgpu=1\b", j) for j in prepare), prepare[0]

    # ... and the profile turns that resource into a GPU allocation (this node offers one GPU
    # slot, bound to /dev/null where the machine has none), while other jobs get no GPU.
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu/Snakefile").write_text(
        textwrap.dedent(
            """\
            rule all:
                input: "gpu.txt", "cpu.txt"

            rule on_gpu:
                output: "gpu.txt"
                resources: gpu=1
                shell: "echo ${{CUDA_VISIBLE_DEVICES:-none}} > {output}"

            rule on_cpu:
                output: "cpu.txt"
                resources: gpu=0
                shell: "echo ${{CUDA_VISIBLE_DEVICES:-none}} > {output}"
            """
        )
    )
    # Jobs inherit the submitting environment (sbatch --export=ALL): start from one without a GPU.
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    result = snakemake(
        tmp_path / "gpu", "--profile", str(ROOT / "profiles/slurm"), *FAST_STATUS, env=env
    )
    assert result.returncode == 0, tail(result)
    assert (tmp_path / "gpu/gpu.txt").read_text().strip() != "none"
    assert (tmp_path / "gpu/cpu.txt").read_text().strip() == "none"


# One run long enough to be preempted between epochs, with epoch checkpoints as at scale=full.
PREEMPTIBLE = """\
title: Preemption
question: Does a preempted run continue where it stopped?
baseline: none
seeds: 1
common: [train.checkpoint=true, train.epochs=8, train.max_epochs=8, data.n_train=8000]
variants:
  none: []
"""


def slurm_job_of(comment: str) -> str:
    jobs = subprocess.run(
        ["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    ids = [line.split()[0] for line in jobs if line.endswith(f" {comment}")]
    assert len(ids) == 1, jobs
    return ids[0]


def squeue_state(job: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True
    ).stdout.strip()


def test_a_preempted_run_is_requeued_and_continues_from_its_checkpoint(slurm_cluster, tmp_path):
    study = copy_workflow(tmp_path / "study", {"regularization": None})
    (study / "conf/ablation/regularization.yaml").write_text(PREEMPTIBLE)
    run = study / "results/smoke/runs/regularization/none/seed0"
    args = ("--config", "scale=smoke", "--until", "train")
    with (tmp_path / "slurm.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", *args, *FAST_STATUS],
            cwd=study,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 300
        while not (run / "checkpoint.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        # What a preemption with PreemptMode=REQUEUE does: stop the job, put it back in the queue.
        # One job trains a batch of runs (runs_per_job), a rule of its own without wildcards;
        # the study's only batch keeps the plain name.
        job = slurm_job_of("rule_train")
        subprocess.run(["scontrol", "requeue", job], check=True)
        while squeue_state(job) != "PENDING":
            assert time.monotonic() < deadline, squeue_state(job)
            time.sleep(0.1)
        # Slurm holds a requeued job for two minutes before it may start again; not here.
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
        assert proc.wait(timeout=300) == 0, (tmp_path / "slurm.log").read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()

    assert "resumed from" in (run / "train.log").read_text()
    assert not (run / "checkpoint.pt").exists()
    # The same run, uninterrupted and local, gives the same numbers.
    local = copy_workflow(tmp_path / "local", {"regularization": None})
    (local / "conf/ablation/regularization.yaml").write_text(PREEMPTIBLE)
    result = snakemake(local, "--cores", "1", *args)
    assert result.returncode == 0, tail(result)
    resumed, uninterrupted = (
        json.loads((folder / run.relative_to(study) / "metrics.json").read_text())
        for folder in (study, local)
    )
    for metrics in (resumed, uninterrupted):
        for key in (*TIMING, "versions", "hardware"):
            metrics.pop(key)
    assert resumed == uninterrupted
