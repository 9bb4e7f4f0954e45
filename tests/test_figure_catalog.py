"""The plan-time figure check (study.figure_catalog, no plotting libraries) says what the
figure registry (study.figures) says."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from study.errors import ConfigError
from study.figure_catalog import FIGURE_REQUIREMENTS, check_figure_names, known_figures
from study.planning.ablation import load_ablations


def ablations(root):
    planted = [
        SimpleNamespace(name="plain", variants={"a": [], "b": []}),
        SimpleNamespace(name="one_axis", grid={"optim": ["sgd"]}, variants={}),
        SimpleNamespace(name="named_grid", variants={"optim-sgd_schedule-step": []}),
        SimpleNamespace(
            name="named_grid_3", variants={"optim-sgd_schedule-step_model.width-8": []}
        ),
        SimpleNamespace(name="tuned_shifted", tune={"factors": [1]}, shift=True, variants={}),
    ]
    return [*load_ablations(root / "conf/ablation").values(), *planted]


def test_the_catalog_knows_every_registered_figure_and_no_other():
    from study.figures import FIGURES

    assert set(known_figures()) == set(FIGURES)
    # a figure that needs something of an ablation says so in the catalog too
    assert {n for n, f in FIGURES.items() if f.requires} == set(FIGURE_REQUIREMENTS)


def test_the_catalog_and_the_registry_give_every_ablation_the_same_verdicts(root):
    from study.figures import FIGURES

    for ablation in ablations(root):
        for name in known_figures():
            registered, requires = FIGURES[name].requires, FIGURE_REQUIREMENTS.get(name)
            expected = registered(ablation) if registered else None
            assert (requires(ablation) if requires else None) == expected, (ablation.name, name)


def test_an_impossible_or_unknown_figure_is_one_config_error_line():
    with pytest.raises(ConfigError, match="plain: figures: grid_heatmap needs a grid over exactly"):
        check_figure_names(
            SimpleNamespace(name="plain", variants={"a": []}, figures=["grid_heatmap"])
        )
    with pytest.raises(ConfigError, match="unknown figure 'pie'"):
        check_figure_names(SimpleNamespace(name="plain", variants={}, figures=["pie"]))


def test_the_catalog_imports_no_plotting_library(root):
    code = (
        "import sys, study.figure_catalog; "
        "print(sorted(m for m in ('matplotlib', 'seaborn', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
