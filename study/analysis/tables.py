"""Aggregate finished runs into tables: one row per run, and per ablation a summary over seeds.

Usage::

    python -m study.analysis.tables --scale-dir results/<scale> --ablations conf/ablation \
        [--claims conf/claims.yaml]

Inputs are the run folders of docs/architecture.md (a run is complete when its metrics.json exists;
folders without one are runs in progress and are skipped). Everything is read and checked before
anything is written, so a bad input leaves the previous tables untouched; every file is written
atomically. The output columns are documented in docs/architecture.md, section "Tables".
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from study.analysis.gather import TablesError, gather
from study.analysis.ledger.rule import adjust, detectable, table_verdict
from study.analysis.metrics import DIFF_METRICS, METRICS, usable
from study.analysis.stats import PairedDiff, mean_ci, paired_diff
from study.analysis.table_format import display_table, to_latex, to_markdown
from study.outputs import write_text
from study.paths import ScaleDir
from study.planning.ablation import comparisons

__all__ = ["Tables", "TablesError", "build_tables", "main", "render", "summarize"]


# ----------------------------------------------------------------------------- summaries


def _variant_row(own: pd.DataFrame, ablation, variant, baseline, reference) -> dict:
    """One variant's counts, metric summaries and (unadjusted) paired differences with its
    declared ``reference`` ("" when the ablation compares it with nothing)."""
    sub = own[own["variant"] == variant]
    base = own[own["variant"] == reference].set_index("seed")
    status = sub["status"] if len(sub) else pd.Series(dtype=object)
    row = {
        "ablation": ablation,
        "variant": variant,
        "is_baseline": variant == baseline,
        "reference": reference,
        "n_seeds": len(sub),
        "n_ok": int((status == "ok").sum()),
        "n_diverged": int((status == "diverged").sum()),
        "n_stopped_early": int((status == "stopped_early").sum()),
    }
    for m in METRICS:
        values = sub.get(m, [])
        row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_lo"], row[f"{m}_hi"], row[f"{m}_n"] = mean_ci(
            values
        )
    by_seed = sub.set_index("seed")
    for m in DIFF_METRICS:
        if not reference or m not in own:
            d = (math.nan,) * 4 + (0, math.nan)
        else:
            d = paired_diff(by_seed[m], base[m] if m in base else pd.Series(dtype=float))
        row[f"{m}_diff"], row[f"{m}_diff_lo"], row[f"{m}_diff_hi"], row[f"{m}_p"] = d[:4]
        row[f"{m}_pairs"], row[f"{m}_diff_sd"] = d[4], d[5]
        # the smallest true difference these seeds find with 80% power (the metric's raw unit)
        row[f"{m}_mde"] = detectable(d[4], d[5])
    return row


def _with_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Adjusted p-values (Benjamini–Hochberg within the ablation and metric) and verdicts by the
    study's one rule (study.analysis.ledger.rule), per compared metric; the comparison columns
    last."""
    for m, higher in DIFF_METRICS.items():
        table[f"{m}_p_adjusted"] = adjust(table[f"{m}_p"])
        table[f"{m}_verdict"] = [
            ""
            if not r["reference"]
            else table_verdict(
                PairedDiff(
                    r[f"{m}_diff"],
                    r[f"{m}_diff_lo"],
                    r[f"{m}_diff_hi"],
                    r[f"{m}_p"],
                    int(r[f"{m}_pairs"]),
                    r[f"{m}_diff_sd"],
                ),
                r[f"{m}_p_adjusted"],
                m,
                higher,
            )  # fmt: skip
            for _, r in table.iterrows()
        ]
    compared = (
        "_diff", "_diff_lo", "_diff_hi", "_diff_sd", "_p", "_p_adjusted", "_pairs", "_mde",
        "_verdict",
    )  # fmt: skip
    last = [f"{m}{suffix}" for m in DIFF_METRICS for suffix in compared]
    return table[[c for c in table.columns if c not in last] + last]


