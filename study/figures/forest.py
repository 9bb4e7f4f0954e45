"""Forest plots: every effect with its 95% interval against the margin that makes it matter,
coloured by its verdict under the study's one rule (study.analysis.ledger.rule).

Two users: the claims ledger (one row per claim, one panel per unit, since pp, nats and ratios
share no axis; written next to the report as figures/claims_forest.png) and each ablation (its
``forest`` figure: every variant minus the baseline, one panel per compared metric).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from study.analysis.ledger.rule import TABLE_MARGINS, TABLE_WORDS, UNITS
from study.analysis.metrics import DIFF_METRICS
from study.figures.common import Context, _require, _save_figure, _style, figure

# Okabe & Ito's colour-blind-safe palette, with a marker per verdict so that print in grey works.
VERDICT_STYLE = {
    "supported": ("#009E73", "o"),
    "contradicted": ("#D55E00", "X"),
    "no meaningful effect": ("#0072B2", "s"),
    "inconclusive": ("#7f7f7f", "D"),
    "not tested": ("#c7c7c7", "."),
}
_FROM_TABLE = {word: verdict for verdict, word in TABLE_WORDS.items()}
UNIT_LABELS = {
    "pp": "effect (accuracy points)",
    "loss": "effect (nats)",
    "fraction": "fraction",
    "epochs": "effect (epochs; median, range)",
    "x": "ratio (log scale)",
    "s": "effect (seconds)",
}
BAND = "#e8e8e8"


# An effect more than this many times the panel's largest margin is off the scale on which the
# others are judged: it is drawn at the edge with its value written out (non-i.i.d. batches move
# accuracy by 35 points, every other claim by under 3), so that it squashes no other row.
OFF_SCALE = 10.0


def _limits(rows: pd.DataFrame, log: bool) -> tuple[float, float]:
    """An axis that shows every estimate and margin on the scale of the margins: an effect past
    OFF_SCALE times the largest margin is left out of the range (and written at the edge), and
    an interval wider than four times the range (2 seeds give t-intervals of +-12.7 sd) is cut
    at the edge with an arrow, so that neither squashes every other row to a dot."""

    def t(v):
        v = np.asarray(v, float)
        return np.log10(v[v > 0]) if log else v

    if log:  # ratios: from below the smallest to above the largest, with 1 ("no effect") in view
        values = np.concatenate([t(rows[k]) for k in ("lo", "hi", "effect", "margin")])
        values = values[np.isfinite(values)]
        low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
        pad = 0.08 * max(high - low, 1.0)
        return 10 ** (min(low, -0.35) - pad), 10 ** (max(high, 0.35) + pad)
    margins = np.abs(t(rows["margin"]))
    margins = margins[np.isfinite(margins)]
    largest_margin = margins.max() if margins.size else 0.0
    effects = np.abs(t(rows["effect"]))
    on_scale = np.isfinite(effects)
    if largest_margin > 0:
        on_scale &= effects <= OFF_SCALE * largest_margin
    core = np.concatenate([effects[on_scale], margins])
    reach = 1.15 * max(core.max() if core.size else 1.0, 1e-12)
    kept = rows[on_scale]
    ends = np.abs(np.concatenate([t(kept["lo"]), t(kept["hi"])]))
    ends = ends[np.isfinite(ends)]
    if ends.size:
        reach = max(reach, 1.05 * min(ends.max(), 4 * reach))
    return -reach, reach


def _off_scale(ax, r, y: float, left: float, right: float, colour: str) -> None:
    """An effect past the axis: an arrow at the edge it lies beyond, and its value and interval."""
    edge, arrow, align = (right, ">", "right") if r.effect > right else (left, "<", "left")
    ax.plot([edge], [y], marker=arrow, color=colour, ms=8, ls="none", zorder=3)
    # The arrow says it is off the scale; the text stays inside the axes (clipped, and left out
    # of the layout) so that it can cover neither a label nor another panel.
    text = f"{r.effect:.3g} [{r.lo:.3g}, {r.hi:.3g}]"
    inset = -0.04 if align == "right" else 0.04
    ax.text(edge + inset * (right - left), y, text, ha=align, va="center", fontsize=6.5,
            color=colour, clip_on=True, in_layout=False,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})  # fmt: skip


def _panel(ax, rows: pd.DataFrame, unit: str, fontsize: float = 8) -> None:
    """One unit's rows, top to bottom: margin band, interval, point."""
    log = unit == "x"
    n = len(rows)
    left, right = _limits(rows, log)
    for i, r in enumerate(rows.itertuples()):
        y = n - 1 - i
        m, test = float(r.margin), getattr(r, "test", "difference")
        if test == "threshold":  # the threshold, not a band around "no effect"
            ax.plot([m, m], [y - 0.4, y + 0.4], color="#555555", lw=1.2, ls="--")
        elif math.isfinite(m) and m > 0:
            lo, hi = (1 / m, m) if log else (-m, m)
            ax.fill_betweenx([y - 0.4, y + 0.4], lo, hi, color=BAND, lw=0)
        colour, marker = VERDICT_STYLE.get(r.verdict, VERDICT_STYLE["inconclusive"])
        if not log and math.isfinite(r.effect) and not left <= r.effect <= right:
            _off_scale(ax, r, y, left, right, colour)
            continue
        if math.isfinite(r.lo) and math.isfinite(r.hi):
            lo, hi = max(r.lo, left), min(r.hi, right)
            ax.plot([lo, hi], [y, y], color=colour, lw=2.0, solid_capstyle="butt")
            for end, edge, arrow in ((r.lo, left, "<"), (r.hi, right, ">")):
                if (end < edge) if arrow == "<" else (end > edge):  # cut: the interval goes on
                    ax.plot([edge], [y], marker=arrow, color=colour, ms=6, ls="none")
        if math.isfinite(r.effect):
            ax.plot([r.effect], [y], marker=marker, color=colour, ms=7, ls="none", zorder=3)
        else:
            ax.text(0.5, y, "not tested", transform=ax.get_yaxis_transform(), ha="center",
                    va="center", fontsize=8, color="#777777")  # fmt: skip
    ax.axvline(1.0 if log else 0.0, color="#333333", lw=0.8)
    if log:
        ax.set_xscale("log")
    ax.set_xlim(left, right)
    ax.set_yticks(range(n))
    ax.set_yticklabels(list(rows["label"])[::-1], fontsize=fontsize)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(UNIT_LABELS.get(unit, unit), fontsize=fontsize + 1)
    ax.tick_params(axis="x", labelsize=fontsize)
    ax.grid(axis="y", visible=False)


