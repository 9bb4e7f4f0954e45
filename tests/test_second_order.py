"""Second-order versus first-order scaling (study/experiments/second_order*.py)."""

import csv
import json
import math

import pytest
import torch

from study.experiments.second_order import COLUMNS, METHODS, hessian, main, newton
from study.experiments.second_order_problems import flat_objective, logreg_problem
from study.experiments.second_order_scaling import (
    crossover,
    fit_power_law,
    grows_at_least,
    order_statistic_interval,
    predict,
)


def test_newton_solves_a_quadratic_in_one_iteration():
    generator = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    a = m @ m.T + torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=generator, dtype=torch.float64)

    def quadratic(theta):
        return 0.5 * theta @ a @ theta - b @ theta

    theta, losses = newton(quadratic, torch.zeros(6, dtype=torch.float64), max_iters=10)
    minimum = torch.linalg.solve(a, b)
    assert torch.allclose(theta, minimum, atol=1e-12)
    assert losses[1] == pytest.approx(float(quadratic(minimum)), abs=1e-12)
    assert len(losses) == 3  # the second iteration finds nothing left to gain and stops


def test_hessian_matches_finite_differences_on_a_tiny_logistic_problem():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(20, 3, generator=generator, dtype=torch.float64)
    y = torch.arange(20) % 3
    model = torch.nn.Linear(3, 3).to(torch.float64)
    loss, theta = flat_objective(model, x, y, l2=1e-3)
    exact = hessian(loss, theta, chunk_size=5)
    grad = torch.func.grad(loss)
    eps = 1e-6
    columns = []
    for i in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[i] = eps
        columns.append((grad(theta + e) - grad(theta - e)) / (2 * eps))
    numeric = torch.stack(columns, dim=1)
    assert exact.shape == (12, 12)
    assert torch.allclose(exact, numeric, atol=1e-7)
    assert torch.allclose(exact, exact.T, atol=1e-12)


def test_fitted_exponent_recovers_a_planted_quadratic_law():
    n = [100, 300, 1000, 3000, 10000]
    fit = fit_power_law(n, [3e-9 * v**2.0 for v in n])
    assert fit["slope"] == pytest.approx(2.0, abs=1e-9)
    assert fit["lo"] == pytest.approx(2.0, abs=1e-9) and fit["hi"] == pytest.approx(2.0, abs=1e-9)
    assert grows_at_least(fit, 2.0) == "supported"
    assert predict(fit, 1e6)["value"] == pytest.approx(3e-9 * 1e12, rel=1e-8)


def test_a_linear_law_fails_the_claim_of_at_least_quadratic_growth():
    n = [100, 300, 1000, 3000, 10000]
    noise = [1.05, 0.97, 1.02, 0.99, 1.01]
    fit = fit_power_law(n, [2e-6 * v * e for v, e in zip(n, noise, strict=True)])
    assert fit["slope"] == pytest.approx(1.0, abs=0.05)
    assert fit["hi"] < 2.0
    assert grows_at_least(fit, 2.0) == "contradicted"
    assert grows_at_least(fit, 1.0) == "inconclusive"  # the interval straddles 1


def test_crossover_is_interpolated_on_log_log():
    n = [100, 1000, 10000]
    newton_s = [1e-3, 1e-1, 10.0]  # N^2
    first_s = [1e-2, 1e-1 * 10**-0.5, 1.0]
    result = crossover(n, newton_s, [1e-2, 1e-1, 1.0])  # equal at N = 1000
    assert result["status"] == "measured" and result["n"] == pytest.approx(1000.0)
    result = crossover(n, newton_s, first_s)
    assert result["status"] == "measured"
    # log gap: -1 at 100, +0.5 at 1000 -> 1/1.5 of the way from 100 to 1000 on the log scale
    assert result["n"] == pytest.approx(100 * 10 ** (1 / 1.5))
    assert crossover(n, [1.0, 2.0, 3.0], [0.1, 0.2, 0.3])["status"] == (
        "first_order_faster_everywhere"
    )
    # Newton faster everywhere: the fitted laws N^2 and N^1 meet beyond the measured range.
    far = crossover(n, [1e-6 * v**2 for v in n], [1e-1 * v for v in n])
    assert far["status"] == "extrapolated" and far["n"] == pytest.approx(1e5)


