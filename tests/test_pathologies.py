"""Optimization pathologies (study/experiments/pathologies/) against closed forms, and their
ledger checks on planted tables (each can come out contradicted)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from study.analysis.ledger.checks.pathologies import (
    pathology_difference,
    pathology_exponent,
    pathology_ratio,
)
from study.analysis.ledger.rule import judge
from study.experiments.pathologies import activations, conditioning, gradient_noise, saddle
from study.experiments.pathologies.cli import COLUMNS


def _gd_iterations(kappa, eps, start=None, seed=0, dim=20, step=1.0):
    a, w0 = conditioning.problem(kappa, dim, "rotated", seed)
    if start == "slowest":
        w0 = np.linalg.eigh(a)[1][:, 0]
    hit, _ = conditioning.iterate("gd", a[None], w0[None], np.array([step]), 0.0, eps, 10**6)
    return int(hit[0, 0])


@pytest.mark.parametrize("kappa", [10, 100, 1000])
def test_gd_at_one_over_l_needs_about_kappa_log_one_over_eps_iterations(kappa):
    # Along the slowest direction f shrinks by (1 - 1/kappa)² per step: exactly
    # ln(1/eps) / (-2 ln(1 - 1/kappa)) ≈ kappa·ln(1/eps)/2 steps. A random start puts most of f
    # on faster directions, so it needs fewer, but the same order (at least a tenth).
    eps = 1e-6
    exact = math.ceil(math.log(1 / eps) / (-2 * math.log1p(-1 / kappa)))
    assert _gd_iterations(kappa, eps, start="slowest") == pytest.approx(exact, abs=1)
    assert exact == pytest.approx(kappa * math.log(1 / eps) / 2, rel=0.06)
    assert 0.1 * exact <= _gd_iterations(kappa, eps) <= exact


def test_heavy_ball_with_optimal_parameters_contracts_at_the_theory_rate():
    kappa = 400.0
    step, beta = conditioning.theory_parameters("heavy_ball", kappa)
    a = np.diag(conditioning.spectrum(kappa, 8))
    w = prev = np.ones(8)
    norms = []
    for _ in range(600):
        prev, w = w, w - step * (a @ w) + beta * (w - prev)
        norms.append(np.linalg.norm(w))
    rate = (norms[-1] / norms[299]) ** (1 / 300)
    theory = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    assert rate == pytest.approx(theory, rel=0.01)
    # gradient descent's optimal rate (kappa-1)/(kappa+1) is far slower
    assert rate < (kappa - 1) / (kappa + 1) - 0.05


def test_minibatch_variance_equals_the_finite_population_formula():
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((50, 4)) * np.array([1.0, 2.0, 0.5, 3.0])
    for batch in (1, 5, 25, 49):
        rows = gradient_noise.measure(grads, [batch], seed=1, draws=20_000)
        measured = next(r["value"] for r in rows if r["quantity"] == "variance")
        exact = gradient_noise.exact_variance(grads, batch)
        assert measured == pytest.approx(exact, rel=0.05)
    # without the correction (n - B)/(n - 1), B = 49 of 50 would be off by a factor 49
    assert gradient_noise.exact_variance(grads, 49) < 0.05 * gradient_noise.exact_variance(grads, 1)


@pytest.mark.parametrize("delta", [1e-2, 1e-5, 1e-9])
def test_gd_escapes_the_saddle_at_the_closed_form_step(delta):
    w0 = saddle.start(delta, seed=3)
    assert saddle.escape_steps(w0, 0.1, 0.0, 1.0) == saddle.gd_escape_closed_form(w0[1], 0.1, 1.0)


def test_momentum_escape_grows_at_the_larger_root():
    lr, beta = 0.1, 0.9
    far, near = saddle.start(1e-4, 0), saddle.start(1e-10, 0)
    extra = saddle.escape_steps(near, lr, beta, 1.0) - saddle.escape_steps(far, lr, beta, 1.0)
    predicted = math.log(1e6) / math.log(saddle.momentum_growth(lr, beta))
    assert extra == pytest.approx(predicted, abs=1.5)


def test_sigmoid_layers_shrink_the_gradient_by_at_most_a_quarter_of_the_weight_norm():
    torch.manual_seed(0)
    x = torch.randn(64, 30, dtype=torch.float64)
    y = torch.randint(0, 10, (64,))
    shallow = activations.network(30, 32, 2, "sigmoid", seed=1)
    deep = activations.network(30, 32, 6, "sigmoid", seed=1)
    z = torch.linspace(-8, 8, 2001, dtype=torch.float64)
    assert float((torch.sigmoid(z) * (1 - torch.sigmoid(z))).max()) == pytest.approx(0.25)
    # the four extra layers each multiply the backward signal by at most ‖W‖₂/4
    bound = math.prod(
        float(torch.linalg.matrix_norm(deep[2 * i].weight.detach(), 2)) / 4 for i in range(1, 6)
    )
    g_deep = activations.first_layer_gradient(deep, x, y)
    g_shallow = activations.first_layer_gradient(shallow, x, y)
    assert bound < 1 and g_deep < g_shallow


# --- the ledger checks on planted tables


class _Tables:
    def __init__(self, path):
        self.scale_dir = path


def _write(tmp_path, rows):
    pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp_path / "pathologies.csv", index=False)
    return _Tables(tmp_path)


def _conditioning_rows(exponent, method="gd"):
    rng = np.random.default_rng(0)
    return [
        ["conditioning", method, "rotated", k, s, "iterations",
         10 * k**exponent * math.exp(0.05 * rng.standard_normal()), True, 1.0]
        for k in (10, 100, 1000, 10000) for s in range(3)
    ]  # fmt: skip


CLAIM = {"fit": "iterations", "method": "gd", "geometry": "rotated", "theory": 1, "margin": 0.2,
         "unit": "exponent"}  # fmt: skip


def _verdict(result, claim):
    return judge(result["estimate"], result["estimate"].p, claim["margin"],
                 claim.get("expect", "higher"), result["test"])  # fmt: skip


def test_a_linear_iteration_count_is_supported_and_a_planted_square_root_contradicted(tmp_path):
    linear = pathology_exponent(_write(tmp_path, _conditioning_rows(1.0)), CLAIM)
    assert _verdict(linear, CLAIM) == "supported"
    planted = pathology_exponent(_write(tmp_path, _conditioning_rows(0.5)), CLAIM)
    assert planted["estimate"].effect == pytest.approx(-0.5, abs=0.05)
    assert _verdict(planted, CLAIM) == "contradicted"


def test_the_saddle_ratio_comes_out_contradicted_when_momentum_is_planted_slower(tmp_path):
    claim = {"experiment": "saddle", "quantity": "escape_steps", "top": "gd",
             "bottom": "heavy_ball", "margin": math.log(1.5), "expect": "higher"}  # fmt: skip
    rows = [["saddle", m, "s", 1e-8, s, "escape_steps", v + s, True, 0.1]
            for s in range(4) for m, v in (("gd", 60), ("heavy_ball", 190))]  # fmt: skip
    result = pathology_ratio(_write(tmp_path, rows), claim)
    assert result["log"] and math.exp(result["estimate"].effect) < 0.4
    assert _verdict(result, claim) == "contradicted"


def test_dead_units_difference_is_contradicted_when_the_high_rate_kills_fewer(tmp_path):
    claim = {"experiment": "dead_relu", "quantity": "dead_fraction", "top": "lr3",
             "bottom": "lr0.1", "margin": 0.1, "unit": "fraction", "expect": "higher"}  # fmt: skip
    rows = [["dead_relu", m, "w", 0, s, "dead_fraction", v + 0.01 * s * (m == "lr3"), True, 20]
            for s in range(4) for m, v in (("lr3", 0.0), ("lr0.1", 0.5))]  # fmt: skip
    assert _verdict(pathology_difference(_write(tmp_path, rows), claim), claim) == "contradicted"


def test_a_missing_table_is_not_tested(tmp_path):
    assert pathology_exponent(_Tables(tmp_path), CLAIM)["estimate"] is None


# --- the command, its figure and its report section


@pytest.fixture
def tiny_cache(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(2000) % 10
    images = torch.randint(0, 200, (2000, 1, 28, 28), generator=generator, dtype=torch.uint8)
    cache = tmp_path / "data.pt"
    torch.save({"train_x": images, "train_y": labels}, cache)
    return cache


TINY = ["--seeds", "2", "--kappas", "10,100,1000", "--deltas", "1e-2,1e-6", "--batches", "1,4,16",
        "--noise-n", "200", "--draws", "50", "--depths", "2,4", "--newton-sizes", "64,128,256",
        "--newton-n", "128", "--newton-target-max", "128", "--repeats", "2"]  # fmt: skip


def test_the_command_writes_the_table_fits_figure_and_report_section(tmp_path, tiny_cache):
    from study.experiments.pathologies.cli import main
    from study.figures.pathologies import pathologies_figure
    from study.report.experiments import pathologies

    out = tmp_path / "scale" / "pathologies.csv"
    main(["--data", str(tiny_cache), "--out", str(out), *TINY])
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS
    assert set(table["experiment"]) == {
        "conditioning", "zigzag", "saddle", "gradient_noise", "vanishing", "dead_relu", "newton"
    }  # fmt: skip
    assert sorted(p.name for p in out.parent.iterdir()) == ["pathologies.csv", "pathologies.json"]
    section = pathologies(out.parent)
    assert any(e["fit"] == "iterations vs κ, gd/rotated" for e in section["exponents"])
    png = pathologies_figure(out, tmp_path / "fig.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pathologies(tmp_path / "absent") is None


@pytest.mark.parametrize(
    "flags, message",
    [(["--seeds", "1"], "at least 2 seeds"), (["--batches", "1,300"], "below --noise-n")],
)  # fmt: skip
def test_bad_flags_fail_with_one_line_and_write_nothing(tmp_path, tiny_cache, flags, message):
    from study.errors import ConfigError
    from study.experiments.pathologies.cli import main

    out = tmp_path / "out" / "pathologies.csv"
    with pytest.raises(ConfigError, match=message):
        main(["--data", str(tiny_cache), "--out", str(out), "--noise-n", "200", *flags])
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_a_flag_that_is_not_a_list_of_numbers_exits_with_argparse_status(
    tmp_path, tiny_cache, capsys
):
    from study.experiments.pathologies.cli import main

    out = tmp_path / "out" / "pathologies.csv"
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(tiny_cache), "--out", str(out), "--kappas", "10,x"])
    assert exit_.value.code == 2 and "comma-separated numbers" in capsys.readouterr().err
    assert not out.exists()


def test_every_pathology_claim_cites_the_notes_and_a_ratio_margin_must_exceed_one(tmp_path):
    from pathlib import Path

    from study.analysis.ledger.claims_file import ClaimsError, load_claims

    claims = [
        c
        for c in load_claims(Path("conf/claims.yaml"))
        if c.get("check", "").startswith("pathology")
    ]
    assert len(claims) == 14 and all(c.get("lecture_lines") for c in claims)
    bad = tmp_path / "claims.yaml"
    bad.write_text(
        "claims:\n  - {id: a, claim: x, kind: special, check: pathology_ratio, experiment: saddle,"
        " quantity: escape_steps, top: gd, bottom: heavy_ball, unit: x, expect: higher,"
        " margin: 0.5, margin_reason: r}\n"
    )
    with pytest.raises(ClaimsError, match="must be above 1"):
        load_claims(bad)
