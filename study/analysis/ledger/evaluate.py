"""The claims ledger: the course's testable claims (conf/claims.yaml) checked against the tables.

Each claim declares, before any data, its metric, unit, expected direction, test and margin (the
smallest effect of interest, in its unit, with the reason). It becomes one row of
``<scale-dir>/tables/claims.csv`` with the effect in that unit, its interval, the p-value of its
test, the adjusted p (Benjamini–Hochberg) over every tested claim of the ledger, the smallest
effect its seeds detect with 80% power and a verdict by the one rule of
:mod:`study.analysis.ledger.rule`
(supported, contradicted, no meaningful effect, inconclusive) or ``not tested`` (the ablation, a
variant, a metric or a file the claim needs does not exist at this scale; never an error, so the
ledger can name ablations before they are run). The schema is schemas/claims.schema.yaml.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from study import contracts
from study.analysis.ledger.checks import CHECK_METRICS, CHECKS
from study.analysis.ledger.claims_file import ClaimsError, load_claims
from study.analysis.ledger.interaction import interaction
from study.analysis.ledger.kinds import compare, diverges, near_best
from study.analysis.ledger.rule import ALPHA, RULE, adjust, detectable, judge
from study.analysis.ledger.values import ClaimTables, _metric_label, read_tables, tables_from_frames
from study.analysis.stats import CLAIM_VERDICTS, NAN, fmt

__all__ = [
    "COLUMNS",
    "RULE",
    "VERDICTS",
    "ClaimTables",
    "ClaimsError",
    "evaluate",
    "evaluate_claims",
    "load_claims",
    "read_tables",
    "tables_from_frames",
]

COLUMNS = list(contracts.CLAIMS_COLUMNS)
VERDICTS = (*CLAIM_VERDICTS, "not tested")
KIND_FUNCTIONS = {
    "compare": compare,
    "near_best": near_best,
    "diverges": diverges,
    "interaction": interaction,
}
SPECIAL = CHECKS  # the special checks by name, as the claims schema lists them


def _metric_of(c: dict) -> str:
    if c["kind"] == "diverges":
        return "fraction diverged"
    if c["kind"] == "interaction":
        return f"difference of two levels' effects on {_metric_label(c)}"
    if c["kind"] == "special":
        if c["check"] == "second_order_at_scale":
            at, budget = fmt(c["at"]), fmt(c["budget"])
            return f"Newton {c['quantity']} at {at} parameters / budget {budget}"
        return CHECK_METRICS[c["check"]]
    return _metric_label(c)


# The test of each kind and check, for claims that were not tested (their result names none).
KIND_TESTS = {
    "near_best": "noninferiority",
    "diverges": "threshold",
    "early_stopping_near_minimum": "equivalence",
    "second_order_at_scale": "threshold",
    "pathology_exponent": "equivalence",
    "pathology_exponent_gap": "threshold",
}


def _test_of(c: dict, result: dict) -> str:
    if result.get("estimate") is not None:
        return result["test"]
    return KIND_TESTS.get(c.get("check", c["kind"]), c.get("test", "difference"))


def _direction(c: dict, test: str) -> str:
    expect = c.get("expect", "higher")
    return {
        "difference": expect,
        "equivalence": "within ±margin",
        "noninferiority": f"not {'lower' if expect == 'higher' else 'higher'} by the margin",
        "threshold": f"{'above' if expect == 'higher' else 'below'} the margin",
    }[test]


def _measure(claims: list[dict], t: ClaimTables) -> list[dict]:
    out = []
    for c in claims:
        if c["kind"] == "special":
            out.append(CHECKS[c["check"]](t, c))
        else:
            out.append(KIND_FUNCTIONS[c["kind"]](t, c))
    return out


def _guarded(verdict: str, guard: dict | None) -> tuple[str, str, str]:
    """A supported claim whose guard metric got meaningfully worse is not supported: contradicted
    when the guard's whole interval lies beyond its margin, inconclusive when it may. Returns
    the verdict, the guard's text and, when the guard decided the verdict, why."""
    if guard is None:
        return verdict, "", ""
    sign = 1.0 if guard.get("expect", "higher") == "higher" else -1.0
    lo, hi = sorted((sign * guard["lo"], sign * guard["hi"]))
    text = f"; {guard['text']} (margin {fmt(guard['margin'])} {guard['unit']})"
    if verdict != "supported":
        return verdict, text, ""
    if math.isfinite(lo) and lo >= -guard["margin"]:
        return verdict, text + ", kept", ""
    if math.isfinite(hi) and hi < -guard["margin"]:
        why = f"guard failed: {guard['metric']} lost beyond its margin"
        return "contradicted", text + ", lost beyond the margin", why
    why = f"guard failed: {guard['metric']} may be lost beyond its margin"
    return "inconclusive", text + ", may be lost beyond the margin", why


