"""The report from a small synthetic study: sections, numbers, escaping, links and provenance."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from test_figures import build_study

from study import report
from study.analysis.tables import summarize
from study.figures import make_figures
from study.provenance import git_state
from study.report import ReportError, build_context, write_report

XSS_VARIANT = "<script>alert(1)</script>"
XSS_CLAIM = "Claims are text <img src=x onerror=alert(2)>"


def _add_hostile_ablation(scale_dir, ablations):
    """An ablation whose names carry HTML: the report must show them as text."""
    tables = scale_dir / "tables"
    runs = pd.read_csv(tables / "runs.csv", dtype={"variant": str, "ablation": str})
    rows = runs[runs["ablation"] == "normalization"].copy()
    rows["ablation"] = "xss"
    rows["variant"] = rows["variant"].map({"none": "base", "batchnorm": XSS_VARIANT})
    runs = pd.concat([runs, rows], ignore_index=True)
    runs.to_csv(tables / "runs.csv", index=False)
    summarize(runs, "xss", "base", ["base", XSS_VARIANT]).to_csv(tables / "xss.csv", index=False)
    ablations["xss"] = replace(
        ablations["normalization"],
        name="xss",
        title="Hostile <b>names</b> & co",
        question="Does <script>alert(3)</script> stay text?",
        baseline="base",
        variants={"base": [], XSS_VARIANT: []},
        figures=[],
    )


def _write_claims(scale_dir):
    pd.DataFrame(
        [
            dict(id="reg_dropout", claim="Dropout improves test accuracy.",
                 ablation="regularization", metric="test_acc", effect=0.0277, lo=0.0149,
                 hi=0.0405, verdict="supported", figure="regularization/test_accuracy",
                 detail="dropout - none"),
            dict(id="xss", claim=XSS_CLAIM, ablation="xss", metric="test_acc", effect=0.01,
                 lo=-0.02, hi=0.04, verdict="inconclusive", figure="xss/nothing", detail=""),
            dict(id="second_order_cost", claim="Second-order methods cost more per step.",
                 ablation="", metric="", effect=None, lo=None, hi=None, verdict="not tested",
                 figure="second_order/iterations_vs_time", detail="second_order.csv is missing"),
        ]
    ).to_csv(scale_dir / "tables" / "claims.csv", index=False)  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    scale_dir, ablations = build_study(root)
    _add_hostile_ablation(scale_dir, ablations)
    _write_claims(scale_dir)
    # Two figures per ablation keep the test fast; the report includes whatever was drawn.
    for name, ablation in ablations.items():
        if name != "xss":
            make_figures(scale_dir, ablation, ["test_accuracy", "learning_curves"])
    out = root / "paper"
    context = build_context(scale_dir, ablations, scale="smoke", repo=root)
    write_report(context, out)
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    return {"root": root, "scale_dir": scale_dir, "ablations": ablations, "out": out,
            "html": html, "md": md, "context": context}  # fmt: skip


def test_every_section_is_rendered(built):
    html, md = built["html"], built["md"]
    headings = ("Abstract", "Introduction", "Method", "Claims and verdicts", "Discussion",
                "Limitations", "References", "Appendix")  # fmt: skip
    for heading in headings:
        assert f">{heading}</h2>" in html
        assert f"## {heading}\n" in md
    # The appendix holds everything else, in the same order in both documents.
    parts = ("A. Method in detail", "B. Results per ablation", "C. The claims ledger in full",
             "D. Class-prior shift", "E. Reproducing this report", "F. All runs")  # fmt: skip
    for text in (html, md):
        at = [text.index(p) for p in parts]
        assert at == sorted(at) and at[0] > text.index("References")
    # In the paper's order, not the order the files happen to have.
    positions = [html.index(f">{h}</h2>") for h in headings]
    assert positions == sorted(positions)
    for name in built["ablations"]:
        assert f'id="ablation-{name}"' in html
    for title in ("Regularization", "Optimizers", "Optimizer × schedule"):
        assert f"<h2>{title}</h2>" in html and f"## {title}" in md


def test_ablations_follow_the_course_not_the_file_names(built):
    html = built["html"]
    course = ["regularization", "optimizers", "normalization", "grid", "xss"]
    at = [html.index(f'<section id="ablation-{name}"') for name in course]
    assert at == sorted(at)
    context = build_context(built["scale_dir"], built["ablations"], repo=built["root"],
                            order=("normalization", "regularization"))  # fmt: skip
    assert [s["name"] for s in context["sections"]][:3] == ["normalization", "regularization",
                                                             "grid"]  # fmt: skip


def test_abstract_is_written_from_the_claims_and_effects(built):
    context = built["context"]
    abstract = " ".join(context["abstract"])
    assert abstract.startswith("Do the rules of thumb")  # the question comes first
    assert f"{context['provenance']['n_runs']} training runs" in abstract
    # The setting in words, from the runs' configs (every run of the fixture: 1,000 images).
    trained = "We trained residual MLPs on 1,000 Fashion-MNIST training images for 4 epochs"
    assert trained in abstract
    assert "resmlp" not in abstract and "fashion_mnist" not in abstract
    # Claims are counted as claims (no statements file here: no count of the course's statements).
    assert "Of 3 claims, 1 held, 1 could not be decided and 1 could not be tested here." in abstract
    assert "could not decide “Claims are text" in abstract
    # The largest effect among the claims that held, in words and numbers.
    assert "“Dropout improves test accuracy” (+2.77 pp [+1.49 pp, +4.05 pp])" in abstract
    assert "changed test accuracy by" not in abstract  # no list of raw comparisons
    assert context["discussion"]["held"][0]["effect"] == "+2.77 pp [+1.49 pp, +4.05 pp]"
    assert any("Claims this scale cannot test" in item for item in context["limitations"])


def test_markdown_lists_and_headings_stand_on_their_own_lines(built):
    md = built["md"]
    # Each verdict of the claims list is its own list item, not run into the one before it.
    items = re.findall(r"^- \*\*(supported|inconclusive|not tested)\*\* \(1\): ", md, re.M)
    assert items == ["supported", "inconclusive", "not tested"]
    assert ".- **" not in md
    # Every heading follows a blank line or its own anchor (a paragraph that ended in a loop
    # ran into the next heading).
    for heading in re.finditer(r"^#{2,4} .*$", md, re.M):
        before = md[: heading.start()]
        assert before.endswith("\n\n") or re.search(r"\n<a id=\"[\w-]+\"></a>\n$", before), (
            heading.group(0)
        )
    # The HTML keeps the same items.
    assert built["html"].count('<li><span class="verdict') == 3


def test_method_lists_each_ablations_settings_from_its_runs(built):
    html = built["html"]
    setup = {s["name"]: s["setup"] for s in built["context"]["sections"]}
    facts = {f["key"]: f["value"] for f in setup["optimizers"]["facts"]}
    assert facts["Learning rate"].startswith("tuned per variant")
    assert "optim.lr over its default × " in setup["optimizers"]["tune"]
    assert facts["Training images"] == "1000"
    assert 'id="setup-ablation-regularization"' in html


def test_references_and_the_reproduce_command(built):
    html, md = built["html"], built["md"]
    for cited in ("Batch renormalization", "Dropout: a simple way", "Fashion-MNIST", "AlgoPerf",
                  "Muon", "SOAP", "Lion", "AdaBN", "DeepOBS", "schedule-free"):  # fmt: skip
        assert cited in html
    assert "snakemake --cores 2 --config scale=smoke" in html
    assert "snakemake --cores 2 --config scale=smoke" in md


def test_effect_column_has_units_and_latex_tables_are_linked(built):
    html = built["html"]
    assert "<th>Unit</th>" in html
    assert "<td>pp</td>" in html
    assert '<a href="tables/regularization.tex">' in html


def test_figure_alt_texts_are_the_captions_in_words(built):
    alts = re.findall(r'<img src="[^"]*"[^>]* alt="([^"]*)"', built["html"])
    assert alts and all(len(a.split()) >= 8 for a in alts)


def test_numbers_cis_and_verdicts_come_from_the_summary(built):
    html = built["html"]
    summary = pd.read_csv(built["scale_dir"] / "tables" / "regularization.csv")
    dropout = summary.set_index("variant").loc["dropout"]
    # Accuracies as percentages with three significant digits, CIs in brackets.
    mean, lo, hi = (100 * dropout[f"test_acc_{k}"] for k in ("mean", "lo", "hi"))
    assert f"{mean:#.3g}%" in html
    assert f"[{lo:#.3g}%, {hi:#.3g}%]" in html
    d, dlo, dhi = (100 * dropout[f"test_acc_{k}"] for k in ("diff", "diff_lo", "diff_hi"))
    assert f"+{d:#.3g} pp" in html and f"[+{dlo:#.3g} pp, +{dhi:#.3g} pp]" in html
    assert dropout["test_acc_verdict"] == "better"
    assert 'class="verdict good">better<' in html
    assert "inconclusive, the interval contains 0" in html
    assert f"p = {report.fmt(dropout['test_acc_p_adjusted'], 2)}" in html
    # The section opens with its answer: the clear comparisons and the largest of them.
    opening = next(s for s in built["context"]["sections"] if s["name"] == "regularization")
    assert opening["opening"].startswith("1 of ") and "the largest is dropout" in opening["opening"]
    assert f"<b>Answer.</b> {opening['opening']}" in html


def test_diverged_runs_are_counted(built):
    html = built["html"]
    assert "3 (diverged 1/3)" in html
    assert "1 of 3 runs diverged." in html
    assert "runs finished, 1 diverged." in html


def test_claims_ledger_links_figures(built):
    html, md, context = built["html"], built["md"], built["context"]
    claim = next(c for c in context["claims"] if c["id"] == "reg_dropout")
    assert claim["effect"] == "+2.77 pp" and claim["ci"] == "[+1.49 pp, +4.05 pp]"
    anchor = claim["figure_ref"]["anchor"]
    assert f'href="#{anchor}"' in html and f'id="{anchor}"' in html
    assert f"]({claim['figure_ref']['rel']})" in md
    assert "second\\_order/iterations\\_vs\\_time (not drawn)" in md
    assert 'class="verdict muted">not tested<' in html


def test_values_from_data_are_escaped(built):
    html, md = built["html"], built["md"]
    for text in (html, md):
        assert XSS_VARIANT not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "<img src=x" not in text
        assert "<script>alert(3)" not in text
        assert "<b>names</b>" not in text
    assert "Hostile &lt;b&gt;names&lt;/b&gt; &amp; co" in html
    assert "<script" not in html  # the report itself runs no scripts either


def test_html_is_self_contained(built):
    html = built["html"]
    srcs = re.findall(r'<img src="([^"]*)"', html)
    assert len(srcs) == 8  # two figures for each of four ablations
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html and "@import" not in html and "url(" not in html


def test_markdown_references_existing_files(built):
    out, md = built["out"], built["md"]
    targets = re.findall(r"\]\(([^)]+)\)", md)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 8
    for target in targets:
        assert not target.startswith(("/", "http")), target
        if target.startswith("#"):  # a link into the appendix: its anchor is in the document
            assert f'<a id="{target[1:]}"></a>' in md, target
        else:
            assert (out / target).is_file(), target
    assert (out / "tables" / "regularization.tex").is_file()
    # Atomic writes leave no temporary files behind.
    assert not [p for p in out.rglob(".*") if p.is_file()]


def test_provenance_has_runs_compute_and_config_hashes(built):
    html, context = built["html"], built["context"]
    prov = context["provenance"]
    runs = pd.read_csv(built["scale_dir"] / "tables" / "runs.csv")
    assert prov["n_runs"] == len(runs)
    assert prov["compute"] == report.duration(runs["wall_s"].sum())
    assert prov["commit"].startswith("unknown")  # the temporary folder is not a repository
    assert any(p["name"] == "pandas" for p in prov["packages"])
    for config_hash in runs["config_hash"].head(3):
        assert config_hash in html


def test_header_is_not_clean_when_runs_came_from_elsewhere(built):
    head = "a" * 40
    ledger = pd.DataFrame(
        {"commit": [head, head, "b" * 40, head], "dirty": [False, False, False, True]}
    )
    state = report.run_commits(ledger, head, False)
    assert state["clean"] is False
    assert state["reasons"] == ["2 of 4 runs came from another commit or a tree with uncommitted "
                                "changes"]  # fmt: skip
    assert {(g["commit"], g["state"], g["n"]) for g in state["groups"]} == {
        ("a" * 12, "clean", 2),
        ("b" * 12, "clean", 1),
        ("a" * 12, "uncommitted changes", 1),
    }
    same = pd.DataFrame({"commit": [head, head], "dirty": [False, False]})
    assert report.run_commits(same, head, False)["clean"] is True
    assert report.run_commits(same, head, True)["clean"] is False  # the report's own tree
    # The synthetic runs record no commit: the header says so instead of "clean".
    html = built["html"]
    header = html[: html.index("</header>")]
    assert "Not reproducible from one clean commit:" in header and "(clean)" not in header
    fingerprints = built["context"]["provenance"]["fingerprints"]
    assert fingerprints and "Runs by hardware fingerprint: " in header
    assert all(f"{f['n']} on {f['fingerprint']}" in header for f in fingerprints)


def test_git_commit_and_dirty_flag(tmp_path):
    """Dirty means a change to the study's inputs (STUDY_INPUTS), named; its outputs and docs do
    not count."""
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    try:
        subprocess.run([*git, "init", "-q"], check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    for name in ("study/train.py", "paper/report.md", "README.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("a")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    state = git_state(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", state["commit"]) and state["dirty"] is False
    # The study's outputs and its prose: a rebuilt paper/, a deleted report, a new note.
    (tmp_path / "paper/report.md").write_text("rebuilt elsewhere")
    (tmp_path / "paper/figure.png").write_text("new")
    (tmp_path / "README.md").unlink()
    assert git_state(tmp_path) == {"commit": state["commit"], "dirty": False, "changed": []}
    # An input: an edited module, and a new ablation file git does not know yet.
    (tmp_path / "study/train.py").write_text("b")
    (tmp_path / "conf/ablation").mkdir(parents=True)
    (tmp_path / "conf/ablation/new.yaml").write_text("title: x")
    changed = git_state(tmp_path)
    assert changed["dirty"] is True
    assert changed["changed"] == ["conf/ablation/new.yaml", "study/train.py"]
    assert git_state(tmp_path, exclude=("conf",))["changed"] == ["study/train.py"]
    # The report names the files in its reason.
    ledger = pd.DataFrame({"commit": [state["commit"]], "dirty": [False]})
    reasons = report.run_commits(ledger, state["commit"], True, changed["changed"])["reasons"]
    assert reasons == ["the report was built from a tree with uncommitted changes "
                       "(conf/ablation/new.yaml, study/train.py)"]  # fmt: skip


def test_runs_by_fingerprint_counts_unknown_for_runs_without_one():
    column = pd.Series(["AMD EPYC | AVX512", "AMD EPYC | AVX512", float("nan"), ""])
    assert report.run_fingerprints(column) == [
        {"fingerprint": "AMD EPYC | AVX512", "n": 2},
        {"fingerprint": "unknown", "n": 2},
    ]


def test_formatting_helpers():
    assert report.pct(0.85123) == "85.1%"
    assert report.diff(0.0123, "test_acc") == "+1.23 pp"
    assert report.diff(-0.5, "test_loss") == "-0.500"
    assert report.value(0.0856, "gap_acc") == "8.56 pp"
    assert report.interval(float("nan"), 1, "test_acc") == ""
    assert report.md_escape("a|b_<i>") == "a\\|b\\_&lt;i&gt;"
    assert report.count(4.0) == "4"
    assert report.duration(7200) == "2.00 h"


def test_missing_runs_table_is_one_clear_error(tmp_path, built):
    with pytest.raises(ReportError, match=r"runs\.csv"):
        build_context(tmp_path, built["ablations"])


def test_cli(built, tmp_path):
    conf = tmp_path / "ablation"
    conf.mkdir()
    (conf / "normalization.yaml").write_text(
        "title: Normalization under shift\n"
        "question: Which normalization is robust?\n"
        "baseline: none\n"
        "seeds: 2\n"
        "variants:\n  none: []\n  batchnorm: [model.norm=batchnorm]\n"
    )
    (conf / "sizes.yaml").write_text(
        "title: Training-set size\n"
        "question: Where does dropout help?\n"
        "baseline: none\n"
        "seeds: 2\n"
        "scales: [full]\n"
        "scales_reason: too costly on a laptop.\n"
        "variants:\n  none: []\n  dropout: [model.dropout=0.3]\n"
    )
    out = tmp_path / "paper"
    argv = ["--scale-dir", str(built["scale_dir"]), "--ablations", str(conf), "--out", str(out)]
    assert report.main([*argv, "--scale", "smoke"]) == 0
    html = (out / "report.html").read_text()
    assert "Normalization under shift" in html and "Regularization</h2>" not in html
    assert (out / "figures" / "normalization" / "test_accuracy.png").is_file()
    # an ablation of another scale gets no section, but the limitations say why it is absent
    assert "Training-set size</h2>" not in html
    assert "Training-set size runs only at the full scale: too costly on a laptop." in html


def test_report_writes_a_run_ledger(built, tmp_path):
    out = tmp_path / "ledger"
    write_report(built["context"], out)
    ledger = pd.read_csv(out / "runs.csv")
    runs = pd.read_csv(built["scale_dir"] / "tables" / "runs.csv")
    assert len(ledger) == len(runs)
    for column in ("ablation", "variant", "seed", "status", "test_acc", "test_loss"):
        pd.testing.assert_series_equal(ledger[column], runs[column])
    assert {"config_hash", "commit", "dirty"} <= set(ledger.columns)


def test_a_smoke_report_never_touches_the_paper(tmp_path):
    """The report rule of any scale but the default writes under results/<scale>/paper/."""
    from study.paths import STUDY_ROOT, report_dir

    assert report_dir("smoke", tmp_path, "paper") == tmp_path / "smoke" / "paper"
    assert report_dir("default", tmp_path, "paper") == Path("paper")
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--config", "scale=smoke", f"results={tmp_path}"],
        cwd=STUDY_ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(STUDY_ROOT)},
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]
    block = dry.stdout[dry.stdout.index("rule report:") :]
    outputs = block[block.index("output:") + 7 : block.index("\n", block.index("output:"))]
    written = [Path(p.strip()) for p in outputs.split(",")]
    assert {p.name for p in written} == {
        "report.html", "report.md", "report.pdf", "runs.csv", "claims.csv", "claims_forest.png"
    }  # fmt: skip
    paper = tmp_path / "smoke" / "paper"
    assert all(paper in p.parents for p in written), written


def test_class_prior_shift_is_tabled_per_variant_and_ratio():
    from study.report.experiments import prior_shift

    rows = [
        dict(ablation="normalization", variant=v, seed=s, shift="prior", severity=None,
             adapted=a, slice=None, accuracy=acc + 0.01 * s, loss=1.0, param=ratio)
        for v, acc in (("batchnorm", 0.8), ("batchrenorm", 0.7))
        for s in range(3) for ratio in (2.0, 10.0) for a in (False, True)
    ]  # fmt: skip
    rows.append(dict(rows[0], shift="blur", param=0.5))  # not a prior row: left out
    table = prior_shift(pd.DataFrame(rows))
    assert [c["label"] for c in table["columns"]] == [
        "ratio 2", "ratio 2, AdaBN", "ratio 10", "ratio 10, AdaBN"]  # fmt: skip
    assert [r["variant"] for r in table["rows"]] == ["batchnorm", "batchrenorm"]
    assert table["rows"][1]["cells"][0]["accuracy"] == "71.0%"  # mean of 70%, 71%, 72%
    assert table["rows"][1]["n"] == 3
    assert prior_shift(None) == {}


def test_second_order_section_labels_extrapolations(tmp_path):
    import json

    from study.report.experiments import second_order

    fit = {"slope": 2.1, "lo": 1.9, "hi": 2.3, "level": 0.95, "points": 4, "intercept": -20.0}
    pred = {"value": 3.0, "lo": 1.0, "hi": 9.0}
    summary = {"target": "within 0.001", "time_basis": "median", "memory_basis": "sizes",
               "families": {"logreg": {
                   "n_params": [20, 90, 170, 330], "fit_n_params": [90, 170, 330],
                   "time_exponent": fit, "memory_exponent": fit,
                   "crossover": {"n": 250.0, "status": "measured", "range": [20, 330],
                                 "bracket": [170, 330]},
                   "hessian_method": ["closed_form"],
                   "hessian_s": [0.0005, 0.001, 0.002, 0.008],
                   "autograd_hessian_s": [0.007, 0.015, 0.03, 0.09],
                   "crossover_with_autograd_hessian": {
                       "n": None, "status": "first_order_faster_everywhere", "range": [20, 330],
                       "bracket": [None, 20]},
                   "extrapolation": {
                       "1e+06": {"extrapolated": True, "s_per_iter": pred, "peak_bytes": pred,
                                 "hessian_bytes_float64": 8e12}}}}}  # fmt: skip
    (tmp_path / "second_order.json").write_text(json.dumps(summary))
    section = second_order(tmp_path)
    family = section["families"][0]
    assert family["time_exponent"] == "2.10 [1.90, 2.30]"
    assert family["fit_sizes"] == "N 90–330"
    assert family["crossover"] == "N ≈ 250 (between the measured N 170 and 330)"
    assert family["autograd_crossover"] == (
        "none in the measured N 20–330: first-order faster at every size (below N 20)"
    )
    assert family["hessian"] == (
        "closed form (N 20: 0.500 ms vs 7.00 ms by autograd; N 330: 8.00 ms vs 90.0 ms by autograd)"
    )
    assert family["extrapolations"][0]["label"] == "extrapolation"
    assert family["extrapolations"][0]["hessian_gb"] == "8000"
    assert second_order(tmp_path / "absent") is None
