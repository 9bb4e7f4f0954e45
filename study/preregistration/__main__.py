"""python -m study.preregistration {power,record,check}: see docs/preregistration.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from study.config import ConfigError
from study.preregistration import check, record


def _pilots(values: list[str]) -> list[tuple[Path, str]]:
    out = []
    for v in values:
        path, _, source = v.partition("=")
        out.append((Path(path), source or path))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study.preregistration")
    parser.add_argument("action", choices=["power", "record", "check"])
    parser.add_argument("--claims", type=Path, default=Path("conf/claims.yaml"))
    parser.add_argument("--ablations", type=Path, default=Path("conf/ablation"))
    parser.add_argument("--scale", default="default")
    parser.add_argument(
        "--pilot",
        action="append",
        default=[],
        help="an exploration claims.csv, as PATH=SOURCE (SOURCE says which study it is)",
    )
    parser.add_argument("--runs", type=Path, help="runs.csv of the study to check")
    parser.add_argument("--out", type=Path, default=record.RECORD)
    args = parser.parse_args(argv)
    try:
        built = record.build(args.claims, args.ablations, args.scale, _pilots(args.pilot))
        if args.action == "power":
            print(power_table(built))
            return 0
        if args.action == "record":
            record.write(built, args.out)
            print(
                f"wrote {args.out}: {len(built['claims'])} claims, seeds from {built['seeds_from']}"
            )
            return 0
        runs = pd.read_csv(args.runs) if args.runs else pd.DataFrame()
        commit = str(runs["commit"].iloc[0]) if "commit" in runs and len(runs) else None
        st = check.status(Path.cwd(), args.claims, args.ablations, runs, commit, args.out)
        for cid, why in st["mismatched"]:
            print(f"{cid}: {why}")
        print(f"record commit: {st['commit']}; {len(st['mismatched'])} mismatch(es)")
        return 0 if st["commit"] and not st["mismatched"] else 1
    except (ConfigError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def power_table(built: dict) -> str:
    rows = []
    for c in built["claims"]:
        p = c["power"]
        rows.append(
            {
                "claim": c["id"],
                "test": c["test"],
                "margin": c["margin"],
                "pilot_sd": p.get("pilot_sd"),
                "pilot_seeds": p.get("pilot_seeds"),
                "needed": p.get("seeds_needed"),
                "planned": p.get("seeds_planned"),
                "detects": p.get("detectable_at_planned"),
                "powered": p.get("powered_at_margin"),
            }
        )
    return pd.DataFrame(rows).to_string(index=False)


if __name__ == "__main__":
    sys.exit(main())
