"""The study's report: a short paper rendered from the tables, figures and claims of one scale.

Writes ``<out>/report.html`` (self-contained: CSS inline, figures as base64 data URIs, no external
requests, opens from disk), ``<out>/report.md`` (for a code host: figures copied beside it into
``<out>/figures/<ablation>/`` and LaTeX tables into ``<out>/tables/``) and ``<out>/runs.csv`` (one
row per run with its outcome, config hash and commit, to check a rerun value for value). Every
statement about the results is generated from the numbers; the templates only arrange them. The
report reads files only: it draws nothing and imports no plotting.

``<out>`` is ``paper/`` for the default scale and ``results/<scale>/paper/`` for any other
(:func:`study.paths.report_dir`), so a smoke run never replaces the paper.

Modules: :mod:`~study.report.formatting` (numbers and text), :mod:`~study.report.sections` (one
section per ablation), :mod:`~study.report.context` (the whole context, claims, provenance),
:mod:`~study.report.render` (templates and files), :mod:`~study.report.cli`.

Usage::

    python -m study.report --scale-dir results/default --ablations conf/ablation \\
        --claims conf/claims.yaml --out paper [--scale default]
"""

from study.report.cli import main
from study.report.context import ReportError, build_context
from study.report.formatting import (
    anchor,
    count,
    diff,
    duration,
    fmt,
    interval,
    md_escape,
    pct,
    value,
)
from study.report.render import render_report, write_report
from study.report.runs import run_commits, run_fingerprints, run_ledger

__all__ = [
    "ReportError",
    "anchor",
    "build_context",
    "count",
    "diff",
    "duration",
    "fmt",
    "interval",
    "main",
    "md_escape",
    "pct",
    "render_report",
    "run_commits",
    "run_fingerprints",
    "run_ledger",
    "value",
    "write_report",
]
