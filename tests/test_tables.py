import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from scipy import stats as sps

from study.analysis import tables as tables
from study.analysis.tables import build_tables, main, render, summarize

HISTORY = (
    "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,eval_seconds\n"
)


def write_run(root: Path, ablation, variant, seed, status="ok", lr=0.1, level=None, **metrics):
    """A run folder following docs/architecture.md: metrics.json and a 3-epoch history.csv."""
    folder = root / ablation / variant / (level or "") / f"seed{seed}"
    folder.mkdir(parents=True)
    values = {
        "status": status,
        "ablation": ablation,
        "variant": variant,
        "seed": seed,
        "scale": "smoke",
        "train_loss": 0.30,
        "train_acc": 0.90,
        "val_loss": 0.40,
        "val_acc": 0.86,
        "test_loss": 0.42,
        "test_acc": 0.85,
        "gap_acc": 0.05,
        "gap_loss": 0.12,
        "best_epoch": 3,
        "best_val_loss": 0.40,
        "best_val_acc": 0.86,
        "epochs_run": 3,
        "diverged_step": None,
        "s_per_epoch": 2.0,
        "weight_sparsity": 0.01,
        "weight_norm": 12.0,
        "lr": lr,
        "config": {"optim": {"name": variant, "lr": lr}, "train": {"epochs": 3}, "tags": [1, 2]},
        "versions": {"torch": "2.5"},
        "hardware": {"device": "cpu"},
    }
    values.update(metrics)
    (folder / "metrics.json").write_text(json.dumps(values))
    rows = "".join(
        f"{e},{10 * e},{lr},{0.6 - 0.1 * e},0.8,{0.7 - 0.1 * e},0.8,0.5,0.8,1.0,0.1\n"
        for e in (1, 2, 3)
    )
    (folder / "history.csv").write_text(HISTORY + rows)
    return folder


def spec(baseline, variants):
    return SimpleNamespace(baseline=baseline, variants={v: [] for v in variants})


OPT_ACC = {"sgd": [0.85, 0.90, 0.86], "momentum": [0.90, 0.92, 0.88], "adam": [0.86, 0.91, 0.87]}


@pytest.fixture
def scale(tmp_path):
    runs = tmp_path / "runs"
    for variant, accs in OPT_ACC.items():
        for seed, acc in enumerate(accs):
            write_run(runs, "optimizers", variant, seed, test_acc=acc, gap_acc=0.95 - acc)
    return tmp_path


def test_runs_table_has_one_row_per_complete_run_with_flat_config(scale):
    (scale / "runs" / "optimizers" / "adam" / "seed7").mkdir()  # in progress: no metrics.json
    t = build_tables(scale, {"optimizers": spec("sgd", OPT_ACC)})
    runs = t.runs
    assert len(runs) == 9
    assert list(runs.columns[:5]) == ["ablation", "variant", "seed", "status", "test_acc"]
    row = runs[(runs.variant == "momentum") & (runs.seed == 1)].iloc[0]
    assert row["test_acc"] == 0.92
    assert row["config.optim.lr"] == 0.1 and row["config.train.epochs"] == 3
    assert row["config.tags"] == "[1, 2]"
    assert not any(c.startswith(("versions", "hardware")) for c in runs.columns)


