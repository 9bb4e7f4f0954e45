"""The performance bench: every figure is printed, ratios are the quotients of the printed rates,
and the efficiency and evaluation-share arithmetic is right on a synthetic study.

Nothing here asserts a speed: the machines are shared and noisy.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from benchmarks import gpu, pipeline, plan, report, snakemake_log, throughput, user_loop, workflow
from study.components.models import build_model
from study.config import compose
from study.planning.ablation_file import parse_ablation

FIGURE = re.compile(r"^(\S+)\s+(-?\d+(?:\.\d+)?|nan)(?:\s+(.*))?$")

# A Snakemake 9 log of a tiny study: prepare, two training runs, one tuning run, the report.
LOG = """\
Config file conf/workflow.yaml is extended by additional config specified via the command line.
Building DAG of jobs...
Provided cores: 2
Job stats:
job              count
-------------  -------
prepare_data         1
train                2
total                5

[Thu Nov 26 22:00:00 2026]
localrule prepare_data:
    output: results/default/data/fashion_mnist.pt
    jobid: 1
    resources: tmpdir=/tmp
[Thu Nov 26 22:00:02 2026]
Finished jobid: 1 (Rule: prepare_data)
1 of 5 steps (20%) done
[Thu Nov 26 22:00:02 2026]
localrule train:
    input: results/default/data/fashion_mnist.pt
    output: results/default/runs/r/a/seed0/metrics.json, results/default/runs/r/a/seed0/model.pt
    log: results/default/runs/r/a/seed0/train.log
    jobid: 2
[Thu Nov 26 22:00:02 2026]
localrule train:
    output: results/default/runs/r/b/seed0/metrics.json, results/default/runs/r/b/seed0/model.pt
    jobid: 3
[Thu Nov 26 22:00:12 2026]
Finished jobid: 2 (Rule: train)
2 of 5 steps (40%) done
[Thu Nov 26 22:00:12 2026]
rule tune:
    output: results/default/tune/opt/sgd/lr-0.1/seed0/metrics.json
    jobid: 4
[Thu Nov 26 22:00:14 2026]
Finished jobid: 3 (Rule: train)
3 of 5 steps (60%) done
[Thu Nov 26 22:00:20 2026]
Finished jobid: 4 (Rule: tune)
4 of 5 steps (80%) done
[Thu Nov 26 22:00:20 2026]
localrule all:
    jobid: 0
