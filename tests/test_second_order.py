"""Second-order versus first-order scaling (study/experiments/second_order/)."""

import csv
import json
import math

import pytest
import torch

from study.experiments.second_order import COLUMNS, METHODS, hessian, main, newton
from study.experiments.second_order.problems import flat_objective, logreg_problem
from study.experiments.second_order.scaling import (
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
    assert result["bracket"] == [100, 1000] and result["range"] == [100, 10000]
    slower = crossover(n, [1.0, 2.0, 3.0], [0.1, 0.2, 0.3])
    assert slower["status"] == "first_order_faster_everywhere"
    assert slower["n"] is None and slower["bracket"] == [None, 100]  # below the smallest N
    # Newton faster everywhere: the fitted laws N^2 and N^1 meet beyond the measured range.
    far = crossover(n, [1e-6 * v**2 for v in n], [1e-1 * v for v in n])
    assert far["status"] == "extrapolated" and far["n"] == pytest.approx(1e5)
    assert far["bracket"] == [10000, None]


def test_crossover_is_bracketed_by_the_sizes_where_the_faster_method_changes():
    # Planted wall times to the target: Newton (few costly steps, ~N^2.5) wins up to N = 650,
    # the fastest first-order method (many cheap steps, ~N) from N = 1290 on; a size where
    # neither reached the target (NaN) is skipped, not read as a crossing.
    n = [20, 50, 90, 330, 650, 1290]
    newton_s = [0.002, 0.006, 0.01, 0.04, 0.34, 4.9]
    first_s = [0.008, 0.02, 0.03, math.nan, 0.73, 0.84]
    result = crossover(n, newton_s, first_s)
    assert result["status"] == "measured"
    assert result["bracket"] == [650, 1290] and result["range"] == [20, 1290]
    gap_650, gap_1290 = math.log(0.34 / 0.73), math.log(4.9 / 0.84)
    expected = 650 * (1290 / 650) ** (-gap_650 / (gap_1290 - gap_650))
    assert result["n"] == pytest.approx(expected) and 650 < result["n"] < 1290
    assert result["changes"] == 1
    # Near parity the faster method can flip with timing noise: the last change is reported,
    # and how often it changed says the earlier ones are within noise.
    flipping = crossover(n, [0.002, 0.03, 0.01, 0.04, 0.34, 4.9], first_s)
    assert flipping["bracket"] == [650, 1290] and flipping["changes"] == 3
    # Newton ten times slower per iteration: first-order wins at every size, below N = 20.
    overhead = crossover(n, [10 * t for t in newton_s], first_s)
    assert overhead["status"] == "first_order_faster_everywhere"
    assert overhead["bracket"] == [None, 20]
    never = crossover(n, [math.nan] * 6, first_s)
    assert never["status"] == "second_order_never_reached" and never["n"] is None


def test_closed_form_logistic_hessian_equals_the_autograd_one_off_the_initial_point():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(50, 30, generator=generator, dtype=torch.float64)
    y = torch.arange(50) % 10
    problem = logreg_problem(x, y, d=3)
    theta = problem.theta0 + 0.3 * torch.randn(40, generator=generator, dtype=torch.float64)
    closed = problem.hessian(theta)
    assert closed.shape == (40, 40)
    assert torch.allclose(closed, hessian(problem.loss, theta), atol=1e-12)
    # Newton with either Hessian takes the same path.
    by_autograd = newton(problem.loss, problem.theta0, max_iters=5)[1]
    by_closed_form = newton(problem.loss, problem.theta0, 5, hessian_of=problem.hessian)[1]
    assert by_closed_form == pytest.approx(by_autograd, rel=1e-10)


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
        "--fit-min-n", "40",
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
    assert "CPU seconds of the process" in summary["time_basis"]  # the default --clock cpu
    logreg = summary["families"]["logreg"]
    assert logreg["n_params"] == [30, 50, 90]
    assert logreg["fit_n_params"] == [50, 90]  # N = 30 is below --fit-min-n: not in the fits
    assert logreg["time_exponent"]["points"] == 2
    assert math.isfinite(logreg["time_exponent"]["slope"])
    assert logreg["extrapolation"]["1e+08"]["extrapolated"] is True
    assert logreg["extrapolation"]["1e+08"]["hessian_bytes_float64"] == 8e16
    assert logreg["crossover"]["range"] is None or logreg["crossover"]["range"][0] >= 30
    assert logreg["hessian_method"] == ["closed_form"]
    assert summary["families"]["mlp"]["hessian_method"] == ["autograd"]
    assert {row["hessian_method"] for row in newton_rows} == {"closed_form", "autograd"}
    # the closed form is timed against the generic Hessian it replaces
    assert all(math.isfinite(v) for v in logreg["autograd_hessian_s"])
    assert logreg["crossover_with_autograd_hessian"]["status"]
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
