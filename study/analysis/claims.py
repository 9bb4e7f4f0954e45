"""The claims ledger: the course's testable claims (conf/claims.yaml) checked against the tables.

Each claim becomes one row of ``<scale-dir>/tables/claims.csv`` with the measured effect, its 95%
interval and a verdict: ``supported`` (the interval excludes 0 in the expected direction),
``contradicted`` (it excludes 0 in the opposite direction), ``inconclusive`` (it contains 0, or
fewer than two seeds could be paired) or ``not tested`` (the ablation, a variant, a metric or a
file the claim needs does not exist at this scale; never an error, so the ledger can name
ablations before they are run). Claims are separate questions; their verdicts are not corrected
for multiplicity. What a claim may hold is schemas/claims.schema.yaml; reading and checking the
file is study.analysis.claims_file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from study.analysis.claims_file import ClaimsError, load_claims
from study.analysis.stats import fmt, mean_ci, paired_diff, verdict
from study.analysis.tables import is_loss_metric, usable

COLUMNS = ["id", "claim", "ablation", "metric", "effect", "lo", "hi", "verdict", "figure", "detail"]
VERDICTS = ("supported", "contradicted", "inconclusive", "not tested")


@dataclass
class ClaimTables:
    """What claims are evaluated against: the aggregated tables of one scale."""

    runs: pd.DataFrame
    history: pd.DataFrame
    shift: pd.DataFrame
    tuning: pd.DataFrame | None
    scale_dir: Path


def _read(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def read_tables(tables_dir: Path) -> ClaimTables:
    tables_dir = Path(tables_dir)
    empty = pd.DataFrame(columns=["ablation", "variant", "seed"])
    runs = _read(tables_dir / "runs.csv")
    history = _read(tables_dir / "history.csv")
    shift = _read(tables_dir / "shift.csv")
    return ClaimTables(
        runs=empty if runs is None or runs.empty else runs,
        history=empty if history is None or history.empty else history,
        shift=empty if shift is None or shift.empty else shift,
        tuning=_read(tables_dir / "tuning.csv"),
        scale_dir=tables_dir.parent,
    )


def tables_from_frames(tables, scale_dir: Path) -> ClaimTables:
    """The in-memory tables (study.analysis.tables) as claim inputs, checked before writing."""
    return ClaimTables(tables.runs, tables.history, tables.shift, tables.tuning, Path(scale_dir))


# ----------------------------------------------------------------------------- values per run


def _metric_label(c: dict) -> str:
    metric, source = c["metric"], c.get("source", "runs")
    if source == "history" and "at_epoch" in c:
        return f"{metric} at epoch {c['at_epoch']}"
    if source == "history" and "reach" in c:
        op = "<=" if is_loss_metric(metric) else ">="
        return f"epochs to {metric} {op} {c['reach']}"
    if source == "shift":
        conds = [f"{k}={v}" for k, v in (c.get("where") or {}).items()]
        conds += [f"{k}!={v}" for k, v in (c.get("where_not") or {}).items()]
        return f"mean shifted {metric}" + (f" ({', '.join(conds)})" if conds else "")
    return metric


def _matches(column: pd.Series, wanted) -> pd.Series:
    """Rows whose value is one of ``wanted``: numbers compare as numbers (severity 0 == 0.0),
    anything else as lower-case text (CSV round trips turn booleans into 'True'/'true')."""
    wanted = wanted if isinstance(wanted, list) else [wanted]
    numbers = [float(w) for w in wanted if isinstance(w, int | float) and not isinstance(w, bool)]
    texts = [str(w).lower() for w in wanted]
    hit = column.astype(str).str.lower().isin(texts)
    if numbers:
        hit |= pd.to_numeric(column, errors="coerce").isin(numbers)
    return hit


def run_values(t: ClaimTables, c: dict, ablation: str, variant: str) -> pd.Series | None:
    """One value per seed of ``variant`` for the claim's metric, or None if it cannot be measured.

    Loss metrics of diverged runs are NaN (see tables.usable); such seeds drop out of pairs.
    """
    metric, source = c["metric"], c.get("source", "runs")
    runs = t.runs
    if "ablation" not in runs:
        return None
    sel = runs[(runs["ablation"] == ablation) & (runs["variant"] == variant)]
    if sel.empty:
        return None
    seeds = pd.Index(sel["seed"].astype(int), name="seed")
    if source == "runs":
        if metric not in sel:
            return None
        return pd.to_numeric(usable(sel).set_index("seed")[metric], errors="coerce")
    table = t.history if source == "history" else t.shift
    if "ablation" not in table or metric not in table:
        return None
    rows = table[(table["ablation"] == ablation) & (table["variant"] == variant)]
    if source == "shift":
        for key, wanted in (c.get("where") or {}).items():
            rows = rows[_matches(rows[key], wanted)] if key in rows else rows.iloc[0:0]
        for key, wanted in (c.get("where_not") or {}).items():
            rows = rows[~_matches(rows[key], wanted)] if key in rows else rows
        if rows.empty:
            return None
        return rows.groupby("seed")[metric].mean().reindex(seeds)
    if rows.empty:
        return None
    if "at_epoch" in c:
        # A run that ended (diverged, stopped early) before that epoch has no value there.
        at = rows[rows["epoch"] == c["at_epoch"]].groupby("seed")[metric].first()
        return at.reindex(seeds)
    if "reach" in c:
        return _epochs_to(rows, sel, metric, float(c["reach"])).reindex(seeds)
    raise ClaimsError(f"claim {c['id']}: source: history needs at_epoch or reach")


def _epochs_to(history: pd.DataFrame, runs: pd.DataFrame, metric: str, target: float) -> pd.Series:
    """First epoch at which ``metric`` reaches ``target`` (at most for losses, at least otherwise).

    A run that never reaches it is censored at its planned epochs + 1 (config.train.epochs, else
    its last epoch + 1): the most favourable value it could still have, so a run that never
    gets there (including a diverged one) counts as the slowest, never as missing.
    """
    planned = (
        runs.set_index("seed")["config.train.epochs"] if "config.train.epochs" in runs else None
    )
    out = {}
    for seed, h in history.groupby("seed"):
        hit = h[metric] <= target if is_loss_metric(metric) else h[metric] >= target
        if hit.any():
            out[seed] = float(h.loc[hit, "epoch"].min())
        else:
            last = planned.get(seed) if planned is not None else None
            out[seed] = float(last if last is not None and pd.notna(last) else h["epoch"].max()) + 1
    return pd.Series(out, dtype=float)


# ----------------------------------------------------------------------------- kinds


def _not_tested(detail: str) -> dict:
    return {
        "effect": math.nan,
        "lo": math.nan,
        "hi": math.nan,
        "verdict": "not tested",
        "detail": detail,
    }


def _absent(t: ClaimTables, c: dict, ablation: str, variant: str) -> str:
    """Why a claim is not tested: the ablation, the variant or only the metric is missing."""
    runs = t.runs
    if "ablation" not in runs or not (runs["ablation"] == ablation).any():
        return f"no runs of ablation {ablation}"
    if not ((runs["ablation"] == ablation) & (runs["variant"] == variant)).any():
        return f"no runs of {ablation}/{variant}"
    return f"no {_metric_label(c)} for {ablation}/{variant}"


def _signed(x) -> str:
    s = fmt(x)
    return "+" + s if isinstance(x, float | int) and np.isfinite(x) and x > 0 else s


def _directional(lo: float, hi: float, expect: str) -> str:
    v = verdict(lo, hi, higher_is_better=expect == "higher")
    return {"better": "supported", "worse": "contradicted"}.get(v, "inconclusive")


def _describe(name: str, d) -> str:
    text = f"{name}: {_signed(d.diff)}"
    if np.isfinite(d.lo):
        text += f" [{fmt(d.lo)}, {fmt(d.hi)}]"
    text += f", {d.n} paired seed{'s' if d.n != 1 else ''}"
    if np.isfinite(d.p):
        text += f", p {fmt(d.p, 2)}"
    return text


def _variants(t: ClaimTables, c: dict) -> list[str]:
    if "variant" in c:
        return [c["variant"]]
    if c["variants"] == "*":
        found = t.runs.loc[t.runs["ablation"] == c["ablation"], "variant"]
        return [v for v in dict.fromkeys(found) if v != c["reference"]]
    return list(c["variants"])


def compare(t: ClaimTables, c: dict) -> dict:
    """Variant(s) minus the reference variant, paired by seed; the CI decides.

    With several variants, ``combine`` says how: ``all`` (default) compares each variant
    separately and is supported only if every comparison is, contradicted if any is (effect: the
    mean of the differences, interval: the envelope of the intervals); ``any`` is supported if at
    least one comparison is and contradicted only if all are; ``mean`` averages the variants
    seed by seed and makes a single paired comparison. Variants without runs are skipped and
    named in the detail; if none has runs the claim is not tested.
    """
    ablation, ref = c["ablation"], c["reference"]
    base = run_values(t, c, ablation, ref)
    if base is None:
        return _not_tested(_absent(t, c, ablation, ref))
    variants = _variants(t, c)
    present = {v: s for v in variants if (s := run_values(t, c, ablation, v)) is not None}
    absent = [v for v in variants if v not in present]
    note = f"; no runs of {', '.join(absent)}" if absent else ""
    if not present:
        return _not_tested(_absent(t, c, ablation, ", ".join(variants) or "*"))
    combine = c.get("combine", "all")
    if combine == "mean" or len(present) == 1:
        values = pd.concat(present, axis=1).mean(axis=1, skipna=False)
        d = paired_diff(values, base)
        name = f"{'mean of ' if len(present) > 1 else ''}{', '.join(present)} - {ref}"
        detail = _describe(name, d)
        if len(present) > 1:  # each variant's own difference, so a mean does not hide one
            each = (f"{v} {_signed(paired_diff(s, base).diff)}" for v, s in present.items())
            detail += f" (each: {', '.join(each)})"
        return {
            "effect": d.diff,
            "lo": d.lo,
            "hi": d.hi,
            "verdict": _directional(d.lo, d.hi, c["expect"]),
            "detail": detail + note,
        }
    diffs = {v: paired_diff(s, base) for v, s in present.items()}
    verdicts = [_directional(d.lo, d.hi, c["expect"]) for d in diffs.values()]
    if combine == "all":
        overall = (
            "supported"
            if all(v == "supported" for v in verdicts)
            else "contradicted"
            if "contradicted" in verdicts
            else "inconclusive"
        )
    else:
        overall = (
            "supported"
            if "supported" in verdicts
            else "contradicted"
            if all(v == "contradicted" for v in verdicts)
            else "inconclusive"
        )
    parts = [
        f"{_describe(f'{v} - {ref}', d)} ({verdict_})"
        for (v, d), verdict_ in zip(diffs.items(), verdicts, strict=True)
    ]
    return {
        "effect": float(np.mean([d.diff for d in diffs.values()])),
        "lo": float(np.min([d.lo for d in diffs.values()])),
        "hi": float(np.max([d.hi for d in diffs.values()])),
        "verdict": overall,
        "detail": f"{combine}: " + "; ".join(parts) + note,
    }


def near_best(t: ClaimTables, c: dict) -> dict:
    """The variant is at most ``tolerance`` worse than the best other variant (paired by seed).

    The best other variant is the one with the best mean (among ``among`` if given). Supported if
    the whole interval of (variant − best) lies above −tolerance in the good direction,
    contradicted if it lies entirely beyond −tolerance, else inconclusive.
    """
    ablation, variant, tol = c["ablation"], c["variant"], float(c["tolerance"])
    own = run_values(t, c, ablation, variant)
    if own is None:
        return _not_tested(_absent(t, c, ablation, variant))
    found = t.runs.loc[t.runs["ablation"] == ablation, "variant"]
    others = [v for v in (c.get("among") or dict.fromkeys(found)) if v != variant]
    values = {v: s for v in others if (s := run_values(t, c, ablation, v)) is not None}
    means = {v: mean_ci(s).mean for v, s in values.items()}
    means = {v: m for v, m in means.items() if np.isfinite(m)}
    if not means:
        return _not_tested(f"no other variant of {ablation} to compare {variant} with")
    sign = 1.0 if c["expect"] == "higher" else -1.0
    best = max(means, key=lambda v: sign * means[v])
    d = paired_diff(own, values[best])
    # Orient so that positive means "variant better", then test against the tolerance band.
    glo, ghi = sorted((sign * d.lo, sign * d.hi))
    if not (np.isfinite(glo) and np.isfinite(ghi)):
        result = "inconclusive"
    elif glo >= -tol:
        result = "supported"
    elif ghi < -tol:
        result = "contradicted"
    else:
        result = "inconclusive"
    detail = _describe(f"{variant} - best other ({best})", d) + f", tolerance {fmt(tol)}"
    return {"effect": d.diff, "lo": d.lo, "hi": d.hi, "verdict": result, "detail": detail}


def diverges(t: ClaimTables, c: dict) -> dict:
    """Runs at too high a learning rate diverge.

    Looks at the runs with lr > ``lr_above`` or, without it, at the highest learning rate of each
    (ablation, variant) grid, in the tuning table (``source: tuning``, default) or in runs.csv.
    The effect is the fraction that diverged, with its exact (Clopper–Pearson) 95% interval:
    supported if the fraction is at least ``min_fraction`` (default 0.5), contradicted if none
    diverged, else inconclusive.
    """
    source = c.get("source", "tuning")
    table = t.tuning if source == "tuning" else t.runs
    if table is None or table.empty or "status" not in table:
        return _not_tested(f"no {source} runs")
    if "ablation" in c and c["ablation"] is not None:
        wanted = c["ablation"] if isinstance(c["ablation"], list) else [c["ablation"]]
        table = table[table["ablation"].isin(wanted)]
    lr_col = next((k for k in ("lr", "config.optim.lr") if k in table), None)
    if table.empty or lr_col is None:
        return _not_tested(f"no {source} runs with a learning rate" + _scope(c))
    table = table.assign(_lr=pd.to_numeric(table[lr_col], errors="coerce"))
    if "lr_above" in c:
        top = table[table["_lr"] > float(c["lr_above"])]
        scope = f"lr > {fmt(c['lr_above'])}"
    else:
        top_lr = table.groupby(["ablation", "variant"])["_lr"].transform("max")
        top = table[table["_lr"] == top_lr]
        scope = "the highest lr of each grid"
    if top.empty:
        return _not_tested(f"no {source} runs at {scope}" + _scope(c))
    n, k = len(top), int((top["status"] == "diverged").sum())
    ci = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
    min_fraction = float(c.get("min_fraction", 0.5))
    result = "supported" if k / n >= min_fraction else "contradicted" if k == 0 else "inconclusive"
    groups = (
        top.groupby(["ablation", "variant"])
        .agg(
            lr=("_lr", "max"),
            k=("status", lambda s: int((s == "diverged").sum())),
            n=("status", "size"),
        )
        .reset_index()
    )
    each = ", ".join(
        f"{g.ablation}/{g.variant} lr {fmt(g.lr)}: {g.k}/{g.n}" for g in groups.itertuples()
    )
    return {
        "effect": k / n,
        "lo": ci.low,
        "hi": ci.high,
        "verdict": result,
        "detail": f"diverged {k}/{n} runs at {scope} ({each}); needs {fmt(min_fraction)}",
    }


def _scope(c: dict) -> str:
    return f" of {c['ablation']}" if c.get("ablation") else ""


# ----------------------------------------------------------------------------- special checks


def early_stopping_near_minimum(t: ClaimTables, c: dict) -> dict:
    """Early stopping returns the model of (about) the epoch where the un-stopped run's
    validation loss is lowest.

    Per seed: the stopped variant's ``best_epoch`` minus the epoch of the lowest val_loss in the
    reference (un-stopped) run's history. Supported if the 95% interval of the mean lies within
    ±``tolerance`` epochs (an equivalence test), contradicted if it lies entirely outside.
    """
    ablation, variant, ref = c["ablation"], c["variant"], c["reference"]
    tol = float(c.get("tolerance", 2))
    stopped = run_values(t, {**c, "metric": "best_epoch", "source": "runs"}, ablation, variant)
    h = t.history
    if stopped is None or "ablation" not in h or "val_loss" not in h:
        return _not_tested(f"no runs or history of {ablation}/{variant}")
    h = h[(h["ablation"] == ablation) & (h["variant"] == ref)].dropna(subset=["val_loss"])
    if h.empty:
        return _not_tested(f"no history of the reference {ablation}/{ref}")
    minimum = h.loc[h.groupby("seed")["val_loss"].idxmin()].set_index("seed")["epoch"]
    d = paired_diff(stopped, minimum.astype(float))
    if not (np.isfinite(d.lo) and np.isfinite(d.hi)):
        result = "inconclusive"
    elif -tol <= d.lo and d.hi <= tol:
        result = "supported"
    elif d.lo > tol or d.hi < -tol:
        result = "contradicted"
    else:
        result = "inconclusive"
    name = f"{variant} best_epoch - val_loss minimum of {ref}"
    return {
        "effect": d.diff,
        "lo": d.lo,
        "hi": d.hi,
        "verdict": result,
        "detail": _describe(name, d) + f", tolerance ±{fmt(tol)} epochs",
    }


SECOND_ORDER_COLUMNS = ("method", "iterations", "seconds", "reached")


def second_order_cost(t: ClaimTables, c: dict) -> dict:
    """Second-order methods reach the target in fewer iterations, each costing more time.

    From ``<scale-dir>/<file>`` (columns method, iterations, seconds, reached and optionally
    seconds_per_iter or s_per_iter), as written by study.experiments.second_order.
    Supported if every second-order method needs fewer iterations (mean over the rows that
    reached the target) than the best first-order method AND takes more seconds per iteration
    than the slowest first-order method; contradicted if either part fails. The effect is the
    iteration ratio (worst second-order / best first-order). No interval: these are single
    measurements.
    """
    path = t.scale_dir / c.get("file", "second_order.csv")
    if not path.exists():
        return _not_tested(f"no {path.name}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ClaimsError(f"{path}: unreadable ({type(e).__name__}); rerun the benchmark") from None
    missing = [col for col in SECOND_ORDER_COLUMNS if col not in df]
    if missing:
        raise ClaimsError(f"{path}: lacks the column(s) {', '.join(missing)}; rerun the benchmark")
    # study.experiments.second_order writes s_per_iter; compute it for files with only the totals.
    if "seconds_per_iter" not in df:
        if "s_per_iter" in df:
            df["seconds_per_iter"] = df["s_per_iter"]
        else:
            df["seconds_per_iter"] = df["seconds"] / df["iterations"].clip(lower=1)
    second_names = set(c.get("second_order", ["lbfgs"]))
    is_second = df["method"].isin(second_names)
    if not is_second.any() or is_second.all():
        return _not_tested(f"{path.name} needs both first- and second-order methods")
    reached = df[_matches(df["reached"], [True, 1, "yes"])]
    iters = reached.groupby("method")["iterations"].mean()
    spi = df.groupby("method")["seconds_per_iter"].mean()
    second = sorted(set(df.loc[is_second, "method"]))
    first = sorted(set(df.loc[~is_second, "method"]))
    spi_text = ", ".join(f"{m} {fmt(spi[m])} s/iter" for m in second + first)
    if not all(m in iters for m in second) or not any(m in iters for m in first):
        return {
            "effect": math.nan,
            "lo": math.nan,
            "hi": math.nan,
            "verdict": "inconclusive",
            "detail": f"not every method reached the target; {spi_text}",
        }
    best_first = min((m for m in first if m in iters), key=lambda m: iters[m])
    fewer = all(iters[m] < iters[best_first] for m in second)
    costlier = all(spi[m] > spi[first].max() for m in second)
    ratio = max(iters[m] for m in second) / iters[best_first]
    iter_text = ", ".join(f"{m} {fmt(iters[m])}" for m in second + [best_first])
    return {
        "effect": float(ratio),
        "lo": math.nan,
        "hi": math.nan,
        "verdict": "supported" if fewer and costlier else "contradicted",
        "detail": f"iterations to target: {iter_text} (best first-order); {spi_text}",
    }


# check name → function; each check's keys are in schemas/claims.schema.yaml ($defs/special).
SPECIAL: dict[str, Callable[[ClaimTables, dict], dict]] = {
    "early_stopping_near_minimum": early_stopping_near_minimum,
    "second_order_cost": second_order_cost,
}


def _metric_of(c: dict) -> str:
    if c["kind"] == "diverges":
        return "fraction diverged"
    if c["kind"] == "special":
        return {
            "early_stopping_near_minimum": "best_epoch - val_loss argmin (epochs)",
            "second_order_cost": "iterations ratio (second/first order)",
        }[c["check"]]
    return _metric_label(c)


def evaluate(claims: list[dict], t: ClaimTables) -> pd.DataFrame:
    rows = []
    for c in claims:
        if c["kind"] == "special":
            result = SPECIAL[c["check"]](t, c)
        else:
            result = {"compare": compare, "near_best": near_best, "diverges": diverges}[c["kind"]](
                t, c
            )
        ablation = c.get("ablation")
        rows.append(
            {
                "id": c["id"],
                "claim": c["claim"],
                "ablation": ", ".join(ablation) if isinstance(ablation, list) else ablation or "",
                "metric": _metric_of(c),
                **result,
                "figure": c.get("figure", ""),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def evaluate_claims(claims_path: Path, tables_dir: Path) -> pd.DataFrame:
    """Evaluate the claims file against the tables in ``tables_dir`` (study.analysis.tables)."""
    return evaluate(load_claims(claims_path), read_tables(tables_dir))
