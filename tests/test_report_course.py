"""The report's parts beyond the ablations: the optimization pathologies (answer, figure, table),
the course's statements (coverage, the ledger by the notes' sections, the untested statements),
the study-wide history of the ledger, the regimes side by side and what a rerun gives. Each
appears in the HTML and the Markdown when its data exists, and is absent or says so when not."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml
from PIL import Image
from test_figures import build_study

from study.analysis.ledger.statements import coverage, load_statements, untested_by_section
from study.paths import STUDY_ROOT
from study.provenance import CROSS_MACHINE_SPREAD, CROSS_MACHINE_TOLERANCE
from study.report import build_context, write_report
from study.report.course import ledger_by_section, pathologies_sentence
from study.report.regimes import add_regimes

CONF = STUDY_ROOT / "conf"
HISTORY = {
    "when": "2026-11-30",
    "change": "Every margin of the optimizer claims widened to 1 pp.",
    "reason": "The first runs showed a seed spread twice the pilot spread.",
    "verdict_before": "3 inconclusive",
}
PATHOLOGIES = {
    "cpu_seconds": 4.2,
    "iteration_exponents": {
        "gd/rotated": {"slope": 0.987, "lo": 0.912, "hi": 1.06},
        "nesterov/rotated": {"slope": 0.512, "lo": 0.431, "hi": 0.593},
    },
    "noise_exponent": {"slope": -0.968, "lo": -1.03, "hi": -0.905},
}


def _claims_with_history(folder):
    """conf/claims.yaml with a study-wide history, and the statements file beside it."""
    data = yaml.safe_load((CONF / "claims.yaml").read_text())
    data["history"] = [HISTORY]
    (folder / "claims.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    shutil.copyfile(CONF / "course_statements.yaml", folder / "course_statements.yaml")
    return folder / "claims.yaml"


def _plant_pathologies(scale_dir):
    (scale_dir / "pathologies.json").write_text(json.dumps(PATHOLOGIES))
    png = scale_dir / "figures" / "pathologies" / "pathologies.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (400, 100), "white").save(png)


def _render(root, scale_dir, ablations, claims=None, scale="smoke", regimes=False):
    context = build_context(scale_dir, ablations, claims, scale=scale, repo=root)
    if regimes:
        add_regimes(context, root)
    out = root / f"paper-{scale}-{bool(claims)}"
    write_report(context, out)
    return context, out, (out / "report.html").read_text(), (out / "report.md").read_text()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    scale_dir, ablations = build_study(root)
    return root, scale_dir, ablations


@pytest.fixture(scope="module")
def bare(study):
    """The report without pathologies, statements, ledger history or another regime."""
    root, scale_dir, ablations = study
    return _render(root, scale_dir, ablations)


@pytest.fixture(scope="module")
def full(study):
    """The report with all of them (a default-scale report beside a committed full one)."""
    root, scale_dir, ablations = study
    claims = _claims_with_history(root)
    committed = root / "paper" / "full" / "claims.csv"
    committed.parent.mkdir(parents=True)
    ids = [c["id"] for c in yaml.safe_load((CONF / "claims.yaml").read_text())["claims"]]
    committed.write_text(
        "id,claim,verdict\n" + f"{ids[0]},first,supported\n" + f"{ids[1]},second,contradicted\n"
    )
    _plant_pathologies(scale_dir)
    try:
        return _render(root, scale_dir, ablations, claims, scale="default", regimes=True)
    finally:
        (scale_dir / "pathologies.json").unlink()
        shutil.rmtree(scale_dir / "figures" / "pathologies")


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i : text.index(end, i)]


def test_without_their_data_the_new_parts_are_absent_or_say_so(bare):
    context, out, html, md = bare
    assert context["pathologies"] is None and context["pathologies_figure"] is None
    assert context["statements"] is None and context["ledger_history"] == []
    for text in (html, md):
        assert "Optimization pathologies" not in text.split("Appendix")[0]
        assert "testable statements" not in text
        assert "No statements file (conf/course_statements.yaml) was given" in text
        assert "records no study-wide change after results had been seen" in text
        assert "has no counterpart regime" in text
    assert not (out / "figures" / "pathologies").exists()


def test_the_pathologies_answer_figure_and_table_are_shown(full):
    context, out, html, md = full
    sentence = context["pathologies_sentence"]
    assert "gradient descent 0.987 [0.912, 1.06]" in sentence
    assert "Nesterov momentum 0.512 [0.431, 0.593]" in sentence
    assert "exponent -0.968 [-1.03, -0.905]" in sentence
    assert "heavy-ball" not in sentence  # a fit that was not made is not named
    figure = context["pathologies_figure"]
    assert (out / "figures" / "pathologies" / "pathologies.png").is_file()
    main_html = html[: html.index('<section id="appendix">')]
    assert '<section id="pathologies">' in main_html and sentence in main_html
    assert f"<b>Figure {figure['number']}.</b> Optimization pathologies" in main_html
    assert f"]({figure['rel']})" in md
    table = _between(html, 'id="pathologies-table"', "</table>")
    assert "iterations vs κ, gd/rotated" in table and "minibatch variance vs B" in table
    assert "| iterations vs κ, nesterov/rotated | 0.512 \\[0.431, 0.593\\] |" in md


def test_the_claims_section_states_the_notes_coverage(full):
    context, _, html, md = full
    counts = coverage(load_statements(CONF / "course_statements.yaml"))
    assert context["statements"]["coverage"] == counts
    said = (
        f"The course notes make {counts['statements']} testable statements: {counts['tested']} "
        "have a verdict"
    )
    claims_html = _between(html, '<section id="claims">', "</section>")
    assert said in claims_html and f"{counts['untested']} are untested" in claims_html
    assert said in _between(md, "## Claims and verdicts", "\n## ")


def test_the_untested_statements_are_listed_by_section_as_coverage_counts(full):
    context, _, html, md = full
    data = load_statements(CONF / "course_statements.yaml")
    expected = untested_by_section(data)
    appendix = _between(html, 'id="untested"', 'id="regimes"')
    listed = re.findall(r'<li id="statement-([^"]+)">', appendix)
    assert len(listed) == coverage(data)["untested"] == sum(len(v) for v in expected.values())
    assert listed == [s["id"] for rows in expected.values() for s in rows]
    first = next(iter(expected.values()))[0]
    assert f"course notes lines {first['lecture_lines']}" in appendix
    md_appendix = _between(md, "### G.", "### H.")
    assert md_appendix.count("Untested: ") == len(listed)


def test_the_full_ledger_is_grouped_by_the_notes_sections_with_lecture_lines(full):
    context, _, html, md = full
    groups = context["ledger_groups"]
    titles = [g["title"] for g in groups]
    assert "Regularization" in titles and "Optimization" in titles
    assert sum(len(g["claims"]) for g in groups) == len(context["claims"])
    ledger = _between(html, 'id="ledger-full"', 'id="second-order-tables"')
    positions = [ledger.index(f'<th colspan="10">{t}</th>') for t in titles]
    assert positions == sorted(positions)  # the notes' order
    cited = next(c for c in context["claims"] if c["lecture_lines"])
    assert f"course notes lines {cited['lecture_lines']}" in ledger
    assert f"**{titles[0]}**" in _between(md, "### C.", "### D.")


def test_a_claim_no_statement_cites_is_grouped_apart():
    claims = [{"id": "a"}, {"id": "b"}]
    data = {"statements": [{"section": "schedules", "claims": ["a"]}]}
    groups = ledger_by_section(claims, data)
    assert [(g["section"], [c["id"] for c in g["claims"]]) for g in groups] == [
        ("schedules", ["a"]),
        ("", ["b"]),
    ]
    assert ledger_by_section(claims, None)[0]["claims"] == claims


def test_the_ledger_history_is_shown_beside_the_claims_histories(full):
    _, _, html, md = full
    for text in (html, md):
        assert f"{HISTORY['when']}: {HISTORY['change']} Why: {HISTORY['reason']}" in text
        assert "Verdicts before: 3 inconclusive." in text


def test_the_regimes_table_is_in_the_appendix_and_its_sentence_in_the_limitations(full):
    context, _, html, md = full
    assert context["regimes"]["columns"] == ["default", "full"]
    sentence = context["regimes_summary"]
    assert "Against the committed full-scale report" in sentence
    assert sentence in _between(html, '<section id="limitations">', "</section>")
    table = _between(html, 'id="regimes"', "</table>")
    assert "<th>full scale</th>" in table and "contradicted" in table
    assert "| default scale | full scale | Outcome |" in md


def test_a_default_report_without_a_full_one_says_so_once(study):
    root, scale_dir, ablations = study
    context = build_context(scale_dir, ablations, scale="default", repo=root / "nowhere")
    add_regimes(context, root / "nowhere")
    assert context["regimes"] is None
    assert "No full-scale report is committed yet" in context["regimes_summary"]


def test_the_rerun_promise_replaces_the_pure_function_wording(bare):
    context, _, html, md = bare
    promise = context["rerun_promise"]
    acc = CROSS_MACHINE_TOLERANCE["test_acc"][1] * 100
    assert "same hardware fingerprint" in promise and f"within {acc:g} pp" in promise
    assert f"largest {CROSS_MACHINE_SPREAD['largest_test_acc_pp']:.2f} pp" in promise
    for text in (html, md):
        assert "pure function" not in text
        assert promise in text
    assert promise in _between(html, '<section id="setup">', "</section>")


def test_no_pathologies_no_sentence():
    assert pathologies_sentence(None) == ""
    assert pathologies_sentence({"exponents": []}) == ""


def test_undecided_claims_are_listed_in_the_appendix_and_counted_in_the_discussion(tmp_path):
    scale_dir, ablations = build_study(tmp_path)
    (scale_dir / "tables" / "claims.csv").write_text(
        "id,claim,ablation,metric,unit,test,margin,effect,lo,hi,verdict\n"
        "momentum_wins,Momentum beats SGD.,optimizers,test_acc,pp,difference,0.5,0.3,-1.2,1.8,"
        "inconclusive\n"
    )
    _, _, html, md = _render(tmp_path, scale_dir, ablations)
    discussion = _between(html, '<section id="discussion">', "</section>")
    assert "Undecided (1)." in discussion and "momentum_wins" not in discussion
    assert "momentum_wins" in _between(html, 'id="undecided"', "</ul>")
    assert "**Undecided (1).**" in md
    assert "(`momentum_wins`)" in _between(md, '<a id="undecided"></a>', "###")
