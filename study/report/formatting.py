"""How the report writes numbers and names: three significant digits, accuracies as percentages,
differences of accuracies in percentage points, and text made safe for Markdown and HTML ids."""

from __future__ import annotations

import math
import re
from typing import Any

from study.analysis.stats import fmt

__all__ = [
    "VERDICT_CLASS",
    "anchor",
    "count",
    "diff",
    "duration",
    "fmt",
    "interval",
    "is_accuracy",
    "md_escape",
    "pct",
    "signed",
    "value",
]

# Verdict words of the tables (better/worse) and of the claims ledger, mapped to a CSS class.
VERDICT_CLASS = {
    "better": "good",
    "supported": "good",
    "worse": "bad",
    "contradicted": "bad",
    "inconclusive": "neutral",
    "no meaningful effect": "neutral",
    "equivalent": "neutral",
    "not equivalent": "neutral",
    "not tested": "muted",
    "not evaluated": "muted",
}


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _finite(x: Any) -> bool:
    return math.isfinite(_num(x))


def pct(x: Any) -> str:
    """A fraction as a percentage: 0.8512 → '85.1%'."""
    return f"{fmt(100 * _num(x))}%" if _finite(x) else "n/a"


def signed(text: str, x: float) -> str:
    return f"+{text}" if _finite(x) and x > 0 else text


def is_accuracy(metric: str) -> bool:
    return "acc" in str(metric)


def value(x: Any, metric: str) -> str:
    """A metric value: accuracies as percentages, accuracy gaps (train − test) in percentage
    points, everything else to 3 significant digits."""
    if is_accuracy(metric) and str(metric).startswith("gap"):
        return f"{fmt(100 * _num(x))} pp" if _finite(x) else "n/a"
    return pct(x) if is_accuracy(metric) else fmt(_num(x))


def diff(x: Any, metric: str) -> str:
    """A difference of a metric: percentage points for accuracies, signed."""
    x = _num(x)
    if not math.isfinite(x):
        return "n/a"
    return signed(f"{fmt(100 * x)} pp", x) if is_accuracy(metric) else signed(fmt(x), x)


def interval(lo: Any, hi: Any, metric: str, as_diff: bool = False) -> str:
    """'[lo, hi]' in the units of ``value``/``diff``; empty when the interval is unknown."""
    if not (_finite(lo) and _finite(hi)):
        return ""
    f = (lambda v: diff(v, metric)) if as_diff else (lambda v: value(v, metric))
    return f"[{f(lo)}, {f(hi)}]"


def count(x: Any) -> str:
    """An integer-valued number (epochs, seeds) without decimals."""
    x = _num(x)
    return str(int(x)) if math.isfinite(x) and x.is_integer() else fmt(x)


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{fmt(seconds)} s"
    if seconds < 7200:
        return f"{fmt(seconds / 60)} min"
    return f"{fmt(seconds / 3600)} h"


def anchor(*parts: str) -> str:
    """An HTML id from names (which are slugs, but the report must not trust that)."""
    return "-".join(re.sub(r"[^a-z0-9_.-]+", "-", str(p).lower()).strip("-") for p in parts)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def md_escape(text: Any) -> str:
    """Text safe in Markdown (tables included): markup characters escaped, HTML as entities."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")
