"""Learning-rate selection for ablations with a ``tune`` block.

Every variant gets the same budget: one seed at each point of a log-spaced grid around its own
usual learning rate. The point with the best validation metric wins (the test split is never
looked at); the final runs then use that rate with every seed. A diverged point is a result of the
search (too high a rate), not an error, and a winner on the edge of the grid is flagged: the true
optimum may lie outside it.

``python -m study.planning.tuning --metric val_loss --out <selection.json> <metrics.json>...``
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

from study.outputs import write_text


class TuningError(ValueError):
    pass


def read_point(path: Path) -> dict:
    try:
        m = json.loads(Path(path).read_text())
        return {
            "variant": m["variant"],
            "lr": float(m["lr"]),
            "status": m["status"],
            "val_loss": m.get("val_loss"),
            "val_acc": m.get("val_acc"),
        }
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TuningError(
            f"{path}: unreadable tuning result ({type(err).__name__}); delete its folder and rerun"
        ) from None


def score(point: dict, metric: str) -> float:
    """Lower is better; a diverged or non-finite point ranks last."""
    value = point.get(metric)
    if point["status"] == "diverged" or value is None or not math.isfinite(value):
        return math.inf
    return value if metric.endswith("loss") else -value


def select(points: list[dict], metric: str = "val_loss") -> dict[str, dict]:
    by_variant: dict[str, list[dict]] = {}
    for p in points:
        by_variant.setdefault(p["variant"], []).append(p)
    selection = {}
    for variant, pts in by_variant.items():
        pts = sorted(pts, key=lambda p: p["lr"])
        best = min(pts, key=lambda p: (score(p, metric), p["lr"]))
        usable = math.isfinite(score(best, metric))
        selection[variant] = {
            "lr": best["lr"] if usable else pts[0]["lr"],
            "metric": metric,
            "value": best.get(metric) if usable else None,
            "at_edge": usable and best["lr"] in (pts[0]["lr"], pts[-1]["lr"]),
            "all_diverged": not usable,
            "grid": [p["lr"] for p in pts],
            "diverged": [p["lr"] for p in pts if p["status"] == "diverged"],
        }
    return selection


def selection_csv(selection: dict[str, dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["variant", "lr", "metric", "value", "at_edge", "all_diverged", "n_diverged"])
    for variant, s in selection.items():
        writer.writerow(
            [
                variant,
                s["lr"],
                s["metric"],
                s["value"],
                s["at_edge"],
                s["all_diverged"],
                len(s["diverged"]),
            ]
        )
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="val_loss", choices=("val_loss", "val_acc"))
    parser.add_argument("--out", required=True, type=Path, help="selection .json (a .csv beside)")
    parser.add_argument("metrics", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        selection = select([read_point(p) for p in args.metrics], args.metric)
    except TuningError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    write_text(args.out.with_suffix(".csv"), selection_csv(selection))
    write_text(args.out, json.dumps(selection, indent=1) + "\n")
    for variant, s in selection.items():
        note = " (all diverged)" if s["all_diverged"] else " (edge of grid)" if s["at_edge"] else ""
        print(f"{variant}: lr {s['lr']:g}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
