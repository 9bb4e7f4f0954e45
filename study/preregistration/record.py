"""The pre-registration record (conf/preregistration.yaml), written before the confirmatory study.

For every claim: its sentence, metric, unit, direction, margin with its reason, test, the protocol
of its ablation (common settings, epochs, tuning), the seeds its variants run, the exploration's
spread and the seeds 80% power at the margin needs, and digests of what the claim depends on
(its own test keys, its ablation files, the scale's settings). ``python -m study.preregistration
record`` writes it; it is committed before the runs, and the report holds the finished study
against it (study.preregistration.check).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd

from study.analysis.ledger.claims_file import load_claims
from study.analysis.ledger.evaluate import KIND_TESTS, _direction, _metric_of
from study.outputs import write_text
from study.planning.ablation import Ablation, load_ablations, plan
from study.preregistration.power import detectable_at, plan_claim

RECORD = Path("conf/preregistration.yaml")
# Keys that explain a claim without changing its test: editing them leaves the record valid.
COMMENTARY = frozenset({"claim", "note", "history", "lecture_lines", "figure", "margin_reason"})


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def claim_digest(claim: dict) -> str:
    """Digest of what decides a claim's verdict: every key but its commentary."""
    test = {k: v for k, v in claim.items() if k not in COMMENTARY}
    return digest(json.dumps(test, sort_keys=True, default=str).encode())


def test_of(claim: dict) -> str:
    return KIND_TESTS.get(claim.get("check", claim["kind"]), claim.get("test", "difference"))


def ablations_of(claim: dict, ablations: dict[str, Ablation]) -> list[str]:
    """The ablation a claim reads and those its runs take tuned settings from."""
    todo, found = [claim["ablation"]] if claim.get("ablation") else [], []
    while todo:
        name = todo.pop()
        if name in found or name not in ablations:
            continue
        found.append(name)
        source = ablations[name].tuned_from
        if source:
            todo.append(source["ablation"])
    return found


def protocol(a: Ablation) -> dict:
    out: dict = {"common": list(a.common)}
    if a.tune:
        out["tune"] = {k: a.tune[k] for k in ("metric", "seeds", "last") if k in a.tune}
        out["tune"]["searched"] = sorted(a.tune.get("searches", {}))
    if a.tuned_from:
        out["tuned_from"] = dict(a.tuned_from)
    return out


def _pilot_rows(pilot: Path | None) -> dict[str, pd.Series]:
    if pilot is None or not pilot.exists():
        return {}
    df = pd.read_csv(pilot)
    return {r["id"]: r for _, r in df.iterrows()}


def build(
    claims_path: Path,
    ablation_dir: Path,
    scale: str,
    pilots: list[tuple[Path, str]],
) -> dict:
    """The record as a mapping; ``pilots`` are exploration claims.csv files with their source
    (the first that has a claim gives its spread)."""
    claims = load_claims(claims_path)
    ablations = load_ablations(ablation_dir)
    planned = plan(ablation_dir, scale)
    seeds: dict[str, dict[str, list[int]]] = {}
    for r in planned.runs:
        seeds.setdefault(r.ablation, {}).setdefault(r.variant, []).append(r.seed)
    scale_file = Path("conf/scale") / f"{scale}.yaml"
    rows = [(_pilot_rows(p), source) for p, source in pilots]
    record_claims = []
    for c in claims:
        test, margin = test_of(c), float(c["margin"])
        row, source = next(((r[c["id"]], s) for r, s in rows if c["id"] in r), (None, None))
        # seeds are powered only where seeds are the replicates: a claim on an ablation's runs
        power = plan_claim(row if c.get("ablation") else None, test, margin)
        names = ablations_of(c, ablations)
        entry = {
            "id": c["id"],
            "claim": " ".join(str(c["claim"]).split()),
            "kind": c["kind"] if c["kind"] != "special" else f"special/{c['check']}",
            "test": test,
            "metric": _metric_of(c),
            "unit": c["unit"],
            "direction": _direction(c, test),
            "margin": margin,
            "margin_reason": c["margin_reason"],
            "digest": claim_digest(c),
        }
        if c.get("ablation"):
            a = c["ablation"]
            entry["ablation"] = a
            entry["protocol"] = protocol(ablations[a]) if a in ablations else "not planned"
            entry["seeds"] = {v: len(s) for v, s in seeds.get(a, {}).items()}
            entry["inputs"] = {n: digest(ablations[n].path.read_bytes()) for n in names}
        entry["inputs_scale"] = digest(scale_file.read_bytes())
        entry["power"] = _power_entry(c, power, source, entry.get("seeds", {}))
        record_claims.append(entry)
    first = sorted({s for v in seeds.values() for ss in v.values() for s in ss})
    return {
        "scale": scale,
        "seeds_from": first[0] if first else None,
        "seeds": seeds,
        "claims": record_claims,
    }


def _power_entry(c: dict, power: dict, source: str | None, seeds: dict[str, int]) -> dict:
    if power["pilot_sd"] is None:
        return {"design": "no paired pilot spread: powered by its own design (see its note)"}
    used = [seeds[v] for v in _claim_variants(c) if v in seeds]
    n = min(used) if used else 0
    det = detectable_at(n, power["planning_sd"]) if n else math.nan
    out = {**power, "pilot": source, "seeds_planned": n}
    out["detectable_at_planned"] = None if not math.isfinite(det) else float(f"{det:.4g}")
    need = power["seeds_needed"]
    out["powered_at_margin"] = bool(need is not None and n >= need)
    return out


def _claim_variants(c: dict) -> list[str]:
    """The variants whose seeds a claim's pairs use (compare, near_best, interaction, and the
    special checks that name a reference and a variant per setting)."""
    names = [c.get("reference"), c.get("variant")]
    names += c.get("variants", []) if isinstance(c.get("variants"), list) else []
    names += [v for pair in (c.get("effects") or {}).values() for v in pair]
    names += [
        c[k].get(r)
        for k in ("small", "large")
        if isinstance(c.get(k), dict)
        for r in ("reference", "variant")
    ]
    return [v for v in names if v]


def write(record: dict, out: Path = RECORD) -> None:
    import yaml

    head = (
        "# The pre-registration record of the confirmatory study, written by\n"
        "# `python -m study.preregistration record` and committed before its runs.\n"
        "# Do not edit by hand: a claim whose test keys, ablation file or scale settings differ\n"
        "# from their digests here is reported as not pre-registered (study.preregistration).\n"
    )
    write_text(
        out,
        head
        + yaml.safe_dump(
            record, sort_keys=False, width=100, allow_unicode=True, default_flow_style=None
        ),
    )