def _legend_handles(rows: pd.DataFrame) -> list:
    handles = [
        Line2D([], [], color=c, marker=mk, ls="-", lw=2, ms=7, label=v)
        for v, (c, mk) in VERDICT_STYLE.items()
        if v in set(rows["verdict"]) and v != "not tested"
    ]
    handles.append(Patch(color=BAND, label="±margin (smallest effect of interest)"))
    handles.append(Line2D([], [], color="#7f7f7f", marker=">", ls="none", label="interval cut"))
    if "test" in rows and (rows["test"] == "threshold").any():
        handles.append(Line2D([], [], color="#555555", ls="--", label="threshold"))
    return handles


def draw_forest(rows: pd.DataFrame, group: str = "unit", title: str = "") -> Figure:
    """One panel per value of ``group``; ``rows`` has label, unit, effect, lo, hi, margin,
    verdict and optionally test (threshold claims draw their threshold, not a band)."""
    groups = list(dict.fromkeys(rows[group]))
    heights = [max(len(rows[rows[group] == g]), 1) + 1.2 for g in groups]
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(8.0, 0.32 * sum(heights) + 1.3),
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )  # fmt: skip
    for ax, g in zip(axes[:, 0], groups, strict=True):
        part = rows[rows[group] == g]
        _panel(ax, part, str(part["unit"].iloc[0]))
        if group != "unit":
            ax.set_title(str(g), fontsize=9, loc="left")
    fig.legend(handles=_legend_handles(rows), loc="lower center", ncol=3, fontsize=8,
               frameon=False)  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.35 / (0.32 * sum(heights) + 1.3) + 0.04, 1, 1))
    return fig


# The ledger's plot is printed a page high and a text width wide (report.html.j2, figure.ledger):
# drawn at that size, its fonts print at the sizes set here. Its panels (one per unit) go in two
# columns, so that some sixty rows fit one page at a readable height each.
LEDGER_WIDTH_IN = 7.0
LEDGER_ROW_IN = 0.22
LEDGER_PANEL_IN = 0.6  # a panel's axis, its label and the gap to the next
LEDGER_FONT = 7.5
LABEL_CHARS = 34  # a longer claim id is wrapped at an underscore onto a second line


def _wrap(label: str, width: int = LABEL_CHARS) -> str:
    """A long claim id on two lines, broken after the underscore nearest its middle."""
    if len(label) <= width or "_" not in label:
        return label
    cuts = [i + 1 for i, ch in enumerate(label) if ch == "_"]
    cut = min(cuts, key=lambda i: abs(i - len(label) / 2))
    return label[:cut] + "\n" + label[cut:]


