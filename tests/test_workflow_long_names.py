"""Names the workflow builds from user-chosen names stay within the file system's limits: a study
whose variant names have 100 characters and whose seeds are numbered from 1000 plans and runs to
its report at smoke scale, and a variant name over the limit is refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_copy import copy_workflow, snakemake, tail

from study.planning.ablation_file import MAX_NAME, AblationError, load_ablation

LONG = 100
BASELINE = "none_" + "n" * (LONG - 5)
DROPOUT = "dropout_" + "d" * (LONG - 8)


def ablation_text(baseline: str, variant: str) -> str:
    return f"""\
title: Long names
question: Do long variant names and large seeds fit every path the workflow builds?
baseline: {baseline}
seeds: 2
common: [optim=adamw, train.epochs=1]
variants:
  {baseline}: []
  {variant}: [model.dropout=0.5]
"""


def test_a_variant_name_over_the_limit_is_one_line_naming_it(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text(ablation_text(BASELINE, "d" * (MAX_NAME + 1)))
    with pytest.raises(AblationError) as err:
        load_ablation(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    assert f"has {MAX_NAME + 1} characters; shorten it to at most {MAX_NAME}" in message
    path.write_text(ablation_text(BASELINE, "d" * MAX_NAME))  # at the limit: accepted
    assert len(load_ablation(path).variants) == 2


@pytest.mark.slow
def test_long_variant_names_and_seeds_above_1000_run_at_smoke_scale(tmp_path):
    study = copy_workflow(tmp_path / "study", {})
    ablations = tmp_path / "ablations"
    ablations.mkdir()
    (ablations / "long_names.yaml").write_text(ablation_text(BASELINE, DROPOUT))
    config = ("--config", "scale=smoke", f"ablations={ablations}", "first_seed=1000",
              "runs_per_job=4")  # fmt: skip
    result = snakemake(study, "--cores", "2", *config, timeout=900)
    assert result.returncode == 0, tail(result)
    runs = study / "results/smoke/runs/long_names"
    finished = sorted(p.parent.relative_to(runs) for p in runs.glob("*/seed*/metrics.json"))
    assert finished == [
        Path(v) / f"seed{s}" for v in sorted((BASELINE, DROPOUT)) for s in (1000, 1001)
    ]
    # One job trained the four runs; its log is named after the first and the count that follow.
    logs = sorted((study / "results/smoke/logs/train/long_names").iterdir())
    assert [p.name for p in logs] == [f"{BASELINE}_seed1000+3.log"], logs
    # Every name the workflow derived (run folders, logs, tables, figures, report files) stays
    # near the longest variant name; Snakemake's own .snakemake/ bookkeeping is its business.
    longest = max((study / "results").rglob("*"), key=lambda p: len(p.name))
    assert len(longest.name) <= LONG + 20, longest
    assert (study / "results/smoke/paper/report.html").is_file()