[Thu Nov 26 22:00:20 2026]
Finished jobid: 0 (Rule: all)
5 of 5 steps (100%) done
"""

RUNS = {  # folder → (wall_s, train_s, eval_s, ablation)
    "runs/r/a/seed0": (8.0, 5.0, 2.0, "r"),
    "runs/r/b/seed0": (11.0, 6.0, 4.0, "r"),
    "tune/opt/sgd/lr-0.1/seed0": (7.5, 4.0, 1.0, "opt"),
}


def parse_figures(stdout: str) -> dict[str, tuple[float, str]]:
    figures = {}
    for line in stdout.splitlines():
        if m := FIGURE.match(line):
            figures[m.group(1)] = (float(m.group(2)), m.group(3) or "")
    return figures


def write_study(root):
    """A finished synthetic study under ``root``: run folders of results/default, and the
    Snakemake log where Snakemake keeps it."""
    scale_dir = root / "results" / "default"
    for folder, (wall, train, evaluation, ablation) in RUNS.items():
        out = scale_dir / folder
        out.mkdir(parents=True)
        metrics = {"wall_s": wall, "train_s": train, "eval_s": evaluation, "ablation": ablation}
        (out / "metrics.json").write_text(json.dumps(metrics))
    log_dir = root / ".snakemake" / "log"
    log_dir.mkdir(parents=True)
    log = log_dir / "2026-11-26T215959.000000.snakemake.log"
    log.write_text(LOG)
    return scale_dir, log


@pytest.fixture
def study(tmp_path):
    return write_study(tmp_path)


@pytest.fixture(scope="module")
def quick(tmp_path_factory, fashion_cache, root):
    """One run of every section in quick mode, as a user would start it."""
    tmp = tmp_path_factory.mktemp("bench")
    scale_dir, log = write_study(tmp)
    out_json = tmp / "figures.json"
    argv = [sys.executable, "-m", "benchmarks", "all", "--quick", "--cache", str(fashion_cache)]
    argv += ["--scale-dir", str(scale_dir), "--log", str(log), "--json", str(out_json)]
    # The benchmark is not installed: it runs from the repository root.
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out_json.read_text())


THROUGHPUT = [
    "a_images_per_s",
    "a_plain_images_per_s",
    "b0_images_per_s",
    "b1_images_per_s",
    "c_images_per_s",
    "a_setup_s",
    "c_gflop_s",
    "matmul_peak_gflop_s",
    "c_fraction_of_peak",
    "cpu_share",
]
EVERY = [
    *THROUGHPUT,
    "ratio_a_b",
    "ratio_a_b1",
    "ratio_a_c",
    "ratio_a_plain_c",
    "forward_mflop_per_image",
    "train_mflop_per_image",
    "startup_import_torch_s",
    "startup_import_study_train_s",
    "startup_job_s",
    "startup_ratio",
    "job_process_overhead_s",
    "startup_heavy_imports",
    "plan_grid_runs",
    "plan_runs",
    "plan_jobs",
    "plan_s",
    "slurm_probe_s",
    "slice_efficiency",
    "eval_share:slice",
    "slice_efficiency_gain",
    "study_wall_s",
    "in_run_s",
    "efficiency",
    "busy_fraction",
    "job_overhead_mean_s",
    "eval_share:all",
]


def test_quick_mode_prints_every_figure_and_the_json_matches(quick):
    stdout, saved = quick
    figures = parse_figures(stdout)
    missing = [key for key in EVERY if key not in figures]
    assert not missing, stdout
    assert set(figures) == set(saved)
    for key, (value, _) in figures.items():
        assert value == pytest.approx(saved[key], rel=1e-3, abs=1e-4), key
    assert stdout.startswith("machine: ")


def test_rates_are_positive_and_ratios_are_the_quotients_of_the_printed_rates(quick):
    figures = parse_figures(quick[0])
    value = {key: v for key, (v, _) in figures.items()}
    for key in THROUGHPUT:
        assert value[key] > 0, key
    # Quick mode times one round, so each paired ratio is that round's quotient of the rates.
    for ratio, (top, bottom) in {
        "ratio_a_b": ("a", "b0"),
        "ratio_a_b1": ("a", "b1"),
        "ratio_a_c": ("a", "c"),
        "ratio_a_plain_c": ("a_plain", "c"),
    }.items():
        quotient = value[f"{top}_images_per_s"] / value[f"{bottom}_images_per_s"]
        assert value[ratio] == pytest.approx(quotient, rel=2e-3), ratio
    assert value["c_gflop_s"] == pytest.approx(
        value["c_images_per_s"] * value["train_mflop_per_image"] / 1e3, rel=2e-3
    )
    assert value["c_fraction_of_peak"] == pytest.approx(
        value["c_gflop_s"] / value["matmul_peak_gflop_s"], rel=2e-3
    )
    assert value["startup_ratio"] == pytest.approx(
        value["startup_job_s"] / value["startup_import_torch_s"], rel=2e-3
    )


def test_targets_carry_a_verdict_that_matches_the_value(quick):
    figures = parse_figures(quick[0])
    # Quick mode plans without the study's own ablations, so it has no dry_run_s.
    assert set(report.TARGETS) - set(figures) == {"dry_run_s"}
    for key, (op, bound) in report.TARGETS.items():
        if key not in figures:
            continue
        value, note = figures[key]
        held = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        assert note.endswith(f"target {op} {bound:g}: {'PASS' if held else 'MISS'}"), (key, note)


def test_the_training_path_imports_no_analysis_or_plotting_library(quick):
    value, note = parse_figures(quick[0])["startup_heavy_imports"]
    assert value == 0, note
    assert "torch._dynamo) loaded: no" in note


def test_quick_plan_counts_the_generated_runs(quick):
    figures = parse_figures(quick[0])
    assert figures["plan_runs"][0] == figures["plan_grid_runs"][0] >= 12
    # runs_per_job (conf/workflow.yaml) runs share a job: at least a job per that many runs.
    per_job = yaml.safe_load((workflow.ROOT / "conf/workflow.yaml").read_text())["runs_per_job"]
    assert figures["plan_jobs"][0] > figures["plan_runs"][0] / per_job
    assert figures["plan_s"][0] > 0


def test_efficiency_of_a_synthetic_study(study, capsys):
    scale_dir, log = study
    stray = scale_dir / "runs" / "r" / "old" / "seed0"  # from an earlier invocation
    stray.mkdir(parents=True)
    (stray / "metrics.json").write_text(json.dumps({"wall_s": 100.0, "train_s": 1, "eval_s": 1}))
    result = pipeline.efficiency(report.Report(), scale_dir, log)
    figures = {k: v for k, (v, _) in parse_figures(capsys.readouterr().out).items()}
    # Wall 20 s × 2 cores; runs of 8 + 11 + 7.5 s in jobs of 10, 12 and 8 s; prepare took 2 s.
    assert figures["study_wall_s"] == 20
    assert figures["study_cores"] == 2
    assert figures["in_run_s"] == pytest.approx(26.5)
    assert figures["efficiency"] == pytest.approx(26.5 / 40, abs=1e-4)
    assert figures["busy_fraction"] == pytest.approx(32 / 40, abs=1e-4)
    assert figures["job_overhead_mean_s"] == pytest.approx((2 + 1 + 0.5) / 3, abs=1e-4)
    assert figures["metrics_not_from_log"] == 1
    assert figures["rule_s:train"] == 22 and figures["rule_s:tune"] == 8
    assert sorted(result["overheads"]) == pytest.approx([0.5, 1.0, 2.0])


def test_efficiency_counts_every_batch_of_shift_evaluation_as_study_work(study, capsys):
    scale_dir, log = study
    # Two shift batches (rules shift and shift_1) of 5 and 7 s after the training jobs: each is
    # study work less the training jobs' median start-up (1 s: overheads 2, 1 and 0.5 s).
    shift_jobs = "".join(
        f"[Thu Nov 26 22:00:{start:02d} 2026]\nrule {rule}:\n"
        f"    output: results/default/runs/r/{v}/seed0/shift.csv\n    jobid: {jobid}\n"
        f"[Thu Nov 26 22:00:{start + wall:02d} 2026]\nFinished jobid: {jobid} (Rule: {rule})\n"
        for rule, v, jobid, start, wall in (("shift", "a", 7, 20, 5), ("shift_1", "b", 8, 25, 7))
    )
    text = log.read_text().replace(
        "[Thu Nov 26 22:00:20 2026]\nlocalrule all:",
        shift_jobs + "[Thu Nov 26 22:00:32 2026]\nlocalrule all:",
    )
    text = text.replace(
        "[Thu Nov 26 22:00:20 2026]\nFinished jobid: 0",
        "[Thu Nov 26 22:00:32 2026]\nFinished jobid: 0",
    )
    log.write_text(text)
    result = pipeline.efficiency(report.Report(), scale_dir, log)
    figures = {k: v for k, (v, _) in parse_figures(capsys.readouterr().out).items()}
    assert figures["rule_s:shift"] == 12 and "rule_s:shift_1" not in figures
    assert result["untimed_s"] == pytest.approx((5 - 1) + (7 - 1))
    assert figures["efficiency"] == pytest.approx((26.5 + 10) / (32 * 2), abs=1e-4)
    assert pipeline.rule_kind("shift_12") == "shift" and pipeline.rule_kind("second_order") == (
        "second_order"
    )


def test_log_parsing_reads_older_snakemake_and_picks_the_study_log(study, tmp_path):
    scale_dir, log = study
    old_style = LOG.replace("Finished jobid: 2 (Rule: train)", "Finished job 2.")
    parsed = snakemake_log.parse_snakemake_log(log)
    old = tmp_path / "old.log"
    old.write_text(old_style)
    (tmp_path / ".snakemake" / "log" / "x.log").write_text(
        old_style
    )  # ignored: not *.snakemake.log
    reparsed = snakemake_log.parse_snakemake_log(old)
    assert [j.seconds for j in parsed.finished] == [2, 10, 12, 8, 0]
    assert {j.jobid: j.end for j in reparsed.jobs} == {j.jobid: j.end for j in parsed.jobs}
    assert parsed.jobs[1].rule == "train" and parsed.jobs[3].rule == "tune"
    # A later invocation that only planned (nothing finished) must not be chosen.
    (log.parent / "2026-11-26T230000.000000.snakemake.log").write_text(LOG.split("[Thu")[0])
    other_scale = log.parent / "2026-11-26T231000.000000.snakemake.log"
    other_scale.write_text(LOG.replace("results/default/", "results/smoke/"))
    assert snakemake_log.find_log(scale_dir.resolve(), log.parent) == log


def test_eval_share_per_ablation_and_overall(study, capsys):
    scale_dir, _ = study
    shares = pipeline.eval_share(report.Report(), scale_dir)
    figures = {k: v for k, (v, _) in parse_figures(capsys.readouterr().out).items()}
    assert figures["eval_share:runs/r"] == pytest.approx(6 / 17, abs=1e-4)
    assert figures["eval_share:tune/opt"] == pytest.approx(1 / 5, abs=1e-4)
    assert figures["eval_share:all"] == pytest.approx(7 / 22, abs=1e-4)
    assert shares["all"] == (15.0, 7.0, 3)


def test_generated_ablation_plans_at_least_the_requested_runs():
    for n in (12, 1000):
        text, runs = plan.grid_ablation(n)
        ablation = parse_ablation(
            workflow.ROOT / "conf/ablation/bench_grid.yaml", yaml.safe_load(text)
        )
        assert len(ablation.variants) * ablation.seeds == runs >= n
        assert ablation.baseline in ablation.variants


def test_job_stats_parser():
    stats = plan.job_stats(LOG)
    assert stats == {"prepare_data": 1, "train": 2, "total": 5}


def test_flop_count_of_the_default_model():
    model = build_model(compose([]).model, (1, 28, 28), 10)
    forward, train = throughput.train_flops_per_image(model)
    macs = 784 * 256 + 3 * 2 * 256 * 256 + 256 * 10
    assert forward == 2 * macs
    # Backward: weight gradients everywhere, input gradients everywhere but the first layer.
    assert train == 3 * 2 * macs - 2 * 784 * 256


def test_user_cutout_erases_one_clipped_square():
    torch.manual_seed(0)
    for _ in range(50):
        img = user_loop.Cutout(10)(torch.ones(1, 28, 28))
        zero = (img[0] == 0).nonzero()
        rows, cols = zero[:, 0].unique(), zero[:, 1].unique()
        assert 1 <= len(rows) <= 10 and 1 <= len(cols) <= 10
        assert len(zero) == len(rows) * len(cols)  # a rectangle: the square, clipped


BATCHED_LOG = """\
Provided cores: 2
[Thu Nov 26 22:00:00 2026]
rule train:
    output: results/default/runs/r/a/seed0/metrics.json (update), \
