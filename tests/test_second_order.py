"""Quasi-Newton reference experiment (study/experiments/second_order.py)."""

import csv

import pytest
import torch

from study.experiments.second_order import COLUMNS, METHODS, Objective, compare, main


def synthetic(n: int = 200, d: int = 20, classes: int = 3, seed: int = 0):
    """A noisy linear classification problem with features of different scales (ill-conditioned)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator) * torch.logspace(0, 1, d)
    x = (x - x.mean(0)) / x.std(0)
    w = torch.randn(d, classes, generator=generator)
    y = (x @ w + 0.5 * torch.randn(n, classes, generator=generator)).argmax(1)
    return x, y


@pytest.fixture(scope="module")
def rows():
    torch.set_num_threads(1)
    x, y = synthetic()
    return {row["method"]: row for row in compare(x, y, max_iters=1500)}


def test_rows_have_the_documented_columns(rows):
    assert list(rows) == list(METHODS)
    for row in rows.values():
        assert set(COLUMNS) <= set(row)
        assert row["evaluations"] >= row["iterations"]
        assert row["seconds"] >= 0 and row["s_per_iter"] >= 0


def test_lbfgs_needs_far_fewer_iterations_than_gradient_descent(rows):
    lbfgs, gd = rows["lbfgs"], rows["gd"]
    assert lbfgs["reached"]
    assert lbfgs["final_loss"] <= lbfgs["target_loss"]
    assert lbfgs["iterations"] * 10 < gd["iterations"]
    # The default target is within 1% of the long L-BFGS run's objective.
    assert lbfgs["target_loss"] == pytest.approx(1.01 * lbfgs["reference_loss"])


def test_fixed_target_and_cap():
    x, y = synthetic(n=100, d=10)
    rows = compare(x, y, target_loss=-1.0, max_iters=5, methods=("lbfgs", "gd"))
    for row in rows:
        assert not row["reached"] and row["iterations"] == 5 and row["target_loss"] == -1.0


def test_objective_cache_does_not_recount_the_same_point():
    x, y = synthetic(n=50, d=5)
    model = torch.nn.Linear(5, 3)
    objective = Objective(model, x, y, l2=1e-3)
    first = objective()
    grad = model.weight.grad.clone()
    model.weight.grad = None
    assert objective() == first and objective.evaluations == 1
    assert torch.equal(model.weight.grad, grad)  # gradients are restored on a cache hit
    with torch.no_grad():
        model.weight.add_(0.1)
    objective()
    assert objective.evaluations == 2


def test_cli_writes_the_csv_atomically(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    images = torch.randint(0, 60, (60, 1, 28, 28), generator=generator, dtype=torch.uint8)
    images[:, :, :5, :5] += (80 * labels).to(torch.uint8).view(-1, 1, 1, 1)  # learnable signal
    cache = tmp_path / "data.pt"
    torch.save({"train_x": images, "train_y": labels}, cache)
    out = tmp_path / "out" / "second_order.csv"
    main(["--data", str(cache), "--out", str(out), "--n", "40", "--max-iters", "30"])
    with out.open() as handle:
        reader = csv.DictReader(handle)
        table = list(reader)
    assert reader.fieldnames == COLUMNS
    assert [row["method"] for row in table] == list(METHODS)
    assert all(row["n"] == "40" and row["features"] == "784" for row in table)
    assert sorted(p.name for p in out.parent.iterdir()) == ["second_order.csv"]  # no temp left
