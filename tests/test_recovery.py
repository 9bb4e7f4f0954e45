"""Faults: a study killed mid-run recovers with the README's commands, redoes only what was not
finished, and ends with the numbers of an uninterrupted study; a run that fails leaves nothing
that looks complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64encode
from pathlib import Path

import pytest
from workflow_copy import (
    REDUCED,
    assert_complete_or_not_finished,
    assert_same_runs,
    comparable_runs,
    copy_workflow,
    finished_runs,
    reference_study,
    run_folders,
    snakemake,
    tail,
)

pytestmark = pytest.mark.slow

SMOKE = ("--config", "scale=smoke")
N_RUNS = sum(len(v) for v in REDUCED.values()) * 2  # smoke scale: two seeds


def group_processes(pgid: int) -> dict[int, str]:
    """pid → command line of every live process in process group ``pgid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid and fields[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def recorded_finished(study: Path) -> dict[Path, int]:
    """Runs that finished and that Snakemake has seen finish → mtime of their metrics.json.

    Snakemake marks a job's outputs incomplete (a file named by the base64 of the output path in
    .snakemake/incomplete/) until it has seen the job end; a run that wrote metrics.json an
    instant before the kill may still be marked, and a recovery redoes it, correctly."""
    marks = study / ".snakemake/incomplete"
    done = {}
    for run in finished_runs(study):
        metrics = run / "metrics.json"
        mark = urlsafe_b64encode(str(metrics.relative_to(study)).encode()).decode()
        if not (marks / mark).exists():
            done[run] = metrics.stat().st_mtime_ns
    return done


def kill_mid_study(study: Path, log: Path) -> dict[Path, int]:
    """Start the study and SIGKILL Snakemake and its running jobs (the whole process group, as a
    lost session or an out-of-memory kill would) while a training run is under way and some
    have finished. Returns the runs recorded as finished just before the kill."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "2", *SMOKE],
            cwd=study,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            done = recorded_finished(study)
            # Snakemake creates a run's folder as the job starts; metrics.json comes last.
            running = [r for r in run_folders(study) if not (r / "metrics.json").exists()]
            training = [c for c in group_processes(proc.pid).values() if "study.train" in c]
            if done and running and training:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the study ended before it could be killed:\n" + log.read_text()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for _ in range(100):  # the killed jobs are reaped by init, not by this process
        if not group_processes(proc.pid):
            break
        time.sleep(0.1)
    assert not group_processes(proc.pid)
    return done


def test_killed_study_recovers_and_matches_an_uninterrupted_one(tmp_path, tmp_path_factory):
    reference = reference_study(tmp_path_factory)
    study = copy_workflow(tmp_path / "study")
    before = kill_mid_study(study, tmp_path / "killed.log")

    # The kill left finished runs, at least one run cut short, and nothing in between.
    assert before
    assert [r for r in run_folders(study) if not (r / "metrics.json").exists()]
    for run in run_folders(study):
        assert_complete_or_not_finished(run)

    # A plain rerun refuses: the killed Snakemake's lock is still there ...
    again = snakemake(study, "--cores", "2", *SMOKE)
    assert again.returncode != 0
    assert "cannot be locked" in again.stdout + again.stderr, tail(again)

    # ... so the recovery is: unlock, then rerun, redoing the jobs that were running.
    unlock = snakemake(study, "--unlock")
    assert unlock.returncode == 0, tail(unlock)
    rerun = snakemake(study, "--cores", "2", *SMOKE, "--rerun-incomplete")
    assert rerun.returncode == 0, tail(rerun)

    after = {r: (r / "metrics.json").stat().st_mtime_ns for r in before}
    assert after == before, "runs recorded as finished before the kill were trained again"
    assert len(finished_runs(study)) == N_RUNS
    for run in run_folders(study):
        assert_complete_or_not_finished(run)
    assert (study / "results/smoke/paper/report.html").is_file()
    assert_same_runs(comparable_runs(study), comparable_runs(reference.path))


def test_a_run_that_fails_leaves_nothing_that_looks_complete(tmp_path):
    study = copy_workflow(tmp_path / "study")
    cache = study / "results/smoke/data/fashion_mnist.pt"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"\x80\x02 this is not a data cache")
    run = study / "results/smoke/runs/regularization/none/seed0"
    target = str(run.relative_to(study) / "metrics.json")
    result = snakemake(study, target, "--cores", "1", *SMOKE)  # targets before --config
    assert result.returncode != 0, tail(result)
    # A job that trains a batch of runs keeps its output in its log (Snakemake prints the path).
    logs = sorted((study / "results/smoke/logs/train").rglob("*.log"))
    text = result.stderr + "".join(log.read_text() for log in logs)
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    # one line, the same for every run of the batch that met the bad cache
    assert errors and len(set(errors)) == 1, tail(result)
    assert "fashion_mnist.pt" in errors[0] and "delete it" in errors[0], errors[0]
    assert not (run / "metrics.json").exists()
    assert not (run / "model.pt").exists()
    assert errors[0].removeprefix("error: ") in (run / "train.log").read_text()
