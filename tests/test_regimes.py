"""The default report beside a committed full-scale report: each claim's verdict in each regime,
and which carry over, change, or are tested in one regime only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from study.report.regimes import add_regimes, markdown_table, outcome

ROOT = Path(__file__).resolve().parent.parent


def default_context() -> dict:
    claims = pd.read_csv(ROOT / "paper/claims.csv")
    return {"scale": "default", "claims": claims.to_dict("records"), "limitations": []}


def test_without_a_full_report_the_default_report_says_so_in_one_sentence(tmp_path):
    context = default_context()
    add_regimes(context, tmp_path)
    assert context["regimes"] is None
    assert context["limitations"] == [
        "No full-scale report is committed yet (paper/full/claims.csv does not exist), so every "
        "verdict here is the default regime's alone."
    ]


def test_a_committed_full_report_puts_each_verdict_beside_the_default_one(tmp_path):
    (tmp_path / "paper/full").mkdir(parents=True)
    full = pd.read_csv(ROOT / "paper/claims.csv")
    changed, dropped = full["id"].iloc[0], full["id"].iloc[1]
    was = full.loc[full["id"] == changed, "verdict"].item()
    full.loc[full["id"] == changed, "verdict"] = (
        "contradicted" if was != "contradicted" else "supported"
    )
    full.loc[full["id"] == dropped, "verdict"] = "not tested"
    full = pd.concat(
        [full, pd.DataFrame([{"id": "cnn_only", "claim": "x", "verdict": "supported"}])]
    )
    full.to_csv(tmp_path / "paper/full/claims.csv", index=False)
    context = default_context()
    add_regimes(context, tmp_path)
    rows = {r["id"]: r for r in context["regimes"]["rows"]}
    assert rows[changed]["outcome"] == "changes" and rows[changed]["default"] == was
    assert rows[dropped]["outcome"] == "tested in one regime only"
    assert rows["cnn_only"]["default"] == "not tested" and rows["cnn_only"]["full"] == "supported"
    assert rows["cnn_only"]["outcome"] == "tested in one regime only"
    default = pd.read_csv(ROOT / "paper/claims.csv")
    tested = (~default["verdict"].isin(["not tested", "not evaluated"])).sum()
    counts = context["regimes"]["counts"]
    assert counts["changes"] == 1 and counts["carries over"] == tested - 2
    assert counts["tested in one regime only"] == 2
    assert context["limitations"][-1].startswith("Against the committed full-scale report")
    assert f"| {changed} | {was} | " in markdown_table(context["regimes"])


def test_outcomes():
    assert outcome("supported", "supported") == "carries over"
    assert outcome("supported", "inconclusive") == "changes"
    assert outcome("not tested", "supported") == "tested in one regime only"
    assert outcome("", "not tested") == "tested in neither"


def test_a_smoke_report_has_no_other_regime(tmp_path):
    shutil.copy(ROOT / "paper/claims.csv", tmp_path / "claims.csv")
    context = {"scale": "smoke", "claims": [], "limitations": []}
    add_regimes(context, tmp_path)
    assert context["regimes"] is None and context["limitations"] == []
