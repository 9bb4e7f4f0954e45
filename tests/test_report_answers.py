"""The report's generated sentences agree with its numbers: each section opens with an answer whose
numbers are in its own table; equivalences never read as better or worse; the Method prints the
seeds and tuned values as used and the deviations from the cited papers (each naming code that
exists); the header says confirmatory only on a matching pre-registration record; and the
main text fits 12 PDF pages."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from test_figures import build_study

from study.figures import make_figures
from study.paths import STUDY_ROOT
from study.report import build_context, write_report
from study.report.answers import interaction_sentence, undecided_reason
from study.report.context import study_status
from study.report.method import (
    chosen_values,
    deviations,
    method_line,
    overrides_as_used,
    seeds_used,
)

NUMBER = re.compile(r"[+\-−]?\d[\d,]*(?:\.\d+)?\s?(?:pp|%)")


def _table_of(html: str, ablation: str) -> str:
    start = html.index(f'<table class="results" data-ablation="{ablation}">')
    return html[start : html.index("</table>", start)]


def numbers_missing_from_table(opening: str, table: str) -> list[str]:
    """The numbers (accuracies, differences) an opening names that its table does not show."""
    return [n for n in NUMBER.findall(opening) if n not in table]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("answers")
    scale_dir, ablations = build_study(root)
    for ablation in ablations.values():
        make_figures(scale_dir, ablation, ["test_accuracy"])
    context = build_context(scale_dir, ablations, scale="smoke", repo=root)
    out = root / "paper"
    write_report(context, out)
    return {"root": root, "scale_dir": scale_dir, "ablations": ablations, "context": context,
            "out": out, "html": (out / "report.html").read_text()}  # fmt: skip


def test_each_opening_names_numbers_that_its_table_contains(built):
    html = built["html"]
    checked = 0
    for section in built["context"]["sections"]:
        if not section["opening"]:
            continue
        named = NUMBER.findall(section["opening"])
        assert named, section["opening"]  # an answer rests on a number
        assert not numbers_missing_from_table(section["opening"], _table_of(html, section["name"]))
        checked += 1
    assert checked >= 3
    # A planted contradiction is caught: a number the table does not hold.
    regularization = _table_of(html, "regularization")
    assert numbers_missing_from_table("the largest is l1, +9.99 pp", regularization) == ["+9.99 pp"]


def test_a_supported_equivalence_never_reads_better_or_worse(built, tmp_path):
    scale_dir = built["scale_dir"]
    summary = (scale_dir / "tables" / "optimizers.csv").read_text().splitlines()
    header = summary[0].split(",")
    assert "adam" in "\n".join(summary)
    claims = tmp_path / "claims.csv"
    claims.write_text(
        "id,claim,ablation,metric,unit,test,margin,effect,lo,hi,verdict\n"
        "adam_matches,Adam matches SGD.,optimizers,test_acc,pp,equivalence,1.0,-0.3,-0.42,-0.17,"
        "supported\n"
    )
    import pandas as pd

    table = pd.read_csv(scale_dir / "tables" / "optimizers.csv")
    row = table["variant"] == "adam"
    table["test_acc_claim"] = ""
    table.loc[row, ["test_acc_verdict", "test_acc_claim"]] = ["better", "adam_matches"]
    copy = tmp_path / "results" / "smoke"
    import shutil

    shutil.copytree(scale_dir, copy)
    table.to_csv(copy / "tables" / "optimizers.csv", index=False)
    shutil.copy(claims, copy / "tables" / "claims.csv")
    context = build_context(copy, built["ablations"], scale="smoke", repo=built["root"])
    section = next(s for s in context["sections"] if s["name"] == "optimizers")
    adam = next(r for r in section["rows"] if r["variant"] == "adam")
    assert adam["test_acc_verdict"] == "equivalent within ±1.00 pp" and header
    assert "adam" not in [e["variant"] for e in section["better"] + section["worse"]]
    assert [e["variant"] for e in section["equivalent"]] == ["adam"]
    assert "Equivalent to their reference within the claim's margin: adam" in section["opening"]


def test_seeds_as_run_name_the_variants_that_ran_more():
    rows = [{"variant": v, "n": n} for v, n in (("none", 3), ("l2", 12), ("l1", 3), ("cut", 12))]
    assert seeds_used(rows)["text"] == "3 (12: l2, cut)"
    assert seeds_used([{"variant": "a", "n": 4}])["text"] == "4"


def test_chosen_values_come_from_the_selection_with_their_grid_edge(built, tmp_path):
    ablation = built["ablations"]["optimizers"]
    selection = tmp_path / "selection" / "optimizers.json"
    selection.parent.mkdir()
    selection.write_text(json.dumps({
        "sgd": {"key": "optim.lr", "chosen": 0.1, "grid": [0.003, 0.1, 3.0]},
        "adam": {"key": "optim.lr", "chosen": 3.0, "grid": [0.003, 0.1, 3.0]},
        "lion": {"key": "optim.lr", "chosen": 0.1, "grid": [0.1, 1.0], "at_edge": True},
    }))  # fmt: skip
    chosen = {c["variant"]: c for c in chosen_values(tmp_path, ablation)}
    assert chosen["sgd"]["chosen"] == "0.1" and not chosen["sgd"]["at_edge"]
    assert chosen["adam"]["at_edge"]  # computed from the grid: the largest point
    assert chosen["lion"]["at_edge"]  # the selection's own flag
    assert chosen["sgd"]["grid"] == "0.003, 0.1, 3"
    section = {"seeds_used": {"text": "3"}, "n_variants": 2, "baseline": "sgd", "seeds": 3}
    assert "2 of 3 chosen values on the edge" in method_line(
        {**section, "chosen": list(chosen.values())}
    )
    inside = [{"variant": "aug", "key": "augment.shift", "at_edge": False, "range_end": True}]
    assert method_line({**section, "chosen": inside}).endswith(
        "(every chosen value inside its grid; aug's augment.shift at 0, the end of its range)."
    )
    # The Method lists the value used, not the ablation file's value (the middle of the grid).
    variants = [{"variant": "adam", "overrides": "optim=adam optim.lr=0.1"},
                {"variant": "sgd", "overrides": "(the common settings)"},
                {"variant": "none", "overrides": "optim.lr=0.1"}]  # fmt: skip
    used = {
        v["variant"]: v["overrides"] for v in overrides_as_used(variants, list(chosen.values()))
    }
    assert used == {"adam": "optim=adam optim.lr=3 (tuned)", "sgd": "optim.lr=0.1 (tuned)",
                    "none": "optim.lr=0.1"}  # fmt: skip


def test_each_deviation_names_code_that_exists(tmp_path):
    entries = deviations()
    techniques = {d["technique"] for d in entries}
    assert {"Inverse square-root schedule", "Stochastic depth", "Cutout",
            "Batch Renormalization"} <= techniques  # fmt: skip
    for d in entries:
        path = STUDY_ROOT / d["file"]
        assert path.is_file(), d["file"]
        assert d["symbol"] in path.read_text(), (d["file"], d["symbol"])
        assert d["departure"] and d["reason"]
    # A planted entry whose code is gone is caught by the same check.
    gone = tmp_path / "deviations.yaml"
    gone.write_text("deviations:\n  - {technique: X, file: study/components/nothing.py, "
                    "symbol: f, departure: d, reason: r}\n")  # fmt: skip
    assert not (STUDY_ROOT / deviations(gone)[0]["file"]).is_file()


def test_history_marks_a_claim_and_the_rule_drops_before_the_data(built, tmp_path):
    # the committed claims without any history, then one change planted on dropout_test_acc
    data = yaml.safe_load((STUDY_ROOT / "conf" / "claims.yaml").read_text())
    data.pop("history", None)
    for c in data["claims"]:
        c.pop("history", None)
        if c["id"] == "dropout_test_acc":
            c["history"] = [
                {
                    "when": "2026-11-30",
                    "change": "margin 0.3 pp -> 0.5 pp",
                    "reason": "the course's wording",
                    "verdict_before": "inconclusive",
                }
            ]
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump(data, sort_keys=False))
    context = build_context(built["scale_dir"], built["ablations"], claims_file, scale="smoke",
                            repo=built["root"])  # fmt: skip
    marked = [c["id"] for c in context["claims"] if c["changed_after_result"]]
    assert marked == ["dropout_test_acc"]
    assert "declared before the data" not in context["rule"]
    out = tmp_path / "paper"
    write_report(context, out)
    html = (out / "report.html").read_text()
    assert 'title="changed after a result was seen">†' in html
    # the change and its reason read as sentences (a period is added where the entry has none)
    assert "margin 0.3 pp -&gt; 0.5 pp. Why: the course&#39;s wording." in html
    assert "Verdict before: inconclusive." in html


def test_the_header_is_confirmatory_only_on_a_matching_record(built):
    # a reason of the whole study is said once, not as the inputs of a claim called "*"
    whole = "exploratory (no claims file or no ablations)"
    assert built["context"]["status"]["text"] == whole
    assert built["context"]["status"]["mismatched"] == []
    assert f'id="study-status">Scale: <b>smoke</b> · <b>{whole}</b>' in built["html"]
    one_file = [
        (f"claim_{i}", "conf/scale/default.yaml changed after the record") for i in range(9)
    ]
    grouped = study_status({"commit": "a" * 40, "mismatched": [*one_file, ("c", "seeds")]})
    assert grouped["mismatched"] == [
        {"id": "9 claims", "reason": "conf/scale/default.yaml changed after the record",
         "group": True},
        {"id": "c", "reason": "seeds"},
    ]  # fmt: skip
    other_scale = study_status({"commit": None, "mismatched": [("*", "the record is of X")]})
    assert other_scale == {"confirmatory": False, "text": "exploratory (the record is of X)",
                           "mismatched": []}  # fmt: skip
    assert study_status({"commit": "a" * 40, "mismatched": []})["text"] == (
        "confirmatory (pre-registered at aaaaaaaaaaaa)"
    )
    mismatched = study_status({"commit": "a" * 40, "mismatched": [("reg_gap", "margin changed")]})
    assert mismatched["text"] == "exploratory"
    assert mismatched["mismatched"] == [{"id": "reg_gap", "reason": "margin changed"}]
    assert study_status({"commit": None, "mismatched": []})["text"] == "exploratory"


def test_an_undecided_claim_gives_the_ledgers_reason_not_a_wide_interval():
    # The ledger's detail of a claim whose guard failed (study.analysis.ledger.evaluate).
    detail = ("none - l2: -2.68 pp; guard test_acc: -0.62 pp [-1.17, -0.07], 3 paired seeds "
              "(margin 0.5 pp), may be lost beyond the margin")  # fmt: skip
    guarded = {"detail": detail, "ci": "[-2.90 pp, -2.47 pp]", "margin": "±1.00 pp",
               "lo_raw": -2.9, "hi_raw": -2.5, "p_adjusted": "0.0007"}  # fmt: skip
    reason = undecided_reason(guarded)
    assert reason.startswith("the claimed effect is clear, but its guard test_acc: -0.62 pp")
    assert "wide" not in reason
    wide = {"detail": "", "ci": "[-0.9 pp, +0.9 pp]", "margin": "±0.50 pp", "lo_raw": -0.9,
            "hi_raw": 0.9, "p_adjusted": "0.9"}  # fmt: skip
    assert "contains 0 and reaches past the margin ±0.50 pp" in undecided_reason(wide)


def test_the_interaction_sentence_follows_its_claims_verdict():
    claim = {"id": "schedule_depends", "kind": "interaction", "ablation": "grid",
             "test": "difference", "effect": "+1.2 pp", "ci": "[+0.4 pp, +2.0 pp]",
             "verdict": "supported"}  # fmt: skip
    assert interaction_sentence([claim], "grid").startswith("The best schedule does depend")
    none = {**claim, "verdict": "no meaningful effect"}
    assert interaction_sentence([none], "grid").startswith("The best schedule does not depend")
    unsure = {**claim, "verdict": "inconclusive"}
    assert interaction_sentence([unsure], "grid").startswith("The study cannot tell")
    assert interaction_sentence([claim], "optimizers") == ""


@pytest.mark.slow
def test_the_main_text_fits_twelve_pdf_pages(built):
    pytest.importorskip("weasyprint")
    from study.report.render import main_text_pages

    main, total = main_text_pages(built["html"], built["out"])
    assert 0 < main <= 12 and main < total, (main, total)


def test_a_report_of_some_ablations_counts_and_lists_only_their_runs(built, tmp_path):
    """runs.csv of the scale holds every ablation's runs; a study of one reports that one."""
    import pandas as pd

    one = {"optimizers": built["ablations"]["optimizers"]}
    context = build_context(built["scale_dir"], one, scale="smoke", repo=built["root"])
    every = pd.read_csv(built["scale_dir"] / "tables" / "runs.csv")
    own = every[every["ablation"] == "optimizers"]
    assert len(own) < len(every)
    assert context["provenance"]["n_runs"] == len(own)
    assert {r["ablation"] for r in context["runs"]} == {"optimizers"}
    assert set(context["ledger"]["ablation"]) == {"optimizers"}
    assert [s["name"] for s in context["sections"]] == ["optimizers"]
    assert "over 1 ablation," in " ".join(context["abstract"])
    write_report(context, tmp_path / "paper")
    assert set(pd.read_csv(tmp_path / "paper" / "runs.csv")["ablation"]) == {"optimizers"}


