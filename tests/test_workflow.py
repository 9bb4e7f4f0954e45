"""The whole study through Snakemake at smoke scale, in a temporary copy of the workflow.

This is what a user does: drop an ablation file into conf/ablation/, run `snakemake --cores 2
--config scale=smoke`, open results/smoke/paper/report.html (a smoke study never writes paper/).
The report must have a section, with its figures inline, for every ablation file, including the
one the user added.
"""

from __future__ import annotations

import re
import time

import pytest
from workflow_copy import copy_workflow, snakemake

from study.planning.ablation import load_ablations
from study.report import anchor

USER_ABLATION = """\
title: A user's own ablation
question: Does a wider residual MLP overfit more?
baseline: narrow
seeds: 2
variants:
  narrow: [model.width=64]
  wide: [model.width=512]
"""


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    study = copy_workflow(tmp_path_factory.mktemp("study"), None)
    (study / "conf/ablation/user_width.yaml").write_text(USER_ABLATION)
    start = time.perf_counter()
    result = snakemake(study, "--cores", "2", "--config", "scale=smoke", "-q")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"\nsmoke study: {elapsed:.0f} s")
    return study


@pytest.mark.slow
def test_report_has_a_section_with_inline_figures_for_every_ablation(smoke_study):
    html = (smoke_study / "results/smoke/paper/report.html").read_text()
    ablations = load_ablations(smoke_study / "conf/ablation")
    assert "user_width" in ablations
    sections = re.split(r'<section id="', html)
    for name, ablation in ablations.items():
        section = next((s for s in sections if s.startswith(anchor("ablation", name))), None)
        if ablation.scales is not None and "smoke" not in ablation.scales:
            assert section is None, f"{name} runs only at {ablation.scales}, yet has a section"
            continue
        assert section is not None, f"no section for {name}"
        assert ablation.title in section.replace("&#39;", "'")
        images = re.findall(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{100,}', section)
        # The main text shows the one figure that answers the question; the rest are appended.
        assert len(images) == 1, f"{name}: {len(images)} inline figures in the main text"
        assert f'id="{anchor("results", anchor("ablation", name))}"' in html
    assert 'src="http' not in html and "src='http" not in html  # opens from disk, offline


@pytest.mark.slow
def test_markdown_report_references_figures_beside_it(smoke_study):
    paper = smoke_study / "results/smoke/paper"
    md = (paper / "report.md").read_text()
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    assert links, "no figures in report.md"
    missing = [link for link in links if not (paper / link).is_file()]
    assert not missing, missing
    assert (paper / "tables/regularization.tex").is_file()


@pytest.mark.slow
def test_every_run_of_the_plan_finished_with_its_contracted_files(smoke_study):
    import json

    runs = sorted((smoke_study / "results/smoke/runs").glob("*/*/seed*"))
    assert len(runs) >= 80
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] in ("ok", "diverged", "stopped_early"), run
        assert metrics["epochs_run"] <= 2  # the smoke scale caps epochs
        for name in ("history.csv", "config.yaml", "model.pt", "train.log"):
            assert (run / name).is_file(), run / name


@pytest.mark.slow
def test_a_finished_study_has_nothing_left_to_do(smoke_study):
    result = snakemake(smoke_study, "-n", "--config", "scale=smoke")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_snakemake_report_builds(smoke_study):
    result = snakemake(smoke_study, "--config", "scale=smoke", "--report", "snakemake-report.zip")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (smoke_study / "snakemake-report.zip").stat().st_size > 10_000


@pytest.mark.slow
def test_default_and_full_studies_plan(tmp_path):
    study = copy_workflow(tmp_path, None)
    for scale in ("default", "full"):
        start = time.perf_counter()
        result = snakemake(study, "-n", "--config", f"scale={scale}", timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        print(f"\nsnakemake -n, {scale} scale: {time.perf_counter() - start:.1f} s")
        assert "train" in result.stdout
    assert not (study / "results").exists()  # planning writes nothing
