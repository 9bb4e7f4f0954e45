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
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from study.analysis.stats import fmt, holm, mean_ci, paired_diff, verdict
from study.outputs import write_text

STATUSES = ("ok", "diverged", "stopped_early")

# Metrics summarized per variant, in table order.
METRICS = [
    "test_acc",
    "test_loss",
    "val_acc",
    "val_loss",
    "train_acc",
    "gap_acc",
    "gap_loss",
    "best_epoch",
    "epochs_run",
    "s_per_epoch",
    "weight_sparsity",
    "weight_norm",
]
# Metrics compared with the baseline variant, with whether a higher value is better.
DIFF_METRICS = {"test_acc": True, "test_loss": False, "gap_acc": False}

# Without these a metrics.json cannot be summarized at all; the other contract keys may be
# missing (their columns are then NaN) so that an older run still aggregates.
REQUIRED_METRICS = (
    "status",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "epochs_run",
)
HISTORY_REQUIRED = ("epoch", "train_loss", "val_loss", "val_acc")
SHIFT_COLUMNS = ["shift", "severity", "adapted", "slice", "accuracy", "loss"]
RUN_KEYS = ["ablation", "variant", "seed"]
# Nested entries of metrics.json: `config` is flattened into config.* columns, the others
# describe the machine and are left to the run folder.
NESTED = ("config", "versions", "hardware")

SEED_DIR = re.compile(r"seed(\d+)")


class TablesError(ValueError):
    """A bad input; the message is one line naming the file and what to do."""


def is_loss_metric(name: str) -> bool:
    return "loss" in name


