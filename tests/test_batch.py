"""Several runs in one process: the same numbers, files and weights as each run alone, and a
killed batch finishes what it had left."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from study.training.batch import Member, split_members

TINY = [
    "data.n_train=256",
    "data.n_val=128",
    "data.n_test=128",
    "train.batch_size=32",
    "train.epochs=2",
    "train.eval_train_max=128",
    "model.width=32",
    "run.verbose=false",
]
# The run compared: dropout, augmentation and a schedule draw on every piece of process state.
COMPARED = ["seed=1", "model.dropout=0.3", "augment.shift=2", "augment.cutout=6"]
# The run before it in the batch changes that state: other seed, schedule, threads.
BEFORE = ["seed=5", "schedule=step", "threads=2", "model.norm=batchnorm", "optim=sgd"]
TIMING = {"wall_s", "train_s", "eval_s", "s_per_epoch", "images_per_s", "hardware", "versions"}


def train(root, cache, *argv):
    env = {**os.environ, "PYTHONPATH": str(root)}
    args = [sys.executable, "-m", "study.train", *TINY, f"run.cache={cache}", *argv]
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def comparable(folder):
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["config"]["run"].pop("out")
    return {k: v for k, v in metrics.items() if k not in TIMING}


def test_the_command_line_splits_shared_and_per_run_overrides():
    shared, members = split_members(["a=1", "--", "seed=0", "--", "seed=1", "b=2"])
    assert shared == ["a=1"] and members == [Member(("seed=0",)), Member(("seed=1", "b=2"))]


def test_a_run_in_a_batch_equals_the_run_alone_value_for_value(root, fashion_cache, tmp_path):
    alone = train(root, fashion_cache, *COMPARED, f"run.out={tmp_path / 'alone'}")
    assert alone.returncode == 0, alone.stderr
    batch = train(
        root, fashion_cache,
        "--", *BEFORE, f"run.out={tmp_path / 'before'}",
        "--", *COMPARED, f"run.out={tmp_path / 'batched'}",
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    assert comparable(tmp_path / "batched") == comparable(tmp_path / "alone")
    a = torch.load(tmp_path / "alone" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "batched" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "alone/history.csv").read_text().count("\n") == 3
    # The first run was really another run (else the comparison proves nothing).
    assert (
        comparable(tmp_path / "before")["test_loss"] != comparable(tmp_path / "alone")["test_loss"]
    )


def test_a_killed_batch_reruns_only_the_runs_it_had_not_finished(root, fashion_cache, tmp_path):
    argv = [
        "--", "seed=0", f"run.out={tmp_path / 'seed0'}",
        "--", "seed=1", f"run.out={tmp_path / 'seed1'}",
    ]  # fmt: skip
    assert train(root, fashion_cache, *argv).returncode == 0
    finished = (tmp_path / "seed0/metrics.json").stat().st_mtime_ns
    expected = comparable(tmp_path / "seed1")
    (tmp_path / "seed1/metrics.json").unlink()  # killed before seed 1 wrote its result
    rerun = train(root, fashion_cache, *argv)
    assert rerun.returncode == 0, rerun.stderr
    assert "seed0: finished earlier, skipped" in rerun.stderr
    assert (tmp_path / "seed0/metrics.json").stat().st_mtime_ns == finished
    assert comparable(tmp_path / "seed1") == expected


def test_a_finished_run_of_another_config_is_not_skipped(root, fashion_cache, tmp_path):
    out = f"run.out={tmp_path / 'seed0'}"
    assert train(root, fashion_cache, "--", "seed=0", out).returncode == 0
    rerun = train(root, fashion_cache, "--", "seed=0", "model.width=16", out)
    assert rerun.returncode == 0 and "skipped" not in rerun.stderr
    assert comparable(tmp_path / "seed0")["config"]["model"]["width"] == 16
