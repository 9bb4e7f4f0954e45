"""The GPU levers (channels-last, bf16 at the full scale, GPU slots, the regrouped jobs) change
no CPU run's numbers: a run trained by the code of the commit before them and by this tree's code
gives the same metrics and history, value for value."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# The last commit before the GPU levers and the batching that follows the cores.
BEFORE = "5bf92d2"
TIMING = ("wall_s", "train_s", "eval_s", "s_per_epoch", "images_per_s", "seconds", "eval_seconds")
# A residual MLP run at the default scale's settings, and a small ResNet one (the full scale's
# model, on the CPU), each cut to one short epoch.
RUNS = {
    "resmlp": ["data.n_train=1024", "train.max_epochs=1"],
    "resnet": ["model=resnet", "model.width=4", "model.groups=4", "model.stochastic_depth=0.3",
               "augment.cutout=10", "data.n_train=512", "train.max_epochs=1"],
}  # fmt: skip


def code_at(commit: str, dest: Path) -> Path:
    """The study package and configs of ``commit``, unpacked into ``dest``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "study", "conf"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def train(code: Path, out: Path, overrides: list[str], cache: Path) -> tuple[dict, pd.DataFrame]:
    argv = [sys.executable, "-m", "study.train", *overrides, "device=cpu", "threads=1",
            f"run.out={out}", f"run.cache={cache}", "run.verbose=false"]  # fmt: skip
    done = subprocess.run(argv, cwd=code, capture_output=True, text=True, env={
        "PYTHONPATH": str(code), "PATH": "/usr/bin:/bin", "HOME": str(out.parent)
    })  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    history = pd.read_csv(out / "history.csv").drop(columns=list(TIMING), errors="ignore")
    # where and by which commit it ran, and the workflow's run: settings, are not its numbers
    metrics = {k: v for k, v in metrics.items() if k not in (*TIMING, "versions", "hardware")}
    metrics["config"].pop("run", None)
    return metrics, history


def flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_cpu_run_has_the_numbers_it_had_before_the_gpu_levers(name, tmp_path, fashion_cache):
    known = subprocess.run(["git", "cat-file", "-e", BEFORE], cwd=ROOT, capture_output=True)
    if known.returncode != 0:
        pytest.fail(f"commit {BEFORE} is not in this clone's history; fetch it (git fetch)")
    before = code_at(BEFORE, tmp_path / "before")
    metrics_before, history_before = train(before, tmp_path / "a", RUNS[name], fashion_cache)
    metrics_now, history_now = train(ROOT, tmp_path / "b", RUNS[name], fashion_cache)
    # the config hash may differ (a new key outside the numbers); every number may not
    metrics_before.pop("config_hash", None), metrics_now.pop("config_hash", None)
    # keys added to the config since (e.g. model.batchnorm.momentum at its default) are not
    # numbers; every key both configs have must agree
    config_before, config_now = flat(metrics_before.pop("config")), flat(metrics_now.pop("config"))
    shared = config_before.keys() & config_now.keys()
    assert {k: config_now[k] for k in shared} == {k: config_before[k] for k in shared}
    assert metrics_now == metrics_before
    pd.testing.assert_frame_equal(history_now, history_before, check_exact=True)