def test_summary_gives_mean_ci_and_paired_difference_to_the_baseline(scale):
    s = build_tables(scale, {"optimizers": spec("sgd", OPT_ACC)}).summaries["optimizers"]
    assert list(s.variant) == ["sgd", "momentum", "adam"]  # ablation file order
    m = s.set_index("variant").loc["momentum"]
    assert (m.n_seeds, m.n_ok, m.n_diverged, m.n_stopped_early) == (3, 3, 0, 0)
    assert m.test_acc_mean == pytest.approx(0.90)
    # s = 0.02, t(0.975, 2) = 4.302653 → half-width 0.049683
    assert m.test_acc_hi - m.test_acc_mean == pytest.approx(0.049683, abs=1e-6)
    # momentum − sgd per seed: 0.05, 0.02, 0.02 → mean 0.03, paired t-test p = 0.095466
    assert m.test_acc_diff == pytest.approx(0.03)
    assert m.test_acc_p == pytest.approx(sps.ttest_rel(OPT_ACC["momentum"], OPT_ACC["sgd"]).pvalue)
    assert m.test_acc_pairs == 3
    # adam − sgd: 0.01, 0.01, 0.01 is a constant difference: its spread says nothing about the
    # noise, so p is the exact sign-flip p of 3 agreeing pairs, 2^(1-3) = 0.25, never 0.
    # Benjamini–Hochberg over the two variants: momentum's p ranks first (factor 2/1), adam's
    # second (factor 2/2)
    a = s.set_index("variant").loc["adam"]
    assert a.test_acc_p == pytest.approx(0.25) and a.test_acc_verdict == "inconclusive"
    assert a.test_acc_p_adjusted == pytest.approx(0.25)
    assert m.test_acc_p_adjusted == pytest.approx(2 * 0.095466, abs=1e-6)
    assert m.test_acc_verdict == "inconclusive"
    # gap_acc = 0.95 − test_acc: lower is better; adam's constant −0.01 is inconclusive as well
    assert a.gap_acc_diff == pytest.approx(-0.01) and a.gap_acc_verdict == "inconclusive"
    base = s.set_index("variant").loc["sgd"]
    assert math.isnan(base.test_acc_diff) and base.test_acc_verdict == ""


