"""Hyperparameter selection for ablations with a ``tune`` block (see study/planning/search.py).

Every searched variant gets the same treatment: its grid of values of one config key (a learning
rate, a regularizer's strength), each point trained on the tuning seeds. A point's score is its
validation metric averaged over the last ``--last`` epochs and then over the seeds: the last
epoch alone of one seed fluctuates by more than the margin between neighbouring grid points. The
best score wins (the test split is never looked at); the final runs use the winner with seeds
the tuning never saw. A point that diverged on any seed ranks last (a result of the search: too
strong a setting, not an error), and a winner on the edge of the grid is flagged (``at_edge``,
``edge``: which end, in the .json and its table, beside the ``grid``) and warned about in one line
on stderr: the true optimum may lie outside it.

``python -m study.planning.tuning --metric val_loss --last 3 [--key VARIANT=KEY ...]
--out <selection.json> <metrics.json>...`` (the history.csv beside each metrics.json is read too;
a variant without ``--key`` is a learning-rate search, ``optim.lr``).
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

SELECTION_FIELDS = (
    "variant", "key", "grid", "chosen", "lr", "metric", "value", "at_edge", "edge",
    "all_diverged", "n_diverged", "n_seeds", "last_epochs",
)  # fmt: skip


class TuningError(ValueError):
    pass


def _config_value(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def _last_mean(history: Path, column: str, last: int) -> float | None:
    """Mean of ``column`` over the last ``last`` epochs of a history.csv (None if none finite)."""
    with open(history, newline="") as f:
        values = [row.get(column, "") for row in csv.DictReader(f)]
    tail = [float(v) for v in values[-last:] if v not in ("", None)]
    if not tail or not all(math.isfinite(v) for v in tail):
        return None
    return sum(tail) / len(tail)


def read_point(path: Path, keys: dict[str, str] | None = None, last: int = 3) -> dict:
    """One tuning run: its variant, searched value (of ``keys[variant]``, default optim.lr),
    seed, status and validation scores averaged over its last ``last`` epochs."""
    path = Path(path)
    try:
        m = json.loads(path.read_text())
        key = (keys or {}).get(m["variant"], "optim.lr")
        history = path.parent / "history.csv"
        return {
            "variant": m["variant"],
            "key": key,
            "value": _config_value(m["config"], key),
            "seed": m.get("seed", 0),
            "status": m["status"],
            "val_loss": _last_mean(history, "val_loss", last),
            "val_acc": _last_mean(history, "val_acc", last),
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


def _grid_scores(points: list[dict], metric: str) -> dict[float, tuple[float, int]]:
    """Grid value → (score averaged over seeds, seeds); inf when any seed diverged."""
    by_value: dict[float, list[float]] = {}
    for p in points:
        by_value.setdefault(p["value"], []).append(score(p, metric))
    return {v: (sum(s) / len(s), len(s)) for v, s in sorted(by_value.items())}


def select(points: list[dict], metric: str = "val_loss") -> dict[str, dict]:
    by_variant: dict[str, list[dict]] = {}
    for p in points:
        by_variant.setdefault(p["variant"], []).append(p)
    selection = {}
    for variant, pts in by_variant.items():
        key = pts[0].get("key", "optim.lr")
        grid = _grid_scores(pts, metric)
        values = list(grid)
        best = min(values, key=lambda v: (grid[v][0], v))
        usable = math.isfinite(grid[best][0])
        chosen = best if usable else values[0]
        raw = grid[best][0] if usable else None
        selection[variant] = {
            "key": key,
            "chosen": chosen,
            "lr": chosen if key == "optim.lr" else None,
            "metric": metric,
            "value": (raw if metric.endswith("loss") else -raw) if raw is not None else None,
            "at_edge": usable and best in (values[0], values[-1]) and not _range_end(values, best),
            "edge": _edge(values, best) if usable else "",
            "all_diverged": not usable,
            "grid": values,
            "diverged": [v for v in values if not math.isfinite(grid[v][0])],
            "n_seeds": max(n for _, n in grid.values()),
        }
    return selection


def _range_end(values: list[float], best: float) -> bool:
    """A winner at 0, the grid's lowest point, is the end of the value's own range (the setting
    off, or its smallest form: a shift of 0 pixels): no grid can extend past it, so it is not an
    edge that hides the optimum."""
    return best == values[0] == 0 and len(values) > 1


def _edge(values: list[float], best: float) -> str:
    """Which end of the grid the winner sits on ('lowest', 'highest', or 'range end' for 0, the
    end of the value's own range), or '' when inside."""
    if _range_end(values, best):
        return "range end"
    if best == values[-1] and len(values) > 1:
        return "highest"
    return "lowest" if best == values[0] else ""


def edge_warning(variant: str, s: dict) -> str | None:
    """One line for a winner on the edge of its grid: the optimum may lie outside it."""
    if not s["at_edge"]:
        return None
    grid = ", ".join(f"{v:g}" for v in s["grid"])
    return (
        f"warning: {variant}: {s['key']} chosen at {s['chosen']:g}, the {s['edge']} value of its "
        f"grid [{grid}]: the optimum may lie outside; extend the grid past it in the tune block"
    )


def selection_csv(selection: dict[str, dict], last: int | None = None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(SELECTION_FIELDS)
    for variant, s in selection.items():
        row = {**s, "variant": variant, "n_diverged": len(s["diverged"]), "last_epochs": last}
        row["grid"] = " ".join(f"{v:g}" for v in s["grid"])
        writer.writerow(["" if row.get(f) is None else row[f] for f in SELECTION_FIELDS])
    return buf.getvalue()


def _keys(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        variant, sep, key = pair.partition("=")
        if not sep or not key:
            raise TuningError(f"--key {pair!r}: expected VARIANT=KEY, e.g. dropout=model.dropout")
        out[variant] = key
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="val_loss", choices=("val_loss", "val_acc"))
    parser.add_argument("--last", default=3, type=int, help="epochs averaged per run")
    parser.add_argument("--key", action="append", default=[], help="VARIANT=config key searched")
    parser.add_argument("--out", required=True, type=Path, help="selection .json (a .csv beside)")
    parser.add_argument("metrics", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        keys = _keys(args.key)
        points = [read_point(path, keys, args.last) for path in args.metrics]
        selection = select(points, args.metric)
    except TuningError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for variant in selection:
        selection[variant]["last_epochs"] = args.last
    write_text(args.out.with_suffix(".csv"), selection_csv(selection, args.last))
    write_text(args.out, json.dumps(selection, indent=1) + "\n")
    for variant, s in selection.items():
        note = " (all diverged)" if s["all_diverged"] else " (edge of grid)" if s["at_edge"] else ""
        print(f"{variant}: {s['key']} {s['chosen']:g}{note}")
        warning = edge_warning(variant, s)
        if warning:
            print(warning, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