results/default/runs/r/a/seed0/model.pt (update), \
results/default/runs/r/a/seed1/metrics.json (update)
    jobid: 1
[Thu Nov 26 22:00:20 2026]
Finished jobid: 1 (Rule: train)
[Thu Nov 26 22:00:20 2026]
rule shift:
    output: results/default/runs/r/a/seed0/shift.csv
    jobid: 2
[Thu Nov 26 22:00:30 2026]
Finished jobid: 2 (Rule: shift)
"""


def test_a_batched_job_counts_all_its_runs_and_shift_jobs_count_as_study_work(tmp_path, capsys):
    scale_dir = tmp_path / "results" / "default"
    for seed, wall in ((0, 8.0), (1, 9.0)):
        out = scale_dir / f"runs/r/a/seed{seed}"
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"wall_s": wall, "train_s": 1, "eval_s": 0}))
    log = tmp_path / ".snakemake" / "log" / "2026-11-26T215959.000000.snakemake.log"
    log.parent.mkdir(parents=True)
    log.write_text(BATCHED_LOG)
    result = pipeline.efficiency(report.Report(), scale_dir, log)
    figures = {k: v for k, (v, _) in parse_figures(capsys.readouterr().out).items()}
    # One job of 20 s held runs of 8 + 9 s: 3 s of start-up, taken off the 10 s shift job.
    assert figures["in_run_runs"] == 2 and figures["in_run_s"] == 17
    assert result["overheads"] == [3.0] and figures["untimed_work_s"] == 7
    assert figures["efficiency"] == pytest.approx((17 + 7) / (30 * 2), abs=1e-4)


def test_the_gpu_benchmark_runs_on_the_cpu_and_says_it_has_no_cuda_device(root):
    argv = [sys.executable, "-m", "benchmarks.gpu", "--seconds", "0.3", "--scale", "smoke"]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    if not torch.cuda.is_available():
        assert gpu.NO_CUDA in lines
    projected = next(line for line in lines if line.startswith("projected_study_s"))
    assert float(projected.split()[1]) > 0
    images = next(line for line in lines if line.startswith("study_images"))
    assert int(images.split()[1]) > 0


def test_a_paired_ratio_is_the_median_of_each_rounds_quotient():
    # Round 2 met a slow moment for the numerator only; pairing keeps it from moving the ratio.
    assert report.paired_ratio([10.0, 12.0, 30.0], [10.0, 20.0, 15.0]) == 1.0
    assert report.median([10.0, 12.0, 30.0]) / report.median([10.0, 20.0, 15.0]) == 0.8
    with pytest.raises(ValueError):
        report.paired_ratio([1.0, 2.0], [1.0])


def test_ratio_quartiles_state_the_spread_of_the_rounds():
    assert report.ratio_quartiles([9.0, 10.0, 11.0, 12.0], [10.0] * 4) == (
        "rounds' quartiles 0.925-1.175"
    )
    assert report.ratio_quartiles([9.0], [10.0]) == "one round"


def test_paired_loops_run_back_to_back_in_every_round_in_rotating_order():
    from benchmarks.throughput import interleaved_rates

    seen = []
    loops = {name: (lambda name=name: seen.append(name) or 1.0) for name in
             ("a", "a_plain", "c", "b0", "b1")}  # fmt: skip
    rates, _ = interleaved_rates(loops, repeats=3)
    rounds = [seen[i : i + 5] for i in range(0, 15, 5)]
    assert [r[:3] for r in rounds] == [
        ["a", "a_plain", "c"], ["a_plain", "c", "a"], ["c", "a", "a_plain"]
    ]  # fmt: skip
    assert [r[3:] for r in rounds] == [["b0", "b1"], ["b1", "b0"], ["b0", "b1"]]
    assert all(len(v) == 3 for v in rates.values())


def test_the_dry_runs_path_hides_slurms_probe_tool_and_keeps_everything_else(tmp_path, monkeypatch):
    tools, other = tmp_path / "bin", tmp_path / "other"
    for folder, names in ((tools, ("sinfo", "sacct", "bash")), (other, ("sinfo", "git"))):
        folder.mkdir()
        for name in names:
            (folder / name).write_text("#!/bin/sh\n")
            (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{other}:{tools}")
    path = plan.path_without("sinfo", tmp_path / "links")
    found = {name: shutil.which(name, path=path) for name in ("sinfo", "sacct", "bash", "git")}
    assert found["sinfo"] is None
    assert found["sacct"] and found["bash"] and found["git"]
    assert path.split(":").count(str(tmp_path / "links")) == 1