def test_diverged_runs_are_counted_but_their_losses_are_not_averaged(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(3):
        write_run(runs, "lr", "base", seed, test_loss=0.40)
    write_run(runs, "lr", "high", 0, test_loss=0.50)
    write_run(runs, "lr", "high", 1, status="diverged", test_loss=1e9, test_acc=0.10)
    write_run(runs, "lr", "high", 2, status="diverged", test_loss=float("nan"), test_acc=0.10)
    t = build_tables(tmp_path, {"lr": spec("base", ["base", "high"])})
    high = t.summaries["lr"].set_index("variant").loc["high"]
    assert (high.n_seeds, high.n_ok, high.n_diverged) == (3, 1, 2)
    assert high.test_loss_mean == 0.50 and high.test_loss_n == 1
    # accuracies of diverged runs are real outcomes (chance level) and stay in the mean
    assert high.test_acc_mean == pytest.approx((0.85 + 0.10 + 0.10) / 3)
    assert high.test_loss_pairs == 1
    assert "diverged 2/3" in render(t)["lr.md"]
    # runs.csv keeps the raw values
    assert t.runs["test_loss"].max() == 1e9


def test_variants_without_runs_and_unplanned_variants_show(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "reg", "none", 0)
    write_run(runs, "reg", "extra", 0)
    write_run(runs, "other", "x", 0)  # not an ablation of this study: left out
    t = build_tables(tmp_path, {"reg": spec("none", ["none", "dropout"])})
    s = t.summaries["reg"]
    assert list(s.variant) == ["none", "dropout", "extra"]
    assert list(s.n_seeds) == [1, 0, 1]
    assert set(t.summaries) == {"reg"} and set(t.runs.ablation) == {"reg"}
    assert any("runs/other is not an ablation of this study" in n for n in t.notes)


def test_a_study_of_one_ablation_tables_only_its_runs(tmp_path):
    """Two ablations' runs (and tuning runs) lie in the scale folder; a study of one of them
    gathers that one only: its runs.csv, history, tuning table and counts."""
    for seed in range(3):
        write_run(tmp_path / "runs", "reg", "none", seed)
        write_run(tmp_path / "runs", "opt", "sgd", seed)
        write_run(tmp_path / "runs", "opt", "adam", seed)
    write_run(tmp_path / "tune", "opt", "adam", 1000, level="lr-0.001", lr=0.001)
    write_run(tmp_path / "tune", "reg", "none", 1000, level="lr-0.001", lr=0.001)
    both = build_tables(
        tmp_path, {"reg": spec("none", ["none"]), "opt": spec("sgd", ["sgd", "adam"])}
    )
    assert len(both.runs) == 9 and len(both.tuning) == 2
    one = build_tables(tmp_path, {"reg": spec("none", ["none"])})
    assert set(one.runs.ablation) == {"reg"} and len(one.runs) == 3
    assert set(one.history.ablation) == {"reg"}
    assert set(one.tuning.ablation) == {"reg"} and len(one.tuning) == 1
    assert "reg,none,0" in render(one)["runs.csv"] and ",sgd," not in render(one)["runs.csv"]


def test_history_shift_and_tuning_tables_carry_the_run_keys(tmp_path):
    folder = write_run(tmp_path / "runs", "norm", "bn", 4)
    (folder / "shift.csv").write_text(
        "shift,severity,adapted,slice,accuracy,loss\nclean,0,False,-1,0.9,0.3\n"
        "blur,3,True,-1,0.7,0.9\n"
    )
    write_run(tmp_path / "tune", "opt", "adam", 0, level="lr-0.001", lr=0.001)
    write_run(tmp_path / "tune", "opt", "adam", 0, level="lr-0.01", lr=0.01, status="diverged")
    t = build_tables(tmp_path, {"norm": spec("bn", ["bn"]), "opt": spec("adam", ["adam"])})
    assert len(t.history) == 3
    assert list(t.history.columns[:4]) == ["ablation", "variant", "seed", "epoch"]
    assert set(t.history.seed) == {4}
    assert list(t.shift.columns[:3]) == ["ablation", "variant", "seed"]
    assert list(t.shift.accuracy) == [0.9, 0.7]
    assert list(t.tuning.columns[:5]) == ["ablation", "variant", "level", "seed", "status"]
    assert sorted(t.tuning.level) == ["lr-0.001", "lr-0.01"]
    assert sorted(t.tuning.status) == ["diverged", "ok"]


def test_without_shift_files_the_shift_table_is_empty_with_its_columns(scale):
    t = build_tables(scale, {})
    assert t.shift.empty
    expected = ["ablation", "variant", "seed", "shift", "severity", "adapted", "slice", "accuracy"]
    assert list(t.shift.columns) == expected + ["loss"]
    assert list(t.tuning.columns) == ["ablation", "variant", "level", "seed", "status"]
    assert t.tuning.empty and "tuning.csv" in render(t)


def test_an_ablation_file_without_runs_still_gets_its_tables(scale):
    t = build_tables(scale, {"schedules": spec("constant", ["constant", "cosine"])})
    s = t.summaries["schedules"]
    assert list(s.variant) == ["constant", "cosine"] and list(s.n_seeds) == [0, 0]
    assert {"schedules.csv", "schedules.md", "schedules.tex"} <= set(render(t))


def test_markdown_and_latex_render_the_summary(scale):
    files = render(build_tables(scale, {"optimizers": spec("sgd", OPT_ACC)}))
    md = files["optimizers.md"]
    assert "sgd (baseline)" in md
    assert "0.900 [0.850, 0.950]" in md  # momentum's test_acc mean [95% CI]
    # adam − sgd: a constant difference
    assert "+0.0100 [0.0100, 0.0100], p_adj 0.25, detectable 0, inconclusive" in md
    tex = files["optimizers.tex"]
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert r"test\_acc" in tex and r"$\Delta$" in tex


def test_summarize_without_runs_of_the_baseline_leaves_differences_empty(scale):
    runs = build_tables(scale, {}).runs
    s = summarize(runs, "optimizers", "missing", ["momentum"])
    assert s.test_acc_diff.isna().all() and set(s.test_acc_verdict) == {"inconclusive"}


ABLATION = """title: Optimizers
question: Which optimizer trains best?
baseline: sgd
seeds: 3
common: []
variants:
  sgd: [optim=sgd]
  momentum: [optim=momentum]
  adam: [optim=adam]
"""


@pytest.fixture
def ablation_dir(tmp_path):
    folder = tmp_path / "conf_ablation"
    folder.mkdir()
    (folder / "optimizers.yaml").write_text(ABLATION)
    return folder


def test_cli_writes_every_table_and_the_claims(scale, ablation_dir, tmp_path, capsys):
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        "claims:\n  - {id: m, claim: Momentum beats SGD., kind: compare, ablation: optimizers,\n"
        "     reference: sgd, variant: adam, metric: test_acc, expect: higher, unit: pp,\n"
        "     margin: 0.5, margin_reason: resolution}\n"
    )
    args = ["--scale-dir", str(scale), "--ablations", str(ablation_dir), "--claims", str(claims)]
    assert main(args) == 0
    out = scale / "tables"
    names = {p.name for p in out.iterdir()}
    assert names == {
        "runs.csv",
        "history.csv",
        "shift.csv",
        "tuning.csv",
        "optimizers.csv",
        "optimizers.md",
        "optimizers.tex",
        "claims.csv",
    }  # no temporary files left behind
    # adam − sgd is +1 pp on every seed: a constant has the exact sign-flip p 0.25 with 3 seeds,
    # so the one rule cannot call it supported
    claims_table = pd.read_csv(out / "claims.csv")
    assert claims_table.verdict.tolist() == ["inconclusive"]
    assert claims_table.effect.tolist() == pytest.approx([1.0]) and claims_table.p[0] == 0.25
    assert len(pd.read_csv(out / "optimizers.csv")) == 3
    assert "wrote 8 files" in capsys.readouterr().out


