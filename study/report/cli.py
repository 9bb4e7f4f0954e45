"""``python -m study.report``: render the report of one scale (see :mod:`study.report`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study import provenance
from study.paths import TEMPLATES
from study.report.context import COURSE_ORDER, ReportError, build_context
from study.report.ledger import write_claims_ledger
from study.report.regimes import add_regimes
from study.report.render import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m study.report", description="Render the report of one scale."
    )
    parser.add_argument("--scale-dir", required=True, type=Path, help="results/<scale>")
    parser.add_argument("--ablations", default=Path("conf/ablation"), type=Path)
    parser.add_argument("--claims", type=Path, help="conf/claims.yaml")
    parser.add_argument("--out", default=Path("paper"), type=Path)
    parser.add_argument("--scale", help="scale name shown in the report (default: folder name)")
    parser.add_argument("--templates", default=TEMPLATES, type=Path)
    parser.add_argument(
        "--order",
        default=",".join(COURSE_ORDER),
        help="ablations in the paper's order, comma-separated (the others follow by name)",
    )
    parser.add_argument("--no-pdf", action="store_true", help="skip report.pdf (WeasyPrint)")
    args = parser.parse_args(argv)
    from study.planning.ablation import load_ablations, runs_here

    scale = args.scale or Path(args.scale_dir).name
    try:
        every = load_ablations(args.ablations)
        # an ablation restricted to other scales (its `scales`) has no section, only a limitation
        ablations = {n: a for n, a in every.items() if runs_here(a, scale)}
        elsewhere = [a for n, a in every.items() if n not in ablations]
        # The tree's state apart from the report's own folder: its outputs are tracked files in
        # paper/, which Snakemake deletes before the job and the job then writes.
        out = Path(args.out).resolve()
        here = Path.cwd().resolve()
        git = provenance.git_state(
            here, exclude=(str(out.relative_to(here)),) if out.is_relative_to(here) else ()
        )
        write_claims_ledger(args.scale_dir, args.out)  # before the context: it shows the plot
        context = build_context(
            args.scale_dir,
            ablations,
            args.claims,
            args.scale,
            order=tuple(n for n in args.order.split(",") if n),
            git=git,
            elsewhere=elsewhere,
        )
        add_regimes(context, here)  # the other regime's committed verdicts (report/regimes.py)
        write_report(context, args.out, args.templates, pdf=not args.no_pdf)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out / 'report.html'}, report.md and report.pdf beside it")
    return 0
