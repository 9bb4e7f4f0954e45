"""The results layout (study.paths) and the CSV contracts (study.contracts) as specifications."""

from pathlib import Path

import pandas as pd
import pytest

from study import contracts
from study.config import SCALES
from study.paths import ScaleDir, parse_run_folder, report_dir, run_folder, tuning_folder
from study.planning.ablation import Run, TuningRun

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_folder_parses_back_to_its_run():
    run = Run("regularization", "dropout_0.2", 3, (), tuned=False)
    assert run.folder == "runs/regularization/dropout_0.2/seed3"
    key = parse_run_folder(run.folder)
    assert (key.ablation, key.variant, key.seed, key.level) == (
        "regularization",
        "dropout_0.2",
        3,
        None,
    )
    scale = ScaleDir.of("results", "smoke")
    assert scale.run("a", "b", 0) == Path("results/smoke/runs/a/b/seed0")
    parts = scale.run("a", "b", 7).relative_to(scale.runs).parts
    assert parse_run_folder(parts).seed == 7


def test_a_tuning_folder_parses_back_with_its_level():
    tuning = TuningRun("optimizers", "adam", "lr-0.001", (), 0.001)
    assert tuning.folder == tuning_folder("optimizers", "adam", "lr-0.001")
    key = parse_run_folder(tuning.folder, levels=True)
    assert (key.ablation, key.variant, key.level, key.seed) == ("optimizers", "adam", "lr-0.001", 0)
    # Without levels a tuning folder is not a run folder, and neither is a stray file's folder.
    assert parse_run_folder(tuning.folder) is None
    assert parse_run_folder(("ablation", "variant", "notes")) is None


def test_wildcards_give_the_rules_their_patterns():
    assert run_folder("{ablation}", "{variant}", "{seed}") == "runs/{ablation}/{variant}/seed{seed}"
    scale = ScaleDir("results/smoke")
    assert str(scale.selection("{ablation}", "csv")) == "results/smoke/selection/{ablation}.csv"
    assert str(scale.figure("a", "drift", "svg")) == "results/smoke/figures/a/drift.svg"


def test_only_the_default_scale_writes_the_paper():
    assert report_dir("default") == Path("paper")
    for scale in set(SCALES) - {"default"}:
        assert report_dir(scale) == Path("results") / scale / "paper"
        assert Path("results") / scale in report_dir(scale).parents


def test_scales_are_the_files_in_conf_scale():
    assert sorted(SCALES) == sorted(p.stem for p in (ROOT / "conf" / "scale").glob("*.yaml"))


def test_the_training_loop_writes_the_history_contract(tmp_path):
    from study.training.results import write_history

    row = dict.fromkeys(contracts.HISTORY_COLUMNS, 1)
    write_history(tmp_path / "history.csv", [row])
    header = (tmp_path / "history.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == contracts.HISTORY_COLUMNS


def test_the_reader_keeps_names_as_text_and_infers_numbers(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("ablation,variant,seed,status,test_acc\nlr,1,0,ok,0.5\nlr,0.50,1,diverged,\n")
    df = contracts.read_csv(path, contracts.RUNS)
    assert list(df["variant"]) == ["1", "0.50"]  # a variant named 0.50 is not the number 0.5
    assert df["seed"].dtype == "int64"
    assert df["test_acc"].dtype == "float64" and pd.isna(df["test_acc"][1])


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(contracts.ContractError, match=r"absent\.csv: runs\.csv does not exist"):
        contracts.read_csv(tmp_path / "absent.csv", contracts.RUNS)
    assert contracts.read_csv(tmp_path / "absent.csv", contracts.RUNS, optional=True) is None
    (tmp_path / "empty.csv").write_text("")
    empty = contracts.read_csv(tmp_path / "empty.csv", contracts.RUN_HISTORY)
    assert empty.empty and list(empty.columns) == []
    with pytest.raises(contracts.ContractError, match="lacks the column"):
        contracts.require_columns(empty, contracts.RUN_HISTORY, tmp_path / "empty.csv")