def _runs(sizes_by_ablation: dict[str, list[int]], epochs: list[int]):
    import pandas as pd

    rows = [{"ablation": a, "config.data.n_train": n, "config.data.name": "fashion_mnist",
             "config.model.name": "resmlp"} for a, sizes in sizes_by_ablation.items()
            for n in sizes]  # fmt: skip
    runs = pd.DataFrame(rows)
    runs["config.train.epochs"] = [epochs[i % len(epochs)] for i in range(len(runs))]
    return runs


def test_the_setting_is_a_phrase_a_person_writes_from_the_runs():
    from study.report.setting import setting

    # Most runs use 10,000 images; the overfitting ablation also varies the size.
    runs = _runs({"regularization": [10000] * 6, "overfitting": [10000] * 3 + [2500] * 2},
                 epochs=[10, 3, 8, 15])  # fmt: skip
    assert setting(runs)["text"] == (
        "residual MLPs on 10,000 Fashion-MNIST training images (2,500 in the data-size "
        "comparison) for 3 to 15 epochs"
    )
    # The size most runs used leads, whichever it is; a size only one ablation uses is named by it.
    other = _runs({"regularization": [2500] * 6, "shift": [10000] * 2}, epochs=[5])
    assert setting(other)["text"] == (
        "residual MLPs on 2,500 Fashion-MNIST training images (10,000 in shift) for 5 epochs"
    )
    assert setting(other)["images"] == "2,500 training images (10,000 in shift)"
    assert setting(other.iloc[:0])["text"] == ""


