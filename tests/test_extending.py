"""docs/extending.md, followed to the letter in a copy of the workflow.

Every code block of the guide that is marked ``<!-- append: FILE -->`` or ``<!-- create: FILE -->``
is applied to a copy of the workflow *and of the study package*, and the copy runs with its own
package first on PYTHONPATH, so the training jobs, the planner and the figures job all see the new
entries exactly as a user's checkout would. The copy then plans the study (every new name checked)
and runs the guide's ablation at smoke scale: a new optimizer, schedule, norm, corruption,
in-network regularizer, figure and claim, each of which must show up in the outputs (and a loss
penalty, whose term is checked directly).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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
    config = study / "conf/config.yaml"
    config.write_text(
        re.sub(
            r"^regularization:\n",
            "regularization:\n  group_lasso: 0.0\n",
            config.read_text(),
            flags=re.M,
        )
    )
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
    # A regularizer too, in the network or on the loss; an in-network one adds its model key.
    regularizers = {"activation_noise", "group_lasso"}
    assert {f"study/components/regularizers/{name}.py" for name in regularizers} <= files
    assert {"conf/model/resmlp.yaml", "conf/model/resnet.yaml"} <= files
    assert {"conf/optim/signsgd.yaml", "conf/schedule/halving.yaml", "conf/claims.yaml"} <= files
    assert {"study/figures/extension.py", "study/figures/__init__.py"} <= files


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    study = copy_workflow(tmp_path_factory.mktemp("extended"), {})
    shutil.copytree(ROOT / "study", study / "study", ignore=shutil.ignore_patterns("__pycache__"))
    apply_guide(study)
    env = os.environ | {"PYTHONPATH": str(study)}
    return study, env


# Run in the copy: the guide's two regularizers, asked the way the study asks them.
REGULARIZERS_ACT = """
import json, torch
from study.components.models import build_model
from study.components.regularizers import loss_penalties, penalty
from study.config import compose, validate

cfg = compose(["model.noise_std=0.5", "regularization.group_lasso=0.01"])
validate(cfg)
model, plain = (build_model(c.model, (1, 28, 28), 10) for c in (cfg, compose([])))
plain.load_state_dict(model.state_dict())
x = torch.randn(64, 1, 28, 28)
hidden = model.blocks[0].branch[:5](model.stem(x))
at_noise, at_zero = model.blocks[0].branch[5].train(), plain.blocks[0].branch[5].train()
seen = {
    "layers": [type(m).__name__ for m in at_noise],
    "noise_std": (at_noise(hidden) - hidden).std().item(),
    "zero_is_identity": torch.equal(at_zero(hidden), hidden),
}
model.eval(), plain.eval()
print(json.dumps(seen | {
    "eval_is_plain": torch.equal(model(x), plain(x)),
    "penalties": loss_penalties(cfg),
    "term": penalty(model, group_lasso=0.01).item(),
    "rows": 0.01 * sum(w.flatten(1).norm(dim=1).sum().item()
                       for w in model.parameters() if w.ndim >= 2),
}))
"""


def test_the_guide_regularizers_act_where_they_are_placed(extended):
    study, env = extended
    result = subprocess.run(
        [sys.executable, "-c", REGULARIZERS_ACT], cwd=study, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, tail(result)
    seen = json.loads(result.stdout)
    # The noise sits beside dropout in each branch (name order) and adds N(0, 0.5²) in training.
    assert seen["layers"] == ["GaussianNoise", "Dropout"]
    assert seen["noise_std"] == pytest.approx(0.5, rel=0.02)
    assert seen["zero_is_identity"] and seen["eval_is_plain"]  # off at 0 and in evaluation
    assert seen["penalties"] == {"group_lasso": 0.01}
    assert seen["term"] == pytest.approx(seen["rows"], rel=1e-5) and seen["term"] > 0


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

    # The noise acted: noisy differs from sgd (same seed, so the same initial weights and batches)
    # in model.noise_std alone, and its training loss differs from the first epoch on.
    sgd, noisy = (results / f"runs/extension/{v}/seed0" for v in ("sgd", "noisy"))
    configs = [json.loads((run / "metrics.json").read_text())["config"] for run in (sgd, noisy)]
    assert [c["model"]["noise_std"] for c in configs] == [0.0, 0.5]
    assert {**configs[0]["model"], "noise_std": 0.5} == configs[1]["model"]
    losses = [pd.read_csv(run / "history.csv")["train_loss"] for run in (sgd, noisy)]
    assert len(losses[1]) == 2 and (losses[0] - losses[1]).abs().min() > 1e-3

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