def usable(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs with the loss metrics of diverged runs set to NaN.

    A diverged run's losses are non-finite or meaningless (the loss at the divergence check), so
    they are excluded from means and comparisons; its accuracies are real outcomes (near chance)
    and stay. Diverged runs are still counted in every summary.
    """
    out = runs.copy()
    if "status" not in out:
        return out
    diverged = out["status"] == "diverged"
    for col in out.columns:
        if is_loss_metric(col) and not col.startswith("config."):
            out[col] = pd.to_numeric(out[col], errors="coerce")
            out.loc[diverged, col] = float("nan")
    return out


# ----------------------------------------------------------------------------- reading


def _rerun(path: Path, problem: str) -> TablesError:
    return TablesError(
        f"{path}: {problem}; rerun that run: delete the folder {path.parent} and run the workflow "
        "again"
    )


def flatten(d: Mapping, prefix: str = "") -> dict:
    """Nested mappings as dotted keys; lists become JSON text so that they fit one cell."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def read_metrics(path: Path, ablation: str, variant: str, seed: int) -> dict:
    """One metrics.json as a flat row (metrics, config.* columns), checked against the contract."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _rerun(path, f"unreadable metrics.json ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise _rerun(path, "metrics.json is not a JSON object")
    missing = [k for k in REQUIRED_METRICS if k not in data]
    if missing:
        raise _rerun(path, f"metrics.json lacks {', '.join(missing)}")
    if data["status"] not in STATUSES:
        raise _rerun(path, f"status {data['status']!r} is not one of {', '.join(STATUSES)}")
    for key, expected in (("ablation", ablation), ("variant", variant), ("seed", seed)):
        if key in data and data[key] is not None and str(data[key]) != str(expected):
            raise _rerun(
                path, f"metrics.json says {key}={data[key]!r} but the folder is {expected!r}"
            )
    row = {"ablation": ablation, "variant": variant, "seed": seed, "status": data["status"]}
    for key, value in data.items():
        if key in RUN_KEYS or key == "status" or key in NESTED:
            continue
        if isinstance(value, Mapping | list):
            continue
        numeric = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        if (key in METRICS or key in REQUIRED_METRICS) and key != "status" and not numeric:
            raise _rerun(path, f"metric {key} is {value!r}, not a number")
        row[key] = value
    config = data.get("config")
    if isinstance(config, Mapping):
        row.update(flatten(config, "config."))
    return row


def read_csv(path: Path, required, what: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise _rerun(path, f"unreadable {what} ({type(e).__name__}: {e})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise _rerun(path, f"{what} lacks the column(s) {', '.join(missing)}")
    return df


@dataclass
class Gathered:
    runs: pd.DataFrame
    history: pd.DataFrame
    shift: pd.DataFrame


def _with_keys(df: pd.DataFrame, keys: dict) -> pd.DataFrame:
    df = df.copy()
    for i, (key, value) in enumerate(keys.items()):
        df.insert(i, key, value)
    return df


def _order(df: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    first = [c for c in first if c in df.columns]
    config = sorted(c for c in df.columns if c.startswith("config."))
    rest = [c for c in df.columns if c not in first and c not in config]
    return df[first + rest + config]


def gather(root: Path, levels: bool = False) -> Gathered:
    """Every complete run under ``root`` (``<ablation>/<variant>/[<level>/]seed<k>/``).

    With ``levels`` the runs are tuning runs and carry a ``level`` column: the folder(s) between
    the variant and the seed (one learning-rate grid point).
    """
    rows, histories, shifts = [], [], []  # a missing root (no tuning at all) gives empty tables
    for path in sorted(root.glob("**/metrics.json")) if root.is_dir() else []:
        parts = path.relative_to(root).parts[:-1]
        match = SEED_DIR.fullmatch(parts[-1]) if parts else None
        if match is None or len(parts) < 3 or (not levels and len(parts) != 3):
            continue  # not a run folder of the contract (e.g. a stray file)
        ablation, variant, seed = parts[0], parts[1], int(match.group(1))
        keys = {"ablation": ablation, "variant": variant}
        if levels:
            keys["level"] = "/".join(parts[2:-1])
        keys["seed"] = seed
        row = read_metrics(path, ablation, variant, seed)
        rows.append({**keys, **row})
        hist_path = path.parent / "history.csv"
        if not hist_path.exists():
            raise _rerun(hist_path, "history.csv is missing next to a metrics.json")
        histories.append(_with_keys(read_csv(hist_path, HISTORY_REQUIRED, "history.csv"), keys))
        shift_path = path.parent / "shift.csv"
        if shift_path.exists():
            shifts.append(_with_keys(read_csv(shift_path, SHIFT_COLUMNS, "shift.csv"), keys))
    key_cols = ["ablation", "variant", "level", "seed"] if levels else RUN_KEYS
    runs = pd.DataFrame(rows, columns=None if rows else key_cols + ["status"])
    runs = _order(runs, key_cols + ["status"] + METRICS)
    nonempty = [h for h in histories if len(h)]
    history = pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame(columns=key_cols)
    nonempty = [s for s in shifts if len(s)]
    shift = (
        pd.concat(nonempty, ignore_index=True)
        if nonempty
        else pd.DataFrame(columns=key_cols + SHIFT_COLUMNS)
    )
    return Gathered(runs, history, shift)


# ----------------------------------------------------------------------------- summaries


def summarize(
    runs: pd.DataFrame,
    ablation: str,
    baseline: str,
    variants: list[str] | None = None,
) -> pd.DataFrame:
    """Per-variant summary of one ablation (columns documented in docs/architecture.md).

    Variants are listed in ``variants`` order (the ablation file's), followed by variants found in
    the runs but not in the file. Differences to the baseline are paired by seed; their p-values
    are Holm-adjusted over the ablation's non-baseline variants, separately per metric.
    """
    own = usable(runs[runs["ablation"] == ablation])
    found = list(dict.fromkeys(own["variant"]))
    order = list(variants or []) + sorted(v for v in found if v not in (variants or []))
    base = own[own["variant"] == baseline].set_index("seed")
    rows = []
    for variant in order:
        sub = own[own["variant"] == variant]
        status = sub["status"] if len(sub) else pd.Series(dtype=object)
        row = {
            "ablation": ablation,
            "variant": variant,
            "is_baseline": variant == baseline,
            "n_seeds": len(sub),
            "n_ok": int((status == "ok").sum()),
            "n_diverged": int((status == "diverged").sum()),
            "n_stopped_early": int((status == "stopped_early").sum()),
        }
        for m in METRICS:
            values = sub.get(m, [])
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_lo"], row[f"{m}_hi"], row[f"{m}_n"] = (
                mean_ci(values)
            )
        by_seed = sub.set_index("seed")
        for m in DIFF_METRICS:
            if variant == baseline or m not in own:
                d = (math.nan,) * 4 + (0,)
            else:
                d = paired_diff(by_seed[m], base[m] if m in base else pd.Series(dtype=float))
            row[f"{m}_diff"], row[f"{m}_diff_lo"], row[f"{m}_diff_hi"], row[f"{m}_p"] = d[:4]
            row[f"{m}_pairs"] = d[4]
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for m, higher in DIFF_METRICS.items():
        table[f"{m}_p_holm"] = holm(table[f"{m}_p"])
        table[f"{m}_verdict"] = [
            "" if is_base else verdict(lo, hi, higher, p_holm)
            for is_base, lo, hi, p_holm in zip(
                table["is_baseline"],
                table[f"{m}_diff_lo"],
                table[f"{m}_diff_hi"],
                table[f"{m}_p_holm"],
                strict=True,
            )
        ]
    cols = list(rows[0].keys())
    ordered = [c for c in cols if not any(c.startswith(f"{m}_diff") for m in DIFF_METRICS)]
    ordered = [c for c in ordered if not any(c.startswith(f"{m}_p") for m in DIFF_METRICS)]
    ordered = [c for c in ordered if not any(c == f"{m}_pairs" for m in DIFF_METRICS)]
    for m in DIFF_METRICS:
        ordered += [
            f"{m}_diff",
            f"{m}_diff_lo",
            f"{m}_diff_hi",
            f"{m}_p",
            f"{m}_p_holm",
            f"{m}_pairs",
            f"{m}_verdict",
        ]
    return table[ordered]


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
        row = {
            "variant": r["variant"] + (" (baseline)" if r["is_baseline"] else ""),
            "seeds": _seeds_cell(r),
        }
        for m in DISPLAY_METRICS:
            row[m] = _ci_cell(r[f"{m}_mean"], r[f"{m}_lo"], r[f"{m}_hi"])
        for m in DIFF_METRICS:
            if r["is_baseline"]:
                row[f"Δ {m}"] = ""
                continue
            cell = _ci_cell(r[f"{m}_diff"], r[f"{m}_diff_lo"], r[f"{m}_diff_hi"], signed=True)
            if not pd.isna(r[f"{m}_p_holm"]):
                cell += f", p_Holm {fmt(r[f'{m}_p_holm'], 2)}"
            row[f"Δ {m}"] = f"{cell}, {r[f'{m}_verdict']}"
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


# ----------------------------------------------------------------------------- the whole set


@dataclass
class Tables:
    runs: pd.DataFrame
    history: pd.DataFrame
    shift: pd.DataFrame
    tuning: pd.DataFrame
    summaries: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def build_tables(scale_dir: Path, ablations: Mapping) -> Tables:
    """Read all runs of a scale and summarize each ablation that has runs.

    ``ablations`` maps an ablation name to its spec (``study.planning.ablation.Ablation``; baseline
    and variant order are used). The number of seeds is what was run: scales cap the seeds of
    an ablation file, and the workflow only aggregates once every planned run is complete.
    """
    scale_dir = Path(scale_dir)
    got = gather(scale_dir / "runs")
    tuning = gather(scale_dir / "tune", levels=True).runs
    tables = Tables(got.runs, got.history, got.shift, tuning)
    # Every ablation file gets its tables, even before any of its runs exist (the workflow
    # declares them as outputs); its variants then show 0 seeds.
    for name, spec in ablations.items():
        tables.summaries[name] = summarize(got.runs, name, spec.baseline, list(spec.variants))
    for name in dict.fromkeys(got.runs["ablation"]):
        if name not in ablations:
            tables.notes.append(
                f"runs/{name} has no ablation file: its runs are in runs.csv but it gets no "
                "summary table"
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

    from study.analysis.claims import ClaimsError, evaluate, load_claims, tables_from_frames
    from study.planning.ablation import AblationError, load_ablations

    try:
        if not args.ablations.is_dir():
            raise TablesError(f"{args.ablations}: no such folder of ablation files")
        claims = load_claims(args.claims) if args.claims else None
        tables = build_tables(args.scale_dir, load_ablations(args.ablations))
        files = render(tables)
        if claims is not None:
            frames = tables_from_frames(tables, args.scale_dir)
            files["claims.csv"] = evaluate(claims, frames).to_csv(index=False)
    except (TablesError, ClaimsError, AblationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for note in tables.notes:
        print(f"note: {note}", file=sys.stderr)
    out_dir = args.scale_dir / "tables"
    for name, text in files.items():
        write_text(out_dir / name, text)
    print(f"wrote {len(files)} files to {out_dir} ({len(tables.runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