def test_the_largest_effects_are_those_of_claims_that_held():
    from study.report.answers import largest_effects, short_name

    def claim(cid, effect, verdict, test="difference", unit="pp"):
        return {"id": cid, "claim": f"{cid}: measured so.", "effect_raw": effect,
                "verdict": verdict, "test": test, "unit": unit}  # fmt: skip

    claims = [
        claim("held_small", 0.7, "supported"),
        claim("contradicted_large", -6.9, "contradicted"),  # larger, but not a finding that held
        claim("held_large", 32.2, "supported"),
        claim("equivalent", 5.0, "supported", test="equivalence"),
        claim("in_nats", 9.0, "supported", unit="loss"),
        claim("held_middle", 2.75, "supported"),
        claim("held_fourth", 1.9, "supported"),
    ]
    largest = [c["id"] for c in largest_effects(claims)]
    assert largest == ["held_large", "held_middle", "held_fourth"]
    assert short_name(claims[0]) == "held_small"  # up to the colon
    # A planted contradiction would be caught: the old rule took every decided claim.
    assert "contradicted_large" not in [c["id"] for c in largest_effects(claims, n=7)]


def test_the_discussion_says_the_regime_once_not_in_each_reason():
    from study.report.answers import disagreements

    regime = "residual MLPs on 10,000 Fashion-MNIST training images for 3 to 15 epochs"
    claims = [{"id": f"c{i}", "claim": "A claim.", "verdict": "no meaningful effect",
               "test": "difference", "effect": "+0.1 pp", "ci": "[-0.2 pp, +0.4 pp]",
               "margin": "±1.00 pp", "metric": "test_acc", "unit": "pp", "seeds": "3",
               "mde": "0.4 pp", "mde_raw": 0.4, "margin_raw": 1.0} for i in range(3)]  # fmt: skip
    out = disagreements(claims, regime)
    assert out["regime"] == regime
    assert len(out["disagree"]) == 3
    assert all(regime not in c["reason"] for c in out["disagree"])
    assert out["disagree"][0]["reason"] == (
        "measured as test accuracy in accuracy points; 3 seeds; 80% power to detect 0.4 pp"
    )


