"""The per-ablation summaries for reading: Markdown and LaTeX tables of formatted cells.

The .csv summary has every number; these show the mean [95% CI] of the main metrics and each
variant's difference to the baseline with its verdict (columns in docs/architecture.md).
"""

from __future__ import annotations

import pandas as pd

from study.analysis.metrics import DIFF_METRICS
from study.analysis.stats import fmt

# Columns of the human-readable tables (.md, .tex); the .csv has everything.
DISPLAY_METRICS = ["test_acc", "test_loss", "gap_acc", "epochs_run", "s_per_epoch"]


def _seeds_cell(row) -> str:
    n = int(row["n_seeds"])
    notes = []
    if row["n_diverged"]:
        notes.append(f"diverged {int(row['n_diverged'])}/{n}")
    if row["n_stopped_early"]:
        notes.append(f"stopped early {int(row['n_stopped_early'])}/{n}")
    return str(n) + (f" ({', '.join(notes)})" if notes else "")


def _ci_cell(mean, lo, hi, signed: bool = False) -> str:
    text = fmt(mean)
    if signed and not pd.isna(mean) and mean > 0:
        text = "+" + text
    if not (pd.isna(lo) or pd.isna(hi)):
        text += f" [{fmt(lo)}, {fmt(hi)}]"
    return text


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as formatted text cells: mean [95% CI], and differences with their verdict."""
    rows = []
    for _, r in summary.iterrows():
        reference = r.get("reference", "" if r["is_baseline"] else "baseline")
        reference = "" if pd.isna(reference) else str(reference)
        row = {
            "variant": r["variant"] + (" (baseline)" if r["is_baseline"] else ""),
            "compared with": reference,
            "seeds": _seeds_cell(r),
        }
        for m in DISPLAY_METRICS:
            row[m] = _ci_cell(r[f"{m}_mean"], r[f"{m}_lo"], r[f"{m}_hi"])
        for m in DIFF_METRICS:
            if not reference:  # in no declared comparison: no difference is reported
                row[f"Δ {m}"] = ""
                continue
            cell = _ci_cell(r[f"{m}_diff"], r[f"{m}_diff_lo"], r[f"{m}_diff_hi"], signed=True)
            if not pd.isna(r[f"{m}_p_adjusted"]):
                cell += f", p_adj {fmt(r[f'{m}_p_adjusted'], 2)}"
            if not pd.isna(r.get(f"{m}_mde")):  # what these seeds detect with 80% power
                cell += f", detectable {fmt(r[f'{m}_mde'])}"
            row[f"Δ {m}"] = f"{cell}, {r[f'{m}_verdict']}"
            claim = r.get(f"{m}_claim")  # judged by the ledger (ledger.table_verdicts)
            if isinstance(claim, str) and claim:
                row[f"Δ {m}"] += f" (claim {claim}, p adjusted over the ledger)"
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame) -> str:
    try:
        return df.to_markdown(index=False) + "\n"
    except ImportError:  # tabulate is optional; a plain pipe table reads the same
        cells = [[str(c) for c in df.columns]] + [[str(v) for v in r] for r in df.to_numpy()]
        lines = ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells]
        lines.insert(1, "|" + "|".join("---" for _ in df.columns) + "|")
        return "\n".join(lines) + "\n"


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))
    return out.replace("Δ", r"$\Delta$")


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs ``tabular`` (no float environment, so the report can place it with \\input)."""
    escaped = df.map(tex_escape)
    escaped.columns = [tex_escape(c) for c in df.columns]
    styler = escaped.style.hide(axis="index")
    return styler.to_latex(hrules=True, column_format="l" * len(df.columns))