def verdict_reason(verdict: str, est, p_adjusted: float, guard_reason: str) -> str:
    """Why an undecided claim is undecided, in words the report can print as they are: its guard
    failed, its p did not survive the correction, or its interval is too wide for its margin."""
    if guard_reason:
        return guard_reason
    if verdict == "not tested":
        return "not tested"
    if verdict != "inconclusive":
        return ""
    if est is None or not math.isfinite(est.effect):
        return "no estimate"
    if math.isfinite(est.p) and est.p < ALPHA <= p_adjusted:
        return "not significant after the correction"
    return "interval too wide for the margin"


# The keys that make two claims the same statistical test; a guard, a sentence or a margin
# reason changes the verdict's reading, not the p-value. The margin enters the p-value of every
# test but a plain difference.
TEST_KEYS = (
    "kind", "check", "ablation", "reference", "variant", "variants", "metric", "source",
    "at_epoch", "reach", "where", "where_not", "test", "combine", "among", "quantity", "at",
    "effects", "lr_above",
)  # fmt: skip


def test_key(c: dict) -> str:
    """Claims with the same key share one test and so one p-value: the correction counts it once."""
    keys = TEST_KEYS
    if not (c.get("kind") == "compare" and c.get("test", "difference") == "difference"):
        keys = (*keys, "margin")
    return repr(tuple((k, repr(c.get(k))) for k in keys))


def adjust_shared(claims: list[dict], pvalues: list[float]) -> tuple[list[float], list[str]]:
    """Benjamini–Hochberg over the ledger's distinct tests: claims that share a test
    (:func:`test_key`) enter the family once and get the same adjusted p. Returns the adjusted p
    of every claim and, for each, the ids of the other claims sharing its test."""
    keys = [test_key(c) for c in claims]
    first: dict[str, float] = {}
    for key, p in zip(keys, pvalues, strict=True):
        first.setdefault(key, p)
    distinct = list(first)
    adjusted = dict(zip(distinct, adjust([first[k] for k in distinct]), strict=True))
    shared = [
        ", ".join(o["id"] for o, ko in zip(claims, keys, strict=True) if ko == k and o is not c)
        for c, k in zip(claims, keys, strict=True)
    ]
    return [float(adjusted[k]) for k in keys], shared


def evaluate(claims: list[dict], t: ClaimTables) -> pd.DataFrame:
    """Every claim measured, its p adjusted over the ledger, judged by the one rule."""
    results = _measure(claims, t)
    p_adjusted, shared = adjust_shared(
        claims, [r["estimate"].p if r["estimate"] else NAN for r in results]
    )
    rows = []
    for c, r, p_adj, sharing in zip(claims, results, p_adjusted, shared, strict=True):
        test, est, margin = _test_of(c, r), r["estimate"], float(c["margin"])
        expect = c.get("expect", "higher")
        if est is None:
            verdict, guard_text, guard_reason = "not tested", "", ""
            shown = (NAN, NAN, NAN, NAN, NAN, 0)
        else:
            log = r.get("log", False)
            judged_margin = math.log(margin) if log else margin
            verdict, guard_text, guard_reason = _guarded(
                judge(est, p_adj, judged_margin, expect, test), r.get("guard")
            )
            mde = detectable(est.n, est.sd)
            back = math.exp if log else float
            shown = (*(back(v) for v in (est.effect, est.lo, est.hi, mde)), est.p, est.n)
        ablation = c.get("ablation")
        effect, lo, hi, mde, p, n = shown
        rows.append(
            {
                "id": c["id"],
                "claim": c["claim"],
                "ablation": ", ".join(ablation) if isinstance(ablation, list) else ablation or "",
                "metric": _metric_of(c),
                "unit": c["unit"],
                "direction": _direction(c, test),
                "test": test,
                "margin": margin,
                "effect": effect,
                "lo": lo,
                "hi": hi,
                "p": p,
                "p_adjusted": p_adj,
                "detectable_effect": mde,
                "seeds": n,
                "verdict": verdict,
                "figure": c.get("figure", ""),
                "margin_reason": c.get("margin_reason", ""),
                "detail": r["detail"] + guard_text,
                "verdict_reason": verdict_reason(verdict, est, p_adj, guard_reason),
                "shares_test_with": sharing,
                "extrapolated": bool(r.get("extrapolated", False)),
                "basis": r.get("basis", "measured" if est is not None else ""),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def evaluate_claims(claims_path: Path, tables_dir: Path) -> pd.DataFrame:
    """Evaluate the claims file against the tables in ``tables_dir`` (study.analysis.tables)."""
    return evaluate(load_claims(claims_path), read_tables(tables_dir))