def test_order_statistic_interval_of_five_repeats_is_the_range():
    median, lo, hi, coverage = order_statistic_interval([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (median, lo, hi) == (3.0, 1.0, 5.0)
    assert coverage == pytest.approx(1 - 2 / 32)
    median, lo, hi, coverage = order_statistic_interval(list(range(1, 21)))
    assert (lo, hi) == (6, 15) and coverage >= 0.95


def test_newton_needs_far_fewer_iterations_than_gradient_descent_on_logistic_regression():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 30, generator=generator, dtype=torch.float64)
    y = (x[:, :10].argmax(1) + (torch.arange(200) % 7 == 0)) % 10
    problem = logreg_problem(x, y, d=6)
    assert problem.n_params == 70
    _, losses = newton(problem.loss, problem.theta0, max_iters=30)
    assert len(losses) - 1 <= 10
    assert losses[-1] < losses[0]


@pytest.fixture
def tiny_cache(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(80) % 10
    images = torch.randint(0, 60, (80, 1, 28, 28), generator=generator, dtype=torch.uint8)
    images[:, :, :8, :8] += (15 * labels).to(torch.uint8).view(-1, 1, 1, 1)  # learnable signal
    cache = tmp_path / "data.pt"
    torch.save({"train_x": images, "train_y": labels}, cache)
    return cache


def test_cli_writes_the_table_and_summary_atomically(tmp_path, tiny_cache):
    out = tmp_path / "out" / "second_order.csv"
    main([
        "--data", str(tiny_cache), "--out", str(out), "--n", "60", "--logreg-d", "2,4,8",
        "--mlp-width", "2,4", "--max-iters", "200", "--lbfgs-iters", "50", "--block", "3",
    ])  # fmt: skip
    with out.open() as handle:
        reader = csv.DictReader(handle)
        table = list(reader)
    assert reader.fieldnames == COLUMNS
    assert len(table) == 5 * len(METHODS)
    assert [row["method"] for row in table[:5]] == list(METHODS)
    assert sorted({int(row["n_params"]) for row in table}) == [30, 50, 64, 90, 118]
    assert all(int(row["timing_repeats"]) == 5 for row in table)
    newton_rows = [row for row in table if row["method"] == "newton"]
    assert all(int(row["peak_bytes"]) > 3 * int(row["hessian_bytes"]) for row in newton_rows)
    summary = json.loads((tmp_path / "out" / "second_order.json").read_text())
    assert set(summary["families"]) == {"logreg", "mlp"}
    logreg = summary["families"]["logreg"]
    assert logreg["n_params"] == [30, 50, 90]
    assert math.isfinite(logreg["time_exponent"]["slope"])
    assert logreg["extrapolation"]["1e+08"]["extrapolated"] is True
    assert logreg["extrapolation"]["1e+08"]["hessian_bytes_float64"] == 8e16
    assert sorted(p.name for p in out.parent.iterdir()) == ["second_order.csv", "second_order.json"]


def test_the_scaling_figure_draws_a_png(tmp_path, tiny_cache):
    from study.figures.second_order import second_order_scaling

    out = tmp_path / "second_order.csv"
    main([
        "--data", str(tiny_cache), "--out", str(out), "--n", "40", "--logreg-d", "2,4",
        "--mlp-width", "2,3", "--max-iters", "50", "--lbfgs-iters", "20", "--block", "2",
    ])  # fmt: skip
    png = second_order_scaling(out, tmp_path / "second_order.json", tmp_path / "fig.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