def test_the_claims_forest_is_drawn_a_page_high_in_two_columns_with_every_label():
    import matplotlib.pyplot as plt
    import pandas as pd

    from study.figures.forest import draw_ledger_forest, ledger_rows

    units = ["pp"] * 22 + ["fraction"] * 5 + ["loss"] * 9 + ["epochs"] * 2 + ["x"] * 10
    units += ["exponent"] * 9
    ids = [f"claim_{i}_of_the_ledger_with_a_long_name" if i == 3 else f"claim_{i}"
           for i in range(len(units))]  # fmt: skip
    ledger = pd.DataFrame({"id": ids, "unit": units, "effect": 0.5, "lo": 0.2, "hi": 0.8,
                           "margin": 1.0, "verdict": "supported"})  # fmt: skip
    fig = draw_ledger_forest(ledger_rows(ledger))
    width, height = fig.get_size_inches()
    # Drawn at about its print size (a text width, under a page), so its fonts print as set.
    assert width <= 7.0 and height <= 9.5, (width, height)
    columns = {round(ax.get_position().x0, 2) for ax in fig.axes}
    assert len(fig.axes) == 6 and len(columns) == 2
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(i.replace("ledger_with", "ledger_\nwith") for i in ids)
    # The legend lies below every panel, over none of them.
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert all(legend.y1 <= ax.get_window_extent().y0 + 1 for ax in fig.axes)
    plt.close(fig)


def test_the_shift_definitions_name_the_variants_scored_under_shift():
    import pandas as pd

    from study.report.experiments import shift_definitions

    rows = [("normalization", v, s) for v in ("batchnorm", "layernorm") for s in (0, 1)]
    shift = pd.DataFrame(rows, columns=["ablation", "variant", "seed"]).assign(
        shift="blur", severity=1.0, param=0.5
    )
    assert shift_definitions(shift)["scored"] == "normalization: batchnorm, layernorm"
    assert shift_definitions(None)["scored"] == ""
