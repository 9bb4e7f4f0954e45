"""docs/extending.md, followed to the letter in a copy of the workflow.

Every code block of the guide that is marked ``<!-- append: FILE -->`` or ``<!-- create: FILE -->``
is applied to a copy of the workflow *and of the study package*, and the copy runs with its own
package first on PYTHONPATH, so the training jobs, the planner and the figures job all see the new
entries exactly as a user's checkout would. The copy then plans the study (every new name checked)
and runs the guide's ablation at smoke scale: a new optimizer, schedule, norm, corruption, figure
and claim, each of which must show up in the outputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_copy import ROOT, copy_workflow, snakemake, tail

GUIDE = ROOT / "docs/extending.md"
BLOCK = re.compile(r"<!-- (append|create): (\S+) -->\n```\w*\n(.*?)```", re.S)


def guide_blocks() -> list[tuple[str, str, str]]:
    """(action, file, code) of every marked block of the guide, in order."""
    return BLOCK.findall(GUIDE.read_text())


def apply_guide(study: Path) -> None:
    """The guide's edits: the marked blocks, then the one-line and copy edits its prose asks."""
    for action, name, code in guide_blocks():
        path = study / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if action == "create":
            path.write_text(code)
        else:
            path.write_text(path.read_text().rstrip("\n") + "\n\n\n" + code)
    shift = study / "conf/shift.yaml"
    settings = yaml.safe_load(shift.read_text())
    settings["corruptions"].append("invert")
    shift.write_text(yaml.safe_dump(settings, sort_keys=False))
    for group, base, name in (("model", "resmlp", "linear"),
                              ("data", "fashion_mnist", "fashion_mnist_mirrored")):  # fmt: skip
        text = (study / f"conf/{group}/{base}.yaml").read_text()
        (study / f"conf/{group}/{name}.yaml").write_text(
            re.sub(r"^name: \S+", f"name: {name}", text, flags=re.M)
        )


# The model and the dataset are only planned: a full study of them would cost a data cache and
# runs without showing more than the planner's checks do.
PLANNED_ONLY = """\
title: Planned only
question: Do a linear model and a mirrored dataset pass the planner's checks?
baseline: mirrored
seeds: 1
variants:
  mirrored: [data=fashion_mnist_mirrored]
  linear: [model=linear]
compare: [{variants: [mirrored, linear], factor: [data, model]}]
"""


def test_the_guide_marks_an_edit_for_every_kind():
    files = {name for _, name, _ in guide_blocks()}
    for kind in ("schedules", "norms", "corruptions", "models", "data"):
        assert f"study/components/{kind}.py" in files
    assert "study/components/optimizers/signsgd.py" in files  # an optimizer is a module of its own
    assert {"conf/optim/signsgd.yaml", "conf/schedule/halving.yaml", "conf/claims.yaml"} <= files
    assert {"study/figures/extension.py", "study/figures/__init__.py"} <= files


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    study = copy_workflow(tmp_path_factory.mktemp("extended"), {})
    shutil.copytree(ROOT / "study", study / "study", ignore=shutil.ignore_patterns("__pycache__"))
    apply_guide(study)
    env = os.environ | {"PYTHONPATH": str(study)}
    return study, env


@pytest.mark.slow
def test_the_extended_study_plans_with_every_new_component(extended):
    study, env = extended
    (study / "conf/ablation/planned.yaml").write_text(PLANNED_ONLY)
    try:
        result = snakemake(study, "-n", "--config", "scale=smoke", env=env)
    finally:
        (study / "conf/ablation/planned.yaml").unlink()
    assert result.returncode == 0, tail(result)
    assert "prepare_data" in result.stdout
    assert "fashion_mnist_mirrored" in result.stdout


@pytest.mark.slow
def test_the_extended_study_runs_and_every_new_component_shows_up(extended):
    study, env = extended
    result = snakemake(
        study, "figures_extension", "--cores", "2", "--config", "scale=smoke", env=env, timeout=600
    )
    assert result.returncode == 0, tail(result)
    results = study / "results/smoke"

    signsgd = sorted((results / "runs/extension/signsgd").glob("seed*/metrics.json"))
    assert len(signsgd) == 2
    metrics = json.loads(signsgd[0].read_text())
    assert metrics["status"] in ("ok", "stopped_early", "diverged")
    assert metrics["config"]["optim"]["name"] == "signsgd"
    assert metrics["config"]["schedule"]["name"] == "halving"
    assert metrics["config"]["model"]["norm"] == "rmsnorm"
    # The halving schedule from optim.lr=0.001: each epoch ends at a lower rate than the last.
    history = pd.read_csv(signsgd[0].parent / "history.csv")
    assert len(history) == 2 and history["lr"].iloc[1] < history["lr"].iloc[0] <= 0.001

    shift = pd.read_csv(signsgd[0].parent / "shift.csv")
    assert sorted(shift.loc[shift["shift"] == "invert", "severity"].unique()) == [1, 2, 3, 4, 5]
    assert set(shift["n_norm"]) == {0}  # RMSNorm keeps no running statistics for AdaBN

    figure = results / "figures/extension/final_train_loss.png"
    assert figure.is_file() and figure.stat().st_size > 1000
    captions = json.loads((results / "figures/extension/captions.json").read_text())
    assert captions["final_train_loss"].startswith("Final training loss")

    claims = pd.read_csv(results / "tables/claims.csv").set_index("id")
    row = claims.loc["signsgd_train_loss"]
    assert row["ablation"] == "extension" and row["figure"] == "extension/final_train_loss"
    assert row["verdict"] in ("supported", "contradicted", "inconclusive")