def _two_columns(sizes: list[float]) -> list[list[int]]:
    """The panels' indices in two columns of even heights: each panel, tallest first, goes to
    the shorter column; within a column the panels keep their order."""
    columns: list[list[int]] = [[], []]
    heights = [0.0, 0.0]
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        shorter = heights.index(min(heights))
        columns[shorter].append(i)
        heights[shorter] += sizes[i]
    return [sorted(c) for c in columns if c]


def draw_ledger_forest(rows: pd.DataFrame) -> Figure:
    """The claims ledger's forest plot: one panel per unit, in two columns, with the legend
    below them all (never over a panel)."""
    units = list(dict.fromkeys(rows["unit"]))
    parts = [rows[rows["unit"] == u].assign(label=lambda r: r["label"].map(_wrap)) for u in units]
    sizes = [len(p) * LEDGER_ROW_IN + LEDGER_PANEL_IN for p in parts]
    columns = _two_columns(sizes)
    height = max(sum(sizes[i] for i in column) for column in columns)
    fig = plt.figure(figsize=(LEDGER_WIDTH_IN, height + 0.7), layout="constrained")
    outer = fig.add_gridspec(1, len(columns))
    for c, column in enumerate(columns):
        # a shorter column is padded below with an empty slot, so its rows keep their height
        ratios = [sizes[i] for i in column]
        spare = height - sum(ratios)
        if spare > 1e-6:
            ratios.append(spare)
        grid = outer[0, c].subgridspec(len(ratios), 1, height_ratios=ratios)
        for slot, i in enumerate(column):
            part = parts[i]
            _panel(fig.add_subplot(grid[slot, 0]), part, str(part["unit"].iloc[0]), LEDGER_FONT)
    fig.legend(handles=_legend_handles(rows), loc="outside lower center", ncol=3,
               fontsize=LEDGER_FONT, frameon=False)  # fmt: skip
    return fig


def ledger_rows(ledger: pd.DataFrame) -> pd.DataFrame:
    """The claims ledger (claims.csv) as forest rows, grouped by unit in the ledger's order."""
    rows = ledger.assign(label=ledger["id"].astype(str))
    for col in ("effect", "lo", "hi", "margin"):
        rows[col] = pd.to_numeric(rows[col], errors="coerce")
    order = {u: i for i, u in enumerate(dict.fromkeys(rows["unit"]))}
    return rows.sort_values("unit", key=lambda s: s.map(order), kind="stable")


def write_ledger_forest(ledger: pd.DataFrame, path: Path) -> Path:
    """The ledger's forest plot as ``path`` (.png, with an .svg beside it)."""
    with _style():
        fig = draw_ledger_forest(ledger_rows(ledger))
        _save_figure(fig, Path(path).parent, Path(path).stem)
    return Path(path)


def _ablation_rows(summary: pd.DataFrame) -> pd.DataFrame:
    is_base = summary["is_baseline"].astype(str).str.lower() == "true"
    baseline = str(summary.loc[is_base, "variant"].iloc[0]) if is_base.any() else "the baseline"
    rows = []
    for metric in DIFF_METRICS:
        unit = "pp" if "acc" in metric else "loss"
        scale = UNITS[unit]
        for _, r in summary[~is_base].iterrows():
            word = str(r.get(f"{metric}_verdict", "") or "inconclusive")
            if word == "nan":
                word = "inconclusive"
            rows.append(
                {
                    "group": f"Δ {metric} vs {baseline}",
                    "label": str(r["variant"]),
                    "unit": unit,
                    "effect": scale * float(r[f"{metric}_diff"]),
                    "lo": scale * float(r[f"{metric}_diff_lo"]),
                    "hi": scale * float(r[f"{metric}_diff_hi"]),
                    "margin": scale * TABLE_MARGINS[metric],
                    "verdict": _FROM_TABLE.get(word, word),
                }
            )
    return pd.DataFrame(rows)


@figure("forest", needs="tables/<ablation>.csv")
def forest(ctx: Context) -> tuple[Figure, str]:
    summary = ctx.summary()
    if summary is None or summary.empty:
        _require(pd.DataFrame(), ["variant"], f"{ctx.name}.csv", "forest")
    rows = _ablation_rows(summary)
    _require(rows, ["effect"], f"{ctx.name}.csv", "forest (no variant besides the baseline)")
    fig = draw_forest(rows, group="group")
    counts = rows["verdict"].value_counts()
    caption = (
        "Every variant minus the baseline with its 95% interval, per compared metric; the grey "
        "band is the metric's margin (the smallest difference of interest: "
        + ", ".join(
            f"{m} {np.round(UNITS['pp' if 'acc' in m else 'loss'] * v, 3):g}"
            for m, v in TABLE_MARGINS.items()
        )  # fmt: skip
        + "), colours the verdict of the study's one rule (Benjamini–Hochberg within the "
        + "ablation and metric): "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + "."
    )
    return fig, caption
