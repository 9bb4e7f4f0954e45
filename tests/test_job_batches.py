"""Runs per training job follow the cores (and GPU slots) given: every core busy when a study is
small, about runs_per_job runs per job when it is large. Read from dry runs (nothing trains)."""

from __future__ import annotations

import re

import pytest
from workflow_copy import copy_workflow, snakemake, tail

from study.planning.ablation import plan
from study.planning.job_batches import batches, even_cuts, jobs_for, slots_of


def test_a_group_gets_a_job_per_slot_when_its_runs_allow():
    assert jobs_for(6, slots=2, most=6) == 2  # 6 runs on 2 cores: 2 jobs of 3, not 1 of 6
    assert jobs_for(27, slots=16, most=6) == 16  # every one of the 16 cores has a job
    assert jobs_for(3, slots=16, most=6) == 3  # never more jobs than runs
    assert jobs_for(240, slots=2, most=6) == 40  # a large group keeps batches of 6
    assert jobs_for(0, slots=2, most=6) == 0


def test_batch_sizes_differ_by_at_most_one_and_keep_plan_order():
    cut = even_cuts(list(range(27)), 16)
    assert [len(b) for b in cut] == [2] * 11 + [1] * 5
    assert [r for b in cut for r in b] == list(range(27))


def test_batches_are_cut_per_group_with_the_slots_of_their_device():
    runs = [("a", "cpu", i) for i in range(6)] + [("b", "cuda", i) for i in range(8)]
    slots = slots_of(cores=4, threads=1, gpu_slots=2)
    cut = batches(runs, key=lambda r: r[0], slots=lambda r: slots(r[1]), most=6)
    assert [len(b) for b in cut] == [2, 2, 1, 1, 4, 4]  # cpu: 4 jobs; cuda: 2 GPU slots
    assert all(len({r[0] for r in b}) == 1 for b in cut)
    assert slots_of(cores=16, threads=2, gpu_slots=None)("cpu") == 8
    assert slots_of(cores=None, threads=1, gpu_slots=None)("cpu") == 1


def job_counts(study, *args):
    """rule kind (train, tune, shift) → jobs, from a dry run's job table."""
    result = snakemake(study, "-n", *args)
    assert result.returncode == 0, tail(result)
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    counts: dict[str, int] = {}
    for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE):
        kind = re.sub(r"_\d+$", "", rule)
        counts[kind] = counts.get(kind, 0) + int(n)
    return counts


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    # a user's 3-variant ablation: 3 variants x 2 seeds at smoke scale, evaluated under shift
    return copy_workflow(
        tmp_path_factory.mktemp("small"), {"normalization": ("batchnorm", "none", "layernorm")}
    )


@pytest.mark.slow  # dry runs of the workflow: 10-30 s each
def test_six_runs_on_two_slots_are_two_jobs(small):
    counts = job_counts(small, "--cores", "2", "--config", "scale=smoke", "slots=2")
    assert counts["train"] == 2 and counts["shift"] == 2
    assert job_counts(small, "--cores", "2", "--config", "scale=smoke")["train"] == 1
    # --cores alone never regroups: a later dry run finds the same jobs
    assert job_counts(small, "--cores", "16", "--config", "scale=smoke")["train"] == 1


@pytest.mark.slow  # dry runs of the workflow: 10-30 s each
def test_a_gpu_study_gets_a_job_per_gpu_slot(small):
    args = ("--cores", "16", "--resources", "gpu=16", "--config", "scale=full")
    # full scale: 16 runs on cuda (batchnorm 6 seeds, the others 5)
    assert job_counts(small, *args, "slots=3")["train"] == 3
    assert job_counts(small, *args, "slots=16")["train"] == 16


@pytest.mark.slow  # dry runs of the workflow: 10-30 s each
def test_a_study_of_27_runs_keeps_16_cores_busy(tmp_path):
    study = copy_workflow(tmp_path, {"schedules": None})
    counts = job_counts(study, "--cores", "16", "--config", "scale=default", "slots=16")
    assert counts["train"] >= 14  # 37 runs at this scale (27 when the issue was filed): 16 jobs


@pytest.mark.slow  # dry runs of the workflow: 10-30 s each
def test_the_default_study_on_two_cores_keeps_about_six_runs_per_job(tmp_path):
    study = copy_workflow(tmp_path, None)
    counts = job_counts(study, "--cores", "2")
    planned = plan(study / "conf" / "ablation", "default")  # the runs the jobs group
    assert len(planned.runs) / counts["train"] >= 5, counts
    assert len(planned.tuning) / counts["tune"] >= 5, counts
