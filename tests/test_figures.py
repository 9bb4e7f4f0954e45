"""Figures from a small synthetic study: run folders following the contract, tables built from them.

``build_study`` is also used by the report tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from study import figures
from study.figures import (
    BASELINE_COLOR,
    FIGURES,
    Context,
    FigureError,
    make_figures,
    variant_palette,
)
from study.planning.ablation import Ablation

EPOCHS = 4
STEPS_PER_EPOCH = 8
SCALE = "smoke"

BASE_CONFIG = {
    "data": {"name": "fashion_mnist", "n_train": 1000, "n_val": 500, "n_test": 1000},
    "model": {"name": "resmlp", "width": 32, "blocks": 1, "norm": "none", "dropout": 0.0},
    "optim": {"name": "adamw", "lr": 0.001, "weight_decay": 0.01},
    "schedule": {"name": "cosine", "warmup": 0.0, "final": 0.0},
    "train": {"epochs": EPOCHS, "batch_size": 125},
    "regularization": {"l1": 0.0, "l2": 0.0},
}

# name → (file fields, variant → (config overrides, mean test accuracy), diverged (variant, seed))
SPECS = {
    "regularization": dict(
        title="Regularization",
        question="Which regularizers reduce overfitting?",
        baseline="none",
        seeds=3,
        variants={
            "none": ({}, 0.85),
            "l2": ({"regularization.l2": 1e-4}, 0.86),
            "l1": ({"regularization.l1": 1e-4}, 0.84),
            "dropout": ({"model.dropout": 0.3}, 0.88),
        },
        figures=["weight_histogram", "train_loss_curves", "epochs_to_target", "generalization_gap"],
        diverged=[("l1", 2)],
    ),
    "optimizers": dict(
        title="Optimizers",
        question="Which optimizer trains fastest?",
        baseline="sgd",
        seeds=2,
        variants={
            "sgd": ({"optim.name": "sgd", "optim.lr": 0.1, "schedule.name": "constant"}, 0.83),
            "adam": (
                {
                    "optim.name": "adam",
                    "optim.lr": 0.001,
                    "schedule": {"name": "step", "warmup": 0.1, "milestones": [0.5, 0.75]},
                    "schedule.gamma": 0.1,
                },
                0.86,
            ),
        },
        tune={"key": "optim.lr", "factors": [0.1, 1.0, 10.0], "metric": "val_loss"},
        figures=["lr_sensitivity", "lr_schedules", "test_loss"],
        diverged=[],
    ),
    "grid": dict(
        title="Optimizer × schedule",
        question="Do optimizer and schedule interact?",
        baseline="optim-sgd_schedule-constant",
        seeds=2,
        grid={"optim": ["sgd", "adam"], "schedule": ["constant", "cosine"]},
        variants={
            "optim-sgd_schedule-constant": (
                {"optim.name": "sgd", "schedule.name": "constant"},
                0.8,
            ),
            "optim-sgd_schedule-cosine": ({"optim.name": "sgd", "schedule.name": "cosine"}, 0.82),
            "optim-adam_schedule-constant": (
                {"optim.name": "adam", "schedule.name": "constant"},
                0.84,
            ),
            "optim-adam_schedule-cosine": ({"optim.name": "adam", "schedule.name": "cosine"}, 0.86),
        },
        figures=["grid_heatmap"],
        diverged=[("optim-adam_schedule-constant", 1)],
    ),
    "normalization": dict(
        title="Normalization under shift",
        question="Which normalization is robust to distribution shift?",
        baseline="none",
        seeds=2,
        variants={
            "none": ({}, 0.85),
            "batchnorm": ({"model.norm": "batchnorm"}, 0.87),
        },
        shift=True,
        figures=["shift_severity", "drift"],
        diverged=[],
    ),
}


def _config(overrides: dict, seed: int, ablation: str, variant: str) -> dict:
    config = json.loads(json.dumps(BASE_CONFIG))
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key] = value
            continue
        group, name = key.split(".")
        config[group][name] = value
    config["seed"] = seed
    config["run"] = {"ablation": ablation, "variant": variant, "scale": SCALE}
    return config


def _history(rng: np.random.Generator, acc: float, diverged: bool, lr: float) -> pd.DataFrame:
    rows = []
    for epoch in range(1, EPOCHS + 1):
        frac = epoch / EPOCHS
        train_loss = 1.6 * math.exp(-2.0 * frac) + rng.normal(0, 0.01)
        # Validation loss bottoms out and rises again: the curves must show overfitting.
        val_loss = 0.9 - 0.5 * frac + 0.4 * frac**2 + rng.normal(0, 0.01)
        val_acc = acc * (0.8 + 0.2 * frac) + rng.normal(0, 0.003)
        if diverged and epoch >= 3:
            train_loss, val_loss, val_acc = 1e6, math.inf, 0.1
        rows.append(
            dict(
                epoch=epoch,
                step=epoch * STEPS_PER_EPOCH,
                lr=lr * (0.5 + 0.5 * math.cos(math.pi * frac)),
                train_loss=train_loss,
                train_acc=min(1.0, acc + 0.08 * frac),
                val_loss=val_loss,
                val_acc=val_acc,
                test_loss=val_loss + 0.02,
                test_acc=val_acc - 0.005,
                seconds=1.5,
                eval_seconds=0.2,
            )
        )
        if diverged and epoch >= 3:
            break
    return pd.DataFrame(rows)


def _state_dict(rng: np.random.Generator, variant: str) -> dict[str, torch.Tensor]:
    w = rng.normal(0, 0.05, (32, 32))
    if variant == "l1":
        w[rng.random(w.shape) < 0.6] = 0.0  # L1 drives many weights to exactly zero
    elif variant == "l2":
        w *= 0.5
    return {
        "blocks.0.weight": torch.tensor(w, dtype=torch.float32),
        "blocks.0.bias": torch.zeros(32),
        "head.weight": torch.tensor(rng.normal(0, 0.05, (10, 32)), dtype=torch.float32),
    }


def _shift_rows(rng: np.random.Generator, acc: float, variant: str) -> pd.DataFrame:
    rows = [
        dict(shift="clean", severity=0, adapted=a, slice=None, accuracy=acc, loss=2 * (1 - acc))
        for a in (False, True)
    ]
    robust = 0.5 if variant == "batchnorm" else 1.0
    for shift in ("gaussian_noise", "contrast"):
        for severity in (1, 2, 3):
            for adapted in (False, True):
                drop = 0.06 * severity * robust * (0.6 if adapted else 1.0)
                a = acc - drop + rng.normal(0, 0.005)
                rows.append(dict(shift=shift, severity=severity, adapted=adapted, slice=None,
                                 accuracy=a, loss=2 * (1 - a)))  # fmt: skip
    for slice_ in range(5):
        for adapted in (False, True):
            a = acc - 0.03 * slice_ * (0.5 if adapted else 1.0) + rng.normal(0, 0.005)
            rows.append(dict(shift="drift", severity=None, adapted=adapted, slice=slice_,
                             accuracy=a, loss=2 * (1 - a)))  # fmt: skip
    return pd.DataFrame(rows)


def _write_run(
    run_dir: Path, rng, ablation: str, variant: str, seed: int, overrides, acc, diverged
) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    config = _config(overrides, seed, ablation, variant)
    acc = acc + rng.normal(0, 0.004)
    hist = _history(rng, acc, diverged, config["optim"]["lr"])
    hist.to_csv(run_dir / "history.csv", index=False)
    last = hist.iloc[-1]
    best = hist.loc[hist["val_loss"].idxmin()]
    metrics = {
        "status": "diverged" if diverged else "ok",
        "ablation": ablation,
        "variant": variant,
        "seed": seed,
        "scale": SCALE,
        "train_loss": None if diverged else float(last["train_loss"]),
        "train_acc": float(last["train_acc"]),
        "val_loss": None if diverged else float(last["val_loss"]),
        "val_acc": float(last["val_acc"]),
        "test_loss": None if diverged else float(last["test_loss"]),
        "test_acc": 0.1 if diverged else float(last["test_acc"]),
        "gap_acc": float(last["train_acc"] - last["test_acc"]),
        "gap_loss": None if diverged else float(last["test_loss"] - last["train_loss"]),
        "best_epoch": int(best["epoch"]),
        "best_val_loss": float(best["val_loss"]),
        "best_val_acc": float(best["val_acc"]),
        "epochs_run": len(hist),
        "diverged_step": 20 if diverged else None,
        "wall_s": 7.5,
        "train_s": 6.0,
        "eval_s": 0.8,
        "s_per_epoch": 1.5,
        "images_per_s": 650.0,
        "n_params": 1386,
        "weight_sparsity": 0.01,
        "weight_norm": 3.2,
        "lr": config["optim"]["lr"],
        "steps_per_epoch": STEPS_PER_EPOCH,
        "config_hash": f"{abs(hash((ablation, variant, seed))) % 16**12:012x}",
        "config": config,
        "versions": {"python": "3.11.2", "torch": torch.__version__},
        "hardware": {"machine": "x86_64", "cpus": 2, "device": "cpu"},
    }
    if SPECS[ablation].get("shift"):
        _shift_rows(rng, acc, variant).to_csv(run_dir / "shift.csv", index=False)
    torch.save(_state_dict(rng, variant), run_dir / "model.pt")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))


def build_study(root: Path) -> tuple[Path, dict[str, Ablation]]:
    """A smoke-scale results folder with run folders, tuning runs and the aggregated tables."""
    from study.analysis.tables import build_tables, render
    from study.outputs import write_text

    rng = np.random.default_rng(0)
    scale_dir = root / "results" / SCALE
    ablations = {}
    for name, spec in SPECS.items():
        ablations[name] = Ablation(
            name=name,
            path=root / "conf" / "ablation" / f"{name}.yaml",
            title=spec["title"],
            question=spec["question"],
            baseline=spec["baseline"],
            seeds=spec["seeds"],
            variants={v: [] for v in spec["variants"]},
            grid=spec.get("grid", {}),
            tune=spec.get("tune"),
            shift=spec.get("shift", False),
            figures=spec["figures"],
        )
        for variant, (overrides, acc) in spec["variants"].items():
            for seed in range(spec["seeds"]):
                run_dir = scale_dir / "runs" / name / variant / f"seed{seed}"
                diverged = (variant, seed) in spec["diverged"]
                _write_run(run_dir, rng, name, variant, seed, overrides, acc, diverged)
            if spec.get("tune"):
                base_lr = _config(overrides, 0, name, variant)["optim"]["lr"]
                for factor in (0.1, 1.0, 10.0, 100.0):
                    lr = base_lr * factor
                    tune_dir = scale_dir / "tune" / name / variant / f"lr-{lr:g}" / "seed0"
                    over = {**overrides, "optim.lr": lr}
                    _write_run(tune_dir, rng, name, variant, 0, over, acc, factor == 100.0)
                    # The tuning curve is U-shaped in the LR.
                    metrics = json.loads((tune_dir / "metrics.json").read_text())
                    if metrics["status"] == "ok":
                        metrics["val_loss"] = 0.4 + 0.1 * math.log10(factor / 1.0) ** 2
                        (tune_dir / "metrics.json").write_text(json.dumps(metrics))
    tables = build_tables(scale_dir, ablations)
    for filename, text in render(tables).items():
        write_text(scale_dir / "tables" / filename, text)
    return scale_dir, ablations


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def drawn(study):
    scale_dir, ablations = study
    return {name: make_figures(scale_dir, abl) for name, abl in ablations.items()}


def test_every_figure_is_written_as_png_and_svg(study, drawn):
    scale_dir, ablations = study
    for name, abl in ablations.items():
        out = scale_dir / "figures" / name
        expected = ["learning_curves", "test_accuracy", "forest", *abl.figures]
        assert list(drawn[name]) == expected
        for fig in expected:
            png = (out / f"{fig}.png").read_bytes()
            svg = (out / f"{fig}.svg").read_text()
            assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000, (name, fig)
            assert "<svg" in svg and len(svg) > 5000, (name, fig)
            assert len(drawn[name][fig]) > 40  # a real caption
        assert json.loads((out / "captions.json").read_text()) == drawn[name]
        # Atomic writes leave no temporary files behind.
        assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_every_registered_figure_is_exercised():
    used = {f for spec in SPECS.values() for f in spec["figures"]} | set(figures.DEFAULT_FIGURES)
    assert used == set(FIGURES)


def test_captions_report_diverged_runs(drawn):
    assert "Diverged runs (1)" in drawn["regularization"]["test_accuracy"]
    assert "Diverged runs (1) are excluded" in drawn["regularization"]["learning_curves"]
    assert "crosses above the curves" in drawn["optimizers"]["lr_sensitivity"]


def test_palette_is_keyed_by_file_order_with_a_fixed_baseline():
    a = variant_palette(["none", "l2", "l1"], "none")
    b = variant_palette(["l2", "none", "l1"], "none")
    assert a["none"] == b["none"] == BASELINE_COLOR
    assert a == b  # only the order of the non-baseline variants matters
    assert len(set(a.values())) == 3
    many = variant_palette([f"v{i}" for i in range(15)], "v0")
    assert len(set(many.values())) == 15


def test_colours_are_consistent_across_figures(study):
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    scale_dir, ablations = study
    ctx = Context(scale_dir, ablations["regularization"])
    hexes = {v: mcolors.to_hex(c) for v, c in ctx.palette.items()}
    fig, _ = FIGURES["test_accuracy"].draw(ctx)
    ticks = {t.get_text(): mcolors.to_hex(t.get_color()) for t in fig.axes[0].get_yticklabels()}
    plt.close(fig)
    fig, _ = FIGURES["train_loss_curves"].draw(ctx)
    legend = {
        t.get_text(): mcolors.to_hex(h.get_color())
        for t, h in zip(
            fig.axes[0].get_legend().get_texts(),
            fig.axes[0].get_legend().legend_handles,
            strict=True,
        )
    }
    plt.close(fig)
    fig, _ = FIGURES["learning_curves"].draw(ctx)
    # Panel titles are black (a pale variant colour is unreadable as text); the lines carry it.
    lines = {a.get_title().split()[0]: mcolors.to_hex(a.lines[0].get_color()) for a in fig.axes
             if a.get_title()}  # fmt: skip
    assert {mcolors.to_hex(a.title.get_color()) for a in fig.axes if a.get_title()} == {"#000000"}
    # Every panel has its own tick labels: a reader need not look across to the first column.
    assert all(a.xaxis.get_ticklabels()[0].get_visible() for a in fig.axes if a.get_visible())
    plt.close(fig)
    assert ticks == legend == lines == hexes
    assert hexes["none"] == BASELINE_COLOR


def test_grid_variant_names_parse():
    parse = figures._parse_grid_variant
    assert parse("optim-adam_schedule-inverse_sqrt") == {
        "optim": "adam",
        "schedule": "inverse_sqrt",
    }
    assert parse("norm-batchnorm_dropout-0.5") == {"norm": "batchnorm", "dropout": "0.5"}


def test_missing_input_raises_one_clear_error(study, tmp_path):
    scale_dir, ablations = study
    empty = tmp_path / "results" / "empty"
    (empty / "tables").mkdir(parents=True)
    with pytest.raises(FigureError, match=r"tuning\.csv"):
        make_figures(empty, ablations["optimizers"], ["lr_sensitivity"])
    with pytest.raises(FigureError, match=r"shift\.csv"):
        make_figures(empty, ablations["normalization"], ["shift_severity"])
    with pytest.raises(FigureError, match=r"model\.pt"):
        make_figures(empty, ablations["regularization"], ["weight_histogram"])
    with pytest.raises(FigureError, match="unknown figure"):
        make_figures(scale_dir, ablations["regularization"], ["pie_chart"])
    # Nothing half-written for the failed figures.
    assert not (empty / "figures").exists() or not list((empty / "figures").rglob("*.png"))


def test_cli_draws_one_ablation(study, tmp_path, capsys):
    scale_dir, _ = study
    conf = tmp_path / "ablation"
    conf.mkdir()
    (conf / "normalization.yaml").write_text(
        "title: Normalization under shift\n"
        "question: Which normalization is robust?\n"
        "baseline: none\n"
        "seeds: 2\n"
        "variants:\n  none: []\n  batchnorm: [model.norm=batchnorm]\n"
        "shift: true\n"
        "figures: [drift]\n"
    )
    argv = ["--scale-dir", str(scale_dir), "--ablation", "normalization", "--ablations", str(conf)]
    assert figures.main([*argv, "--figure", "drift"]) == 0
    assert "drift.png" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        figures.main(
            ["--scale-dir", str(scale_dir), "--ablation", "nope", "--ablations", str(conf)]
        )


def test_weight_histogram_compares_penalty_variants_of_any_ablation(study):
    """The figure works whatever the variants are called: the baseline and the variants whose
    runs add a weight penalty (here l2 and l1, not dropout), or every variant if none does."""
    from study.figures.weights import compared_variants

    scale_dir, ablations = study
    regularization = ablations["regularization"]
    assert compared_variants(Context(scale_dir, regularization)) == ["none", "l2", "l1"]
    renamed = Ablation(
        name="normalization",
        path=Path("normalization.yaml"),
        title="t",
        question="q",
        baseline="none",
        seeds=2,
        variants={"none": [], "batchnorm": ["model.norm=batchnorm"]},
        figures=["weight_histogram"],
    )
    assert compared_variants(Context(scale_dir, renamed)) == ["none", "batchnorm"]
    captions = make_figures(scale_dir, renamed, ["weight_histogram"])
    assert "none, batchnorm" in captions["weight_histogram"]


def test_a_figure_an_ablation_cannot_have_is_refused_with_one_line(study):
    from study.errors import ConfigError

    _, ablations = study
    no_grid = ablations["regularization"]
    with pytest.raises(ConfigError, match=r"grid_heatmap needs a grid over exactly two keys"):
        figures.check_figures(no_grid, ["grid_heatmap"])
    with pytest.raises(ConfigError, match=r"lr_sensitivity its file has no tune block"):
        figures.check_figures(no_grid, ["lr_sensitivity"])
    with pytest.raises(ConfigError, match=r"unknown figure 'pie'"):
        figures.check_figures(no_grid, ["pie"])
    assert figures.check_figures(ablations["grid"]) == [
        "learning_curves",
        "test_accuracy",
        "forest",
        "grid_heatmap",
    ]


def test_readable_figures_one_panel_per_schedule_and_per_shifted_variant(study, drawn):
    import matplotlib.pyplot as plt

    scale_dir, ablations = study
    fig, caption = FIGURES["lr_schedules"].draw(Context(scale_dir, ablations["optimizers"]))
    titles = sorted(a.get_title() for a in fig.axes if a.get_visible())
    plt.close(fig)
    # The two variants have different base rates: each panel names its own, no legend repeats it.
    assert titles == ["adam (base 0.001)", "sgd (base 0.1)"]
    assert "each panel's title gives its base learning rate" in caption
    fig, caption = FIGURES["shift_severity"].draw(Context(scale_dir, ablations["normalization"]))
    panels = [a for a in fig.axes if a.get_visible()]
    assert sorted(a.get_title() for a in panels) == ["batchnorm", "none"]
    # At most: baseline reference, not adapted, adapted.
    assert all(len(a.lines) <= 3 for a in panels)
    plt.close(fig)
    assert "averaged over the corruptions" in caption


def test_lr_sensitivity_shows_every_diverged_run_and_says_how_many_seeds(study, drawn):
    import matplotlib.pyplot as plt

    scale_dir, ablations = study
    ctx = Context(scale_dir, ablations["optimizers"])
    tuning = ctx.tuning("test")
    n_div = int((tuning["status"] == "diverged").sum())
    fig, caption = FIGURES["lr_sensitivity"].draw(ctx)
    ax = fig.axes[0]
    crosses = {tuple(p) for c in ax.collections for p in c.get_offsets() if c.get_paths()}
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    assert n_div == 2 and f"diverged ({n_div} runs)" in labels
    assert len({(x, y) for x, y in crosses if y > tuning["val_loss"].max()}) == n_div
    assert "one tuning run per point" in caption and "mean over seeds" not in caption


def test_accuracy_axis_breaks_between_far_apart_groups(study):
    import matplotlib.pyplot as plt

    scale_dir, ablations = study
    fig, caption = FIGURES["test_accuracy"].draw(Context(scale_dir, ablations["normalization"]))
    plt.close(fig)
    assert len(fig.axes) == 1 and "broken" not in caption  # values close together: one axis
    ctx = Context(scale_dir, ablations["regularization"])
    runs = scale_dir / "tables" / "runs.csv"
    original = runs.read_text()
    table = pd.read_csv(runs, dtype={"variant": str})
    table.loc[table["variant"] == "l1", "test_acc"] = 0.1  # one variant at chance
    table.to_csv(runs, index=False)
    summary = scale_dir / "tables" / "regularization.csv"
    saved = summary.read_text()
    summary.unlink()  # the intervals then come from the runs, as the planted values say
    try:
        fig, caption = FIGURES["test_accuracy"].draw(Context(scale_dir, ctx.ablation))
        left, right = (a.get_xlim() for a in fig.axes)
        plt.close(fig)
    finally:
        runs.write_text(original)
        summary.write_text(saved)
    assert "broken" in caption
    assert left[1] < 20 and right[0] > 70


def test_grid_heatmap_shows_intervals_verdicts_and_diverged_counts(study, drawn):
    caption = drawn["grid"]["grid_heatmap"]
    assert "± the half-width of its 95% interval" in caption
    assert "1 runs diverged" in caption and "grey cells are inconclusive" in caption


def test_a_grid_cell_left_out_of_the_ablation_is_marked_not_run():
    from types import SimpleNamespace

    from study.figures.comparisons import _draw_grid, _grid_caption

    cell = {"mean": 85.0, "half": 0.5, "diff": 0.0, "verdict": "baseline", "n_diverged": 0, "n": 3}
    cells = {("sgd", "constant"): cell, ("sgd", "cosine"): {**cell, "verdict": "inconclusive"},
             ("muon", "constant"): {**cell, "verdict": "inconclusive"}}  # fmt: skip
    fig, ax = plt.subplots()
    _draw_grid(ax, cells, ["sgd", "muon"], ["constant", "cosine"])
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("not run") == 1 and len(texts) == 4  # muon × cosine only
    plt.close(fig)
    ctx = SimpleNamespace(ablation=SimpleNamespace(baseline="optim-sgd_schedule-constant"))
    runs = pd.DataFrame({"variant": ["optim-sgd_schedule-constant"] * 3, "seed": [0, 1, 2]})
    caption = _grid_caption(ctx, runs, cells, 4, ("optim", "schedule"))
    assert "1 not run: not in the ablation" in caption and "No run diverged." in caption
    assert "not run" not in _grid_caption(ctx, runs, cells, 3, ("optim", "schedule"))


def test_the_forest_plot_draws_one_row_per_claim_and_one_panel_per_unit():
    from study.figures.forest import draw_forest, ledger_rows

    ledger = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "unit": ["pp", "loss", "pp", "x", "fraction"],
            "test": ["difference", "difference", "noninferiority", "difference", "threshold"],
            "effect": [2.3, -0.05, float("nan"), 30.0, 1.0],
            "lo": [0.9, -0.09, float("nan"), 10.0, 0.59],
            "hi": [3.8, -0.01, float("nan"), 90.0, 1.0],
            "margin": [0.5, 0.02, 1.0, 2.0, 0.5],
            "verdict": ["supported", "contradicted", "not tested", "inconclusive", "supported"],
        }
    )
    fig = draw_forest(ledger_rows(ledger))
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert sorted(labels) == ["a", "b", "c", "d", "e"] and len(fig.axes) == 4
    assert fig.axes[0].get_yticklabels()[0].get_text() == "c"  # pp panel, ledger order top-down
    assert fig.axes[2].get_xscale() == "log"  # ratios
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"supported", "contradicted", "inconclusive", "threshold"} <= set(legend)
    plt.close(fig)


def test_an_effect_far_past_the_margins_is_written_at_the_edge_and_squashes_no_row():
    from study.figures.forest import draw_forest, ledger_rows

    # Non-i.i.d. batches move accuracy by 35 points, the other claims by under 3.
    ledger = pd.DataFrame(
        {
            "id": ["small", "far", "negative"],
            "unit": ["pp", "pp", "pp"],
            "effect": [0.7, 35.2, -2.7],
            "lo": [0.5, 25.6, -3.0],
            "hi": [0.8, 44.8, -2.4],
            "margin": [0.5, 1.0, 1.0],
            "verdict": ["supported", "supported", "supported"],
        }
    )
    fig = draw_forest(ledger_rows(ledger))
    ax = fig.axes[0]
    left, right = ax.get_xlim()
    assert -3.6 < left < -3.0 and 3.0 < right < 3.6  # the range of the on-scale rows
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["35.2 [25.6, 44.8]"]  # beside the arrow at the edge
    plt.close(fig)


def test_learning_curves_count_steps_when_the_budgets_differ():
    from study.figures.curves import curve_axis

    same = pd.DataFrame(
        {"variant": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2], "step": [78, 156, 78, 156]}
    )
    assert curve_axis(same) == "epoch"
    # Batch 8 for 3 epochs (1250 steps each) against batch 128 for 10 epochs (78 steps each).
    small = pd.DataFrame({"variant": ["s"] * 3, "epoch": [1, 2, 3], "step": [1250, 2500, 3750]})
    big = pd.DataFrame({"variant": ["b"] * 10, "epoch": range(1, 11), "step": range(78, 781, 78)})
    assert curve_axis(pd.concat([small, big])) == "step"
    assert curve_axis(same, "examples") == "examples"
    with pytest.raises(FigureError, match="curve x-axis 'time' is unknown"):
        curve_axis(same, "time")