def summarize(
    runs: pd.DataFrame,
    ablation: str,
    baseline: str,
    variants: list[str] | None = None,
    compared: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Per-variant summary of one ablation (columns documented in docs/architecture.md).

    Variants are listed in ``variants`` order (the ablation file's), followed by variants found in
    the runs but not in the file. ``compared`` holds the ablation's declared (reference, variant)
    pairs (:func:`study.planning.ablation.comparisons`; None: every variant against the
    baseline; a variant may have several references, one row each); a variant's difference to its
    reference is paired by seed, and the p-values are
    adjusted (Benjamini–Hochberg) over the ablation's compared variants, separately per metric.
    A variant in no pair gets no difference: its contrast with the baseline may be confounded.
    """
    own = usable(runs[runs["ablation"] == ablation])
    found = list(dict.fromkeys(own["variant"]))
    order = list(variants or []) + sorted(v for v in found if v not in (variants or []))
    if compared is None:
        compared = [(baseline, v) for v in order if v != baseline]
    # One row per (variant, reference) pair: a variant with two references has two rows.
    references_of: dict[str, list[str]] = {}
    for reference, variant in compared:
        references_of.setdefault(variant, []).append(reference)
    table = pd.DataFrame(
        [
            _variant_row(own, ablation, v, baseline, reference)
            for v in order
            for reference in references_of.get(v, [""])
        ]
    )
    return table if table.empty else _with_verdicts(table)


# ----------------------------------------------------------------------------- the whole set


@dataclass
class Tables:
    runs: pd.DataFrame
    history: pd.DataFrame
    shift: pd.DataFrame
    tuning: pd.DataFrame
    summaries: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _declared(spec) -> list[tuple[str, str]] | None:
    """The ablation's declared comparisons (None for a spec without a compare list)."""
    return comparisons(spec) if getattr(spec, "compare", None) else None


def build_tables(scale_dir: Path, ablations: Mapping) -> Tables:
    """Read all runs of a scale and summarize each ablation that has runs.

    ``ablations`` maps an ablation name to its spec (``study.planning.ablation.Ablation``; baseline
    and variant order are used). The number of seeds is what was run: scales cap the seeds of
    an ablation file, and the workflow only aggregates once every planned run is complete.
    """
    where = ScaleDir(scale_dir)
    # Only the planned ablations' runs: another study's runs in the same scale folder are not
    # this study's (a study of one ablation reports that ablation).
    got = gather(where.runs, ablations=list(ablations))
    tuning = gather(where.tune, levels=True, ablations=list(ablations)).runs
    tables = Tables(got.runs, got.history, got.shift, tuning)
    # Every ablation file gets its tables, even before any of its runs exist (the workflow
    # declares them as outputs); its variants then show 0 seeds.
    for name, spec in ablations.items():
        tables.summaries[name] = summarize(
            got.runs, name, spec.baseline, list(spec.variants), _declared(spec)
        )
    planned = set(ablations)
    for folder in sorted(where.runs.iterdir()) if where.runs.is_dir() else []:
        if folder.is_dir() and folder.name not in planned:
            tables.notes.append(
                f"runs/{folder.name} is not an ablation of this study: its runs are left out"
            )
    return tables


def render(tables: Tables) -> dict[str, str]:
    """File name (relative to the tables folder) → content."""
    out = {
        "runs.csv": tables.runs.to_csv(index=False),
        "history.csv": tables.history.to_csv(index=False),
        "shift.csv": tables.shift.to_csv(index=False),
        "tuning.csv": tables.tuning.to_csv(index=False),
    }
    for name, summary in tables.summaries.items():
        out[f"{name}.csv"] = summary.to_csv(index=False)
        shown = display_table(summary)
        out[f"{name}.md"] = to_markdown(shown)
        out[f"{name}.tex"] = to_latex(shown)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m study.analysis.tables", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scale-dir", required=True, type=Path, help="results/<scale>")
    parser.add_argument("--ablations", required=True, type=Path, help="folder of ablation files")
    parser.add_argument("--claims", type=Path, help="claims ledger (conf/claims.yaml)")
    args = parser.parse_args(argv)

    from study.analysis.ledger.evaluate import (
        ClaimsError,
        evaluate,
        load_claims,
        tables_from_frames,
    )
    from study.analysis.ledger.table_verdicts import adopt_ledger_verdicts
    from study.planning.ablation import AblationError, load_ablations

    try:
        if not args.ablations.is_dir():
            raise TablesError(f"{args.ablations}: no such folder of ablation files")
        claims = load_claims(args.claims) if args.claims else None
        tables = build_tables(args.scale_dir, load_ablations(args.ablations))
        ledger = None
        if claims is not None:
            ledger = evaluate(claims, tables_from_frames(tables, args.scale_dir))
            # one answer per question: a table cell that is a claim shows the ledger's verdict
            adopt_ledger_verdicts(tables.summaries, claims, ledger)
        files = render(tables)
        if ledger is not None:
            files["claims.csv"] = ledger.to_csv(index=False)
    except (TablesError, ClaimsError, AblationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for note in tables.notes:
        print(f"note: {note}", file=sys.stderr)
    out_dir = ScaleDir(args.scale_dir).tables
    for name, text in files.items():
        write_text(out_dir / name, text)
    print(f"wrote {len(files)} files to {out_dir} ({len(tables.runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
