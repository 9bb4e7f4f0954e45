"""One section of the report per ablation: its variants' numbers, the sentences that state each
effect against the baseline, the learning rates chosen by tuning, and its figures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from study import contracts
from study.analysis.stats import fmt
from study.figure_catalog import PNG_DPI, figure_names
from study.paths import ScaleDir
from study.report.formatting import _finite, _num, anchor, count, diff, interval, value


def _display_width(png: Path) -> int | None:
    """CSS width at which a figure shows at its designed size (100 CSS px per inch)."""
    header = png.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return round(int.from_bytes(header[16:20], "big") * 100 / PNG_DPI)


def _figures_of(scale_dir: Path, ablation: Any) -> list[dict[str, Any]]:
    folder = ScaleDir(scale_dir).figures(ablation.name)
    captions_path = ScaleDir(scale_dir).captions(ablation.name)
    captions = json.loads(captions_path.read_text()) if captions_path.is_file() else {}
    out = []
    for name in figure_names(ablation):
        png = folder / f"{name}.png"
        if not png.is_file():
            continue
        out.append(
            {
                "name": name,
                "ablation": ablation.name,
                "caption": captions.get(name, name.replace("_", " ").capitalize() + "."),
                "source": png,
                "rel": f"figures/{ablation.name}/{name}.png",
                "anchor": anchor("fig", ablation.name, name),
                "width": _display_width(png),
            }
        )
    return out


# Per-variant facts beyond accuracy: when the best validation epoch came, how long training ran,
# and what the weights look like (the L1-sparsity and weight-norm claims).
DYNAMICS = ("best_epoch", "epochs_run", "weight_sparsity", "weight_norm", "gap_loss")


def _selection_rows(scale_dir: Path, ablation: Any) -> list[dict[str, Any]]:
    """The values the tuning step chose on the validation split (tuned ablations): the setting
    each variant tunes (a learning rate, a regularizer's strength) and the value it used."""
    path = ScaleDir(scale_dir).selection(ablation.name, "csv")
    table = contracts.read_csv(path, contracts.SELECTION, optional=True)
    if table is None or not ablation.tune:
        return []
    rows = []
    for _, r in table.iterrows():
        note = []
        if str(r.get("all_diverged")) == "True":
            note.append("every rate diverged")
        elif str(r.get("at_edge")) == "True":
            note.append("best value on the edge of the grid")
        elif str(r.get("edge")) == "range end":
            note.append("best value 0, the end of its range")
        n_div = int(_num(r.get("n_diverged"))) if _finite(r.get("n_diverged")) else 0
        if n_div:
            note.append(f"{n_div} rate{'s' if n_div > 1 else ''} diverged")
        rows.append(
            {
                "variant": str(r["variant"]),
                "key": str(r.get("key", "optim.lr")),
                # the chosen value itself (a strength is not a learning rate: "lr" is empty then)
                "lr": f"{_num(r.get('chosen', r.get('lr'))):g}",
                "value": fmt(_num(r.get("value"))),
                "metric": str(r.get("metric", "")),
                "note": "; ".join(note),
            }
        )
    return rows


def _reference(r: pd.Series, baseline: str) -> str:
    """The variant this row is compared with: its declared reference ("" for none)."""
    if "reference" not in r.index:  # a summary from before declared comparisons
        return "" if str(r["variant"]) == baseline else baseline
    ref = r["reference"]
    return "" if pd.isna(ref) else str(ref)


def _variant_rows(summary: pd.DataFrame, baseline: str) -> list[dict[str, Any]]:
    rows = []
    for _, r in summary.iterrows():
        reference = _reference(r, baseline)
        is_base = not reference  # compared with nothing: no difference, no verdict
        n = int(_num(r.get("n_seeds")) or 0) if _finite(r.get("n_seeds")) else 0
        n_div = int(_num(r.get("n_diverged"))) if _finite(r.get("n_diverged")) else 0
        n_stop = int(_num(r.get("n_stopped_early"))) if _finite(r.get("n_stopped_early")) else 0
        row = {
            "variant": str(r["variant"]),
            "is_baseline": str(r["variant"]) == baseline,
            "reference": reference,
            "n": n,
            "n_diverged": n_div,
            "n_stopped_early": n_stop,
            "seeds": str(n)
            + (f" (diverged {n_div}/{n})" if n_div else "")
            + (f" (stopped early {n_stop}/{n})" if n_stop else ""),
        }
        for m in (*("test_acc", "test_loss", "gap_acc", "s_per_epoch"), *DYNAMICS):
            row[m] = value(r.get(f"{m}_mean"), m)
            row[f"{m}_ci"] = interval(r.get(f"{m}_lo"), r.get(f"{m}_hi"), m)
            row[f"{m}_mean_raw"] = _num(r.get(f"{m}_mean"))
        row["epochs_run"] = count(r.get("epochs_run_mean"))
        for m in ("test_acc", "gap_acc", "test_loss"):
            row[f"{m}_diff_raw"] = _num(r.get(f"{m}_diff"))
            row[f"{m}_diff_lo_raw"] = _num(r.get(f"{m}_diff_lo"))
            row[f"{m}_diff_hi_raw"] = _num(r.get(f"{m}_diff_hi"))
            row[f"{m}_diff"] = "" if is_base else diff(r.get(f"{m}_diff"), m)
            row[f"{m}_diff_ci"] = (
                "" if is_base else interval(r.get(f"{m}_diff_lo"), r.get(f"{m}_diff_hi"), m, True)
            )
            p = r.get(f"{m}_p_adjusted")
            lo, hi = _num(r.get(f"{m}_diff_lo")), _num(r.get(f"{m}_diff_hi"))
            row[f"{m}_ci_excludes_0"] = _finite(lo) and _finite(hi) and not lo <= 0 <= hi
            row[f"{m}_p_adjusted"] = "" if is_base else (fmt(_num(p), 2) if _finite(p) else "n/a")
            verdict = r.get(f"{m}_verdict")
            row[f"{m}_verdict"] = "" if is_base or pd.isna(verdict) else str(verdict)
            claim = r.get(f"{m}_claim")  # a cell the ledger judged (shared_verdicts)
            row[f"{m}_claim"] = claim if isinstance(claim, str) and not is_base else ""
            pairs = r.get(f"{m}_pairs")
            row[f"{m}_pairs"] = int(_num(pairs)) if _finite(pairs) else 0
        rows.append(row)
    return rows


_METRIC_WORDS = {
    "test_acc": "test accuracy",
    "gap_acc": "generalization gap (train − test accuracy)",
    "test_loss": "test loss",
}


def _effect_sentence(row: dict[str, Any], baseline: str, metric: str) -> str:
    words = _METRIC_WORDS[metric]
    if not row[f"{metric}_diff"] or row[f"{metric}_diff"] == "n/a":
        return f"{words}: no paired comparison with {baseline} is possible"
    text = f"{words} {row[f'{metric}_diff']} relative to {baseline}"
    details = []
    if row[f"{metric}_diff_ci"]:
        details.append(f"95% CI {row[f'{metric}_diff_ci']}")
    if row[f"{metric}_p_adjusted"] and row[f"{metric}_p_adjusted"] != "n/a":
        details.append(f"adjusted p = {row[f'{metric}_p_adjusted']}")
    details.append(f"{row[f'{metric}_pairs']} paired seeds")
    text += f" ({'; '.join(details)})"
    verdict = row[f"{metric}_verdict"] or "inconclusive"
    if verdict == "inconclusive":
        if not row[f"{metric}_diff_ci"]:
            reason = "fewer than two paired seeds"
        elif row[f"{metric}_ci_excludes_0"]:
            claim = row.get(f"{metric}_claim")
            family = "the ledger's claims" if claim else "the ablation's variants"
            reason = f"not significant after the correction over {family}"
        else:
            reason = "the interval contains 0"
        return f"{text}: inconclusive, {reason}"
    if row.get(f"{metric}_claim"):
        text += f" [claim {row[f'{metric}_claim']}]"
    return f"{text}: {verdict}"


def _ablation_context(scale_dir: Path, ablation: Any, runs: pd.DataFrame) -> dict[str, Any]:
    summary = contracts.read_csv(
        ScaleDir(scale_dir).table(ablation.name), contracts.SUMMARY, optional=True
    )
    own = runs[runs["ablation"] == ablation.name] if "ablation" in runs.columns else runs.iloc[:0]
    ctx: dict[str, Any] = {
        "name": ablation.name,
        "title": ablation.title,
        "question": ablation.question,
        "baseline": ablation.baseline,
        "seeds": _planned_seeds(ablation, own),
        "n_variants": len(ablation.variants),
        "anchor": anchor("ablation", ablation.name),
        "n_runs": len(own),
        "n_diverged": int((own.get("status", pd.Series(dtype=str)) == "diverged").sum()),
        "rows": [],
        "sentences": [],
        "figures": _figures_of(scale_dir, ablation),
        "tex": None,
        "best": None,
        "better": [],
        "worse": [],
        "equivalent": [],
        "noise": [],
    }
    tex = ScaleDir(scale_dir).table(ablation.name, "tex")
    if tex.is_file():
        ctx["tex"] = {"source": tex, "rel": f"tables/{ablation.name}.tex"}
    if summary is None or summary.empty:
        return ctx
    rows = _variant_rows(summary, ablation.baseline)
    ctx["rows"] = rows
    ctx["selection"] = _selection_rows(scale_dir, ablation)
    _findings(ctx, rows, ablation.baseline)
    return ctx


def _findings(ctx: dict[str, Any], rows: list[dict[str, Any]], baseline: str) -> None:
    """The best variant and each declared comparison's verdict and sentence, into ``ctx``."""
    # Ranked only with the baseline's own comparisons: the same budget as the baseline (a batch-8
    # variant compared with another batch-8 variant is not ranked against batch 128).
    ranked = [
        r
        for r in rows
        if math.isfinite(r["test_acc_mean_raw"])
        and (r["is_baseline"] or r["reference"] == baseline)
    ]
    if ranked:
        ctx["best"] = max(ranked, key=lambda r: r["test_acc_mean_raw"])
    for key in ("better", "worse", "equivalent", "noise", "sentences"):
        ctx[key] = []
    for row in rows:
        if not row["reference"]:  # only the ablation's declared, one-factor comparisons
            continue
        verdict = row["test_acc_verdict"] or "inconclusive"
        named = row["reference"] != baseline  # say which reference it was measured against
        entry = {
            "variant": row["variant"] + (f" (vs {row['reference']})" if named else ""),
            "diff": row["test_acc_diff"],
            "ci": row["test_acc_diff_ci"],
        }
        kind = "equivalent" if verdict.startswith("equivalent") else verdict
        found = {"better": ctx["better"], "worse": ctx["worse"], "equivalent": ctx["equivalent"]}
        found.get(kind, ctx["noise"]).append(entry)
        ctx["sentences"].append(
            {
                "variant": row["variant"],
                "verdict": verdict,
                "text": _effect_sentence(row, row["reference"], "test_acc"),
                "diverged": (
                    f"{row['n_diverged']} of {row['n']} runs diverged." if row["n_diverged"] else ""
                ),
            }
        )


def _planned_seeds(ablation: Any, runs: pd.DataFrame) -> int:
    """Seeds per variant as run: the ablation's own number within the scale's floor and cap
    (plan.min_seeds, plan.max_seeds), as study.planning.seeds.planned_seeds decides."""
    from study.planning.seeds import planned_seeds

    plan = {}
    for key in ("min_seeds", "max_seeds"):
        found = runs.get(f"config.plan.{key}", pd.Series(dtype=float)).dropna()
        if len(found):
            plan[key] = int(found.max())
    return planned_seeds(ablation.seeds, plan)


def mark_equivalences(sections: list[dict[str, Any]], claims: list[dict[str, Any]]) -> None:
    """A table cell decided by an equivalence claim reads "equivalent within ±margin", never
    better or worse (the claim says the two do not differ by more than its margin); the
    section's findings are regrouped accordingly."""
    from study.report.answers import equivalence_word

    equivalence = {c["id"]: c for c in claims if c.get("test") == "equivalence"}
    for section in sections:
        changed = False
        for row in section["rows"]:
            claim = equivalence.get(row.get("test_acc_claim", ""))
            if claim and claim["verdict"] == "supported":
                row["test_acc_verdict"] = equivalence_word(claim)
                changed = True
        if changed:
            _findings(section, section["rows"], section["baseline"])