def test_cli_rejects_a_malformed_metrics_file_and_writes_nothing(scale, ablation_dir, capsys):
    bad = scale / "runs" / "optimizers" / "adam" / "seed1" / "metrics.json"
    bad.write_text('{"status": "ok", "test_acc": ')
    assert main(["--scale-dir", str(scale), "--ablations", str(ablation_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(bad) in err and f"delete the folder {bad.parent}" in err
    assert not (scale / "tables").exists()


def test_a_bad_input_leaves_previous_tables_untouched(scale, ablation_dir):
    args = ["--scale-dir", str(scale), "--ablations", str(ablation_dir)]
    assert main(args) == 0
    before = (scale / "tables" / "runs.csv").read_text()
    write_run(scale / "runs", "optimizers", "adam", 9, status="exploded")
    assert main(args) == 1
    assert (scale / "tables" / "runs.csv").read_text() == before


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("[1, 2]", "not a JSON object"),
        ('{"status": "ok"}', "lacks train_loss"),
        ({"status": "weird"}, "status 'weird' is not one of ok, diverged, stopped_early"),
        ({"test_acc": "high"}, "metric test_acc is 'high', not a number"),
        ({"seed": 5}, "says seed=5 but the folder is 0"),
    ],
)
def test_metrics_contract_violations_name_the_problem(tmp_path, change, problem):
    path = write_run(tmp_path / "runs", "a", "b", 0) / "metrics.json"
    if isinstance(change, str):
        path.write_text(change)
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(tables.TablesError, match=problem):
        build_tables(tmp_path, {"a": spec("b", ["b"])})


def test_a_run_without_history_is_an_error(tmp_path):
    folder = write_run(tmp_path / "runs", "a", "b", 0)
    (folder / "history.csv").unlink()
    with pytest.raises(tables.TablesError, match="history.csv is missing"):
        build_tables(tmp_path, {"a": spec("b", ["b"])})


def test_cli_rejects_a_missing_ablation_folder(scale, tmp_path, capsys):
    assert main(["--scale-dir", str(scale), "--ablations", str(tmp_path / "nope")]) == 1
    assert "no such folder of ablation files" in capsys.readouterr().err
    assert not (scale / "tables").exists()


def test_only_declared_comparisons_get_a_difference_and_a_verdict(tmp_path):
    # Small-batch runs are compared with each other, never with the full-batch baseline: a
    # 3-epoch batch-8 run against a 10-epoch batch-128 one would be a confound, not a finding.
    root = tmp_path / "runs"
    accuracies = {"batchnorm": 0.86, "batchnorm_small": 0.80, "batchrenorm_small": 0.82}
    for variant, acc in accuracies.items():
        for seed in range(3):
            write_run(root, "norm", variant, seed, test_acc=acc + 0.001 * seed)
    runs = build_tables(tmp_path, {"norm": spec("batchnorm", accuracies)}).runs
    table = summarize(
        runs, "norm", "batchnorm", list(accuracies), [("batchnorm_small", "batchrenorm_small")]
    ).set_index("variant")
    assert table.loc["batchrenorm_small", "reference"] == "batchnorm_small"
    assert table.loc["batchrenorm_small", "test_acc_diff"] == pytest.approx(0.02)
    for variant in ("batchnorm", "batchnorm_small"):  # in no declared pair
        assert table.loc[variant, "reference"] == ""
        assert math.isnan(table.loc[variant, "test_acc_diff"])
        assert table.loc[variant, "test_acc_verdict"] == ""
    # Without declared pairs every variant is measured against the baseline, as before.
    default = summarize(runs, "norm", "batchnorm", list(accuracies)).set_index("variant")
    assert default.loc["batchnorm_small", "test_acc_diff"] == pytest.approx(-0.06)
