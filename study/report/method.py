"""The Method section as it was run: each ablation's seeds per variant (some variants run more
than the file's ``seeds``), each tuned value the selection chose with its grid and whether it sits
on the grid's edge, and the places where the implementation departs from the papers it cites."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from study.paths import TEMPLATES, ScaleDir
from study.report.formatting import _finite, _num

# Beside the templates: the deviations are text of the paper, kept as data with their files.
DEVIATIONS = TEMPLATES / "deviations.yaml"


def seeds_used(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Seeds per variant as run (the summary's n_seeds): the common count, and the variants that
    ran another number, e.g. ``"3 (12: dropout, l2)"``."""
    counts = {r["variant"]: r["n"] for r in rows}
    if not counts:
        return {"text": "", "common": 0, "other": {}}
    common = Counter(counts.values()).most_common(1)[0][0]
    other: dict[int, list[str]] = {}
    for variant, n in counts.items():
        if n != common:
            other.setdefault(n, []).append(variant)
    extra = "; ".join(f"{n}: {', '.join(v)}" for n, v in sorted(other.items()))
    return {"text": f"{common}" + (f" ({extra})" if extra else ""), "common": common,
            "other": other}  # fmt: skip


def _on_edge(entry: dict[str, Any]) -> bool:
    """The selection's own edge flag; without one, whether the chosen value is the grid's smallest
    or largest point."""
    if "at_edge" in entry:
        return bool(entry["at_edge"])
    grid = [float(g) for g in entry.get("grid") or [] if _finite(g)]
    chosen = _num(entry.get("chosen", entry.get("lr")))
    return len(grid) > 1 and _finite(chosen) and chosen in (min(grid), max(grid))


def chosen_values(scale_dir: Path, ablation: Any) -> list[dict[str, Any]]:
    """Each tuned variant's chosen value (results/<scale>/selection/<ablation>.json), with the
    key it sets, its grid and whether it lies on the grid's edge."""
    path = ScaleDir(scale_dir).selection(ablation.name)
    if not path.is_file():
        return []
    try:
        selection = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for variant, entry in selection.items():
        if not isinstance(entry, dict):
            continue
        chosen = _num(entry.get("chosen", entry.get("lr")))
        out.append(
            {
                "variant": variant,
                "key": str(entry.get("key", "optim.lr")),
                # the value exactly as the runs used it (a grid point), not rounded for display
                "chosen": f"{chosen:g}" if _finite(chosen) else "none (every value diverged)",
                "grid": ", ".join(f"{_num(g):g}" for g in entry.get("grid") or []),
                "at_edge": _on_edge(entry),
                "range_end": entry.get("edge") == "range end",
                "metric": str(entry.get("metric", "")),
            }
        )
    return out


def method_line(section: dict[str, Any]) -> str:
    """One line of the main text's Method per ablation: variants, seeds as run, what was tuned."""
    seeds = section["seeds_used"]
    line = (
        f"{section['n_variants']} variants against {section['baseline']}, "
        f"{seeds['text'] or section['seeds']} seeds per variant"
    )
    chosen = section["chosen"]
    if chosen:
        keys = ", ".join(dict.fromkeys(c["key"] for c in chosen))
        edge = sum(c["at_edge"] for c in chosen)
        line += f"; {keys} tuned per variant on the validation split"
        ends = [c for c in chosen if c.get("range_end")]
        if edge:
            line += f" ({edge} of {len(chosen)} chosen values on the edge of their grid)"
        elif chosen:
            line += " (every chosen value inside its grid"
            line += "".join(
                f"; {c['variant']}'s {c['key']} at 0, the end of its range" for c in ends
            )
            line += ")"
    return line + "."


def deviations(path: Path = DEVIATIONS) -> list[dict[str, str]]:
    """The deviations file's entries (technique, cites, file, symbol, departure, reason)."""
    if not Path(path).is_file():
        return []
    return list((yaml.safe_load(Path(path).read_text()) or {}).get("deviations") or [])


def overrides_as_used(variants: list[dict[str, str]], chosen: list[dict[str, Any]]) -> list[dict]:
    """Each variant's overrides with a tuned setting's file value (a grid's middle, say)
    replaced by the value the tuning chose and the runs used, marked as tuned."""
    by_variant = {c["variant"]: c for c in chosen}
    out = []
    for v in variants:
        tuned = by_variant.get(v["variant"])
        if tuned is None:
            out.append(v)
            continue
        key = tuned["key"]
        words = [w for w in v["overrides"].split() if not w.startswith(f"{key}=")]
        if v["overrides"] == "(the common settings)":
            words = []
        words.append(f"{key}={tuned['chosen']} (tuned)")
        out.append({**v, "overrides": " ".join(words)})
    return out
