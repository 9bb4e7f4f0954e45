"""One run: deterministic, atomic, honest about divergence, early stopping as specified."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import study.training.evaluation as evaluation_module
from study.config import compose
from study.errors import ConfigError
from study.training.batches import non_iid_order
from study.training.checkpoint import BestEpoch
from study.training.results import HISTORY_COLUMNS
from study.training.run import apply_tuned_lr, build, train_run

TINY = [
    "data.n_train=256",
    "data.n_val=128",
    "data.n_test=128",
    "train.batch_size=32",
    "train.epochs=3",
    "train.eval_train_max=128",
    "model.width=32",
]
TIMING = {"wall_s", "train_s", "eval_s", "s_per_epoch", "images_per_s", "hardware"}


def run(tmp_path, fashion_cache, *overrides, name="run"):
    out = tmp_path / name
    cfg = compose([*TINY, *overrides, f"run.out={out}", f"run.cache={fashion_cache}"])
    return train_run(cfg), out


def without_timing(metrics):
    return {k: v for k, v in metrics.items() if k not in TIMING}


def test_run_writes_the_contracted_files(tmp_path, fashion_cache):
    metrics, out = run(tmp_path, fashion_cache)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml", "history.csv", "metrics.json", "model.pt"
    ]  # fmt: skip
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["epochs_run"] == 3
    assert on_disk["gap_acc"] == pytest.approx(on_disk["train_acc"] - on_disk["test_acc"])
    assert 0 <= on_disk["weight_sparsity"] <= 1 and on_disk["weight_norm"] > 0
    assert on_disk["n_params"] > 0 and on_disk["config"]["optim"]["name"] == "adamw"
    header = (out / "history.csv").read_text().splitlines()[0]
    assert header == ",".join(HISTORY_COLUMNS)
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_same_config_and_seed_give_identical_numbers(tmp_path, fashion_cache):
    overrides = ["augment.cutout=6", "augment.shift=2", "model.dropout=0.3"]
    a, out_a = run(tmp_path, fashion_cache, *overrides, name="a")
    b, out_b = run(tmp_path, fashion_cache, *overrides, name="b")
    a.pop("config"), b.pop("config")
    assert without_timing(a) == without_timing(b)
    wa = torch.load(out_a / "model.pt", weights_only=True)
    wb = torch.load(out_b / "model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c, _ = run(tmp_path, fashion_cache, *overrides, "seed=1", name="c")
    assert c["test_loss"] != a["test_loss"]


def test_a_diverged_run_is_a_failed_run_reporting_the_model_at_divergence(tmp_path, fashion_cache):
    metrics, out = run(tmp_path, fashion_cache, "optim=sgd", "optim.lr=10000")
    assert metrics["status"] == "diverged" and metrics["weights"] == "diverged"
    assert metrics["diverged_step"] is not None and metrics["diverged_step"] < 8
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["weights"] == "diverged"
    # The diverged model's own scores: chance-level accuracy (10 classes), no finite loss.
    assert on_disk["test_acc"] is not None and on_disk["test_acc"] < 0.3
    assert on_disk["test_loss"] is None and on_disk["val_loss"] is None
    # model.pt holds the weights that were scored: scoring them again gives the same accuracy.
    cfg = compose([*TINY, "optim=sgd", "optim.lr=10000", f"run.out={out}"])
    parts = build(cfg, torch.device("cpu"))
    parts.model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    assert evaluation_module.score(parts, "test")[1] == on_disk["test_acc"]


def test_a_finished_run_reports_its_final_weights_and_tests_only_them(tmp_path, fashion_cache):
    metrics, out = run(tmp_path, fashion_cache)
    assert metrics["weights"] == "final"
    rows = [line.split(",") for line in (out / "history.csv").read_text().splitlines()[1:]]
    test_acc = [row[HISTORY_COLUMNS.index("test_acc")] for row in rows]
    assert test_acc[:-1] == ["", ""]  # not measured in the epochs the run does not report
    assert float(test_acc[-1]) == pytest.approx(metrics["test_acc"], rel=1e-5)


def test_best_epoch_stops_after_patience_on_a_scripted_validation_curve():
    model = torch.nn.Linear(1, 1)
    curve = [1.0, 0.8, 0.7, 0.75, 0.72, 0.9, 0.5]
    tracker = BestEpoch(early_stopping=True, patience=3)
    stopped_at = None
    for epoch, val_loss in enumerate(curve, start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)  # the weights remember which epoch wrote them
        if tracker.update(epoch, val_loss, model):
            stopped_at = epoch
            break
    assert stopped_at == 6  # epochs 4, 5, 6 did not beat epoch 3
    assert tracker.epoch == 3 and tracker.val_loss == 0.7
    assert tracker.restore(model)
    assert float(model.weight.detach()) == 3.0


def test_best_epoch_without_early_stopping_never_stops_or_restores():
    model = torch.nn.Linear(1, 1)
    tracker = BestEpoch(early_stopping=False, patience=1)
    assert not any(tracker.update(e, v, model) for e, v in enumerate([1, 2, 3, 4], start=1))
    assert tracker.epoch == 1 and not tracker.restore(model)


def test_early_stopping_run_returns_the_best_epochs_weights(tmp_path, fashion_cache):
    metrics, out = run(
        tmp_path, fashion_cache, "train.early_stopping=true", "train.patience=1",
        "train.epochs=12", "optim.lr=0.01",
    )  # fmt: skip
    history = (out / "history.csv").read_text().splitlines()[1:]
    val_losses = [float(line.split(",")[5]) for line in history]
    best = val_losses.index(min(val_losses)) + 1
    assert metrics["best_epoch"] == best
    assert metrics["val_loss"] == pytest.approx(min(val_losses), rel=1e-5)
    if metrics["status"] == "stopped_early":
        assert metrics["epochs_run"] == best + 1


def test_a_failing_run_leaves_no_metrics(tmp_path, fashion_cache):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")  # a stale result from an earlier attempt
    cfg = compose([*TINY, f"run.out={out}", f"run.cache={tmp_path / 'absent.pt'}"])
    with pytest.raises(Exception, match="missing data cache"):
        train_run(cfg)
    assert not (out / "metrics.json").exists()


def test_tuned_learning_rate_comes_from_the_selection(tmp_path, fashion_cache):
    selection = tmp_path / "selection.json"
    selection.write_text(json.dumps({"tiny": {"lr": 0.0123}}))
    metrics, out = run(tmp_path, fashion_cache, f"train.lr_from={selection}", "run.variant=tiny")
    assert metrics["lr"] == 0.0123
    assert "lr: 0.0123" in (out / "config.yaml").read_text()


def test_a_selection_entry_after_at_is_another_variants_tuned_value(tmp_path):
    selection = tmp_path / "user@host" / "optimizers.json"  # an "@" in a folder stays in the path
    selection.parent.mkdir()
    selection.write_text(json.dumps({"lion": {"lr": 3e-5}, "optim-sgd_x": {"lr": 0.2}}))
    grid_cell = ["optim=lion", "run.variant=optim-lion_schedule-cosine"]
    cfg = compose([*grid_cell, f"train.lr_from={selection}@lion"])
    apply_tuned_lr(cfg)
    assert cfg.optim.lr == 3e-5
    own = compose(["run.variant=optim-sgd_x", f"train.lr_from={selection}"])
    apply_tuned_lr(own)
    assert own.optim.lr == 0.2
    missing = compose([*grid_cell, f"train.lr_from={selection}@muon"])
    with pytest.raises(ConfigError, match="no tuned value for variant 'muon'"):
        apply_tuned_lr(missing)


def test_interrupted_run_resumes_from_its_checkpoint_with_the_same_numbers(
    tmp_path, fashion_cache, monkeypatch
):
    overrides = ["train.checkpoint=true", "augment.cutout=6", "model.dropout=0.2"]
    reference, _ = run(tmp_path, fashion_cache, *overrides, name="reference")

    real_evaluate, calls = evaluation_module.evaluate, []

    def preempted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the validation of epoch 3 (one evaluation per epoch)
            raise KeyboardInterrupt("preempted")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluation_module, "evaluate", preempted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, fashion_cache, *overrides, name="preempted")
    out = tmp_path / "preempted"
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    monkeypatch.setattr(evaluation_module, "evaluate", real_evaluate)
    resumed, _ = run(tmp_path, fashion_cache, *overrides, name="preempted")
    for metrics in (reference, resumed):
        metrics.pop("config")
    assert without_timing(resumed) == without_timing(reference)
    assert not (out / "checkpoint.pt").exists()


def test_non_iid_batches_hold_only_a_few_classes():
    y = torch.arange(1000) % 10
    order = non_iid_order(y, 32, 2, torch.Generator().manual_seed(0))
    batches = order.view(-1, 32)
    assert len(batches) >= 28
    assert max(len(set(y[b].tolist())) for b in batches) <= 2
    assert len(set(order.tolist())) == len(order)  # no image twice in an epoch


def test_training_job_imports_neither_pandas_nor_plotting(tmp_path, fashion_cache):
    code = (
        "import sys; from study.train import main; sys.argv[1:] = "
        f"{[*TINY, 'train.epochs=1', f'run.out={tmp_path}/job', f'run.cache={fashion_cache}']!r};"
        "\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pandas', 'matplotlib', 'seaborn', 'scipy') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
    assert (tmp_path / "job" / "metrics.json").exists()
    assert (tmp_path / "job" / "train.log").exists()


def test_command_line_error_is_one_line_and_non_zero(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "study.train", f"run.out={tmp_path}/bad", "optim.lr=-1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "optim.lr" in errors[0]
    assert not (tmp_path / "bad" / "metrics.json").exists()


def test_bfloat16_autocast_trains_and_changes_the_arithmetic(tmp_path, fashion_cache):
    fp32, _ = run(tmp_path, fashion_cache, name="fp32")
    bf16, _ = run(tmp_path, fashion_cache, "train.precision=bf16", name="bf16")
    assert bf16["status"] == "ok"
    assert bf16["test_acc"] == pytest.approx(fp32["test_acc"], abs=0.1)
    assert bf16["train_loss"] != fp32["train_loss"]  # autocast really ran the matmuls in bf16
