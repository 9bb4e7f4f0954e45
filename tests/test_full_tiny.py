"""The full scale's plan at a tiny size on the CPU (`--config scale=full_tiny`): the paths a GPU
user's `scale=full` study takes (the ResNet, epoch checkpoints, the training-set-size ablation,
cutout and stochastic depth on a CNN, tuning, shift scoring, tables, figures and the report)
run here first, in CI, in a temporary copy of the workflow (never the repository's paper/), by the
CPU path of the prepared GPU script (benchmarks/gpu_full_study.sh --no-gpu: its check, its dry
run of the full study and its tiny run)."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest
from workflow_copy import ROOT, copy_workflow

from study.config import compose
from study.planning.ablation import plan

pytestmark = pytest.mark.slow

# One of each full-scale path, at 2 seeds: 14 final runs and 6 tuning runs.
PATHS = {
    "regularization": ("none", "cutout", "stochastic_depth"),  # CNN-only techniques, tuned
    "normalization": ("batchnorm", "batchrenorm"),  # scored under shift
    "data_size": ("none_4k", "dropout_4k"),  # runs only at the full scale
}


def test_full_tiny_runs_the_plan_of_the_full_scale():
    full, tiny = plan("conf/ablation", "full"), plan("conf/ablation", "full_tiny")
    assert set(tiny.ablations) == set(full.ablations) and "data_size" in tiny.ablations
    variants = {(r.ablation, r.variant) for r in full.runs}
    assert {(r.ablation, r.variant) for r in tiny.runs} == variants
    assert {(t.ablation, t.variant) for t in tiny.tuning} == {
        (t.ablation, t.variant) for t in full.tuning
    }
    for name, ablation in full.ablations.items():
        assert tiny.ablations[name].compare == ablation.compare, name
    cfg_full, cfg_tiny = compose(["scale=full"]), compose(["scale=full_tiny"])
    assert cfg_tiny.model.name == cfg_full.model.name == "resnet"
    assert cfg_tiny.train.checkpoint and cfg_tiny.device == "cpu"
    assert cfg_tiny.train.batch_size == cfg_full.train.batch_size


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    study = copy_workflow(tmp_path_factory.mktemp("full_tiny"), PATHS)
    (study / "benchmarks").mkdir()
    shutil.copy(ROOT / "benchmarks/gpu_full_study.sh", study / "benchmarks")
    argv = ["bash", "benchmarks/gpu_full_study.sh", "--no-gpu", "--cores", "2", "--out", "out"]
    done = subprocess.run(argv, cwd=study, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return study


def test_the_gpu_script_timed_its_cpu_steps_and_brought_back_the_results(study):
    timings = pd.read_csv(study / "out/timings.tsv", sep="\t")
    assert list(timings["step"]) == ["check", "dry-run", "tiny"]
    assert (timings["status"] == 0).all() and (timings["seconds"] > 0).all()
    planned = (study / "out/dry-run.log").read_text()
    assert "data_size" in planned and "scale=full" in planned
    assert (study / "out/full_tiny/tables/runs.csv").is_file()
    assert not list((study / "out").rglob("*.pt"))  # models stay behind


def test_every_full_scale_path_ran_on_the_cpu(study):
    root = study / "results/full_tiny"
    runs = pd.read_csv(root / "tables/runs.csv")
    assert len(runs) == 14 and set(runs["status"]) <= {"ok", "diverged", "stopped_early"}
    assert set(runs["config.model.name"]) == {"resnet"}
    assert runs["config.train.checkpoint"].all()
    assert not list(root.glob("runs/*/*/*/checkpoint.pt"))  # removed once a run finished
    sizes = runs.loc[runs["ablation"] == "data_size", "config.data.n_train"]
    assert set(sizes) == {4000}
    assert len(list(root.glob("tune/regularization/*/*/*/metrics.json"))) == 6
    shift = pd.concat(pd.read_csv(p) for p in root.glob("runs/normalization/*/*/shift.csv"))
    assert len(shift) > 0
    report = (root / "paper/report.md").read_text()
    assert "Training-set size" in report and "ResNet" in report
    assert not (study / "paper/report.md").exists()
