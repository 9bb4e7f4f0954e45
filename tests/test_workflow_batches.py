"""Training jobs of several runs (runs_per_job > 1): a batch spans the variants and seeds of one
ablation, every run keeps the config it has when trained alone, and no run waits for an input it
does not need. Read from the planned jobs (`snakemake -n -p`), so nothing trains."""

from __future__ import annotations

import re
import shlex

import pytest
from omegaconf import OmegaConf
from workflow_copy import copy_workflow, snakemake, tail

from study.config import compose
from study.training.batch import member_config, split_members

# A tuned ablation (untuned baseline, tuned regularizers) and one evaluated under shift.
ABLATIONS = {
    "regularization": ("none", "l2", "dropout", "weight_decay"),
    "normalization": ("batchnorm", "none", "layernorm"),
}
SMOKE = ("--config", "scale=smoke")


def planned_jobs(study, *config):
    """(rule, inputs, outputs, shell command) of every job of a dry run."""
    result = snakemake(study, "-n", "-p", *SMOKE, *config)
    assert result.returncode == 0, tail(result)
    jobs = []
    for block in result.stdout.split("\n\n"):
        rule = re.search(r"^(?:local)?rule (\S+):$", block, re.MULTILINE)
        shell = re.search(r"^Shell command: (.*)$", block, re.MULTILINE)
        if not rule or not shell:
            continue
        found = {k: re.search(rf"^\s+{k}: (.*)$", block, re.MULTILINE) for k in ("input", "output")}
        files = {k: [f.removesuffix(" (update)") for f in m.group(1).split(", ")] if m else []
                 for k, m in found.items()}  # fmt: skip
        jobs.append((rule.group(1), files["input"], files["output"], shell.group(1)))
    return jobs


def training_argv(command):
    argv = shlex.split(command.split(" 2> ")[0])
    assert argv[:3] == ["python", "-m", "study.train"], command
    return argv[3:]


def run_configs(jobs):
    """run.out → the composed config of every run the jobs train."""
    configs = {}
    for _, _, _, command in jobs:
        if "study.train" not in command:
            continue
        argv = training_argv(command)
        if "--" in argv:
            shared, members = split_members(argv)
            cfgs = [member_config(shared, m) for m in members]
        else:
            cfgs = [compose(argv)]
        for cfg in cfgs:
            configs[cfg.run.out] = OmegaConf.to_container(cfg, resolve=True)
    return configs


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("study"), ABLATIONS)


@pytest.fixture(scope="module")
def batched(study):
    # three runs per job, whatever conf/workflow.yaml says, so that the counts below are fixed
    return planned_jobs(study, "runs_per_job=3")


def test_each_run_is_trained_by_one_job_of_at_most_three_runs_of_one_ablation(batched):
    trained = {}
    for rule, _, outputs, command in batched:
        runs = sorted({o.rsplit("/", 1)[0] for o in outputs if o.endswith("/metrics.json")})
        if "study.train" not in command:
            continue
        assert 1 <= len(runs) <= 3, (rule, runs)  # runs_per_job=3
        assert len({r.split("/")[3] for r in runs}) == 1, runs  # results/smoke/<kind>/<ablation>
        for run in runs:
            assert run not in trained, f"{run} in {trained[run]} and {rule}"
            trained[run] = rule
    runs = [r for r in trained if "/runs/" in r]
    # 7 variants x 2 seeds, 9 tuning runs (3 tuned regularizers x 3 strengths, one seed).
    assert len(runs) == 14 and len(trained) == 23
    # Batches span variants: regularization's 2 untuned + 6 tuned runs in 1 + 2 jobs,
    # normalization's 6 runs in 2, the 9 tuning runs in 3 (one job per variant would be 13).
    assert sum("study.train" in job[3] for job in batched) == 8
    spanning = [job for job in batched if "study.train" in job[3] and "/normalization/" in job[3]]
    assert any(len({o.split("/")[4] for o in job[2]}) > 1 for job in spanning)


def test_only_the_runs_of_tuned_variants_wait_for_the_tuning_selection(batched):
    tuned = {"l2", "dropout", "weight_decay"}  # regularization's tune block searches these
    for rule, inputs, outputs, command in batched:
        if "study.train" not in command or "/tune/" in command:
            continue
        variants = {o.split("/")[4] for o in outputs}  # results/smoke/runs/<ablation>/<variant>
        waits = [f for f in inputs if "/selection/" in f]
        assert variants <= tuned if waits else not variants & tuned, (rule, variants, waits)
        assert ("train.lr_from=" in command) == bool(waits), rule


def test_a_batched_run_has_the_config_of_the_run_trained_alone(study, batched):
    alone = planned_jobs(study, "runs_per_job=1")
    assert run_configs(batched) == run_configs(alone)
    assert len(run_configs(alone)) == 23


def test_the_runs_of_a_batch_are_scored_under_shift_by_one_job(batched):
    shift = [job for job in batched if "study.experiments.shift" in job[3]]
    scored = [o for job in shift for o in job[2]]
    # normalization's file scores batchnorm, batchrenorm and layernorm under shift: of the kept
    # variants, batchnorm and layernorm (2 seeds each), never none
    assert len(scored) == 4 and len(set(scored)) == 4
    assert not [o for o in scored if "/none/" in o]
    assert 1 <= len(shift) <= 2
    for _, inputs, outputs, command in shift:
        runs = [o.removesuffix("/shift.csv") for o in outputs]
        assert [f"--run {r}" in command for r in runs] == [True] * len(runs)
        assert {f"{r}/model.pt" for r in runs} <= set(inputs)
