"""Output of the benchmark: one ``key value note`` line per figure, with the targets' verdicts."""

from __future__ import annotations

import math
import platform
import statistics
import subprocess

TARGETS = {
    "ratio_a_b": (">=", 3.5),
    "ratio_a_c": (">=", 0.95),
    "ratio_a_plain_c": (">=", 0.95),
    "startup_ratio": ("<=", 1.3),
    "efficiency": (">=", 0.85),
    "slice_efficiency": (">=", 0.85),
    "eval_share:slice": ("<=", 0.10),
    "plan_s": ("<=", 8.0),
    "dry_run_s": ("<=", 5.0),
    "eval_share:all": ("<=", 0.10),
}


class Report:
    """Collects the figures and prints each as ``key value note`` (one line, parseable)."""

    def __init__(self):
        self.figures: dict[str, float] = {}

    def add(self, key: str, value: float, note: str = "") -> float:
        self.figures[key] = value
        verdict = ""
        if key in TARGETS:
            op, bound = TARGETS[key]
            held = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
            verdict = f"target {op} {bound:g}: {'PASS' if held else 'MISS'}"
            note = f"{note}; {verdict}" if note else verdict
        print(f"{key:<34} {fmt(value):>12}  {note}".rstrip(), flush=True)
        return value

    def section(self, title: str) -> None:
        print(f"\n# {title}", flush=True)


def fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "nan"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4f}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def round_ratios(numerator: list[float], denominator: list[float]) -> list[float]:
    """Each round's numerator / denominator (the two lists must pair round for round)."""
    return [n / d for n, d in zip(numerator, denominator, strict=True)]


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator / denominator of the same round: two loops timed one right
    after the other share the machine's state of that moment, which a ratio of two medians,
    each over all rounds, does not pair."""
    return median(round_ratios(numerator, denominator))


def ratio_quartiles(numerator: list[float], denominator: list[float]) -> str:
    """The first and third quartile of the rounds' ratios, as text: the spread a reader weighs
    the median against."""
    ratios = round_ratios(numerator, denominator)
    if len(ratios) < 2:
        return "one round"
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"rounds' quartiles {q1:.3f}-{q3:.3f}"


def cpu_name() -> str:
    """lscpu's model name (the processor as the cloud or the vendor calls it)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
