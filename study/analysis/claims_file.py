"""The claims file (conf/claims.yaml): reading it and checking every claim's keys.

The schema is documented at the top of conf/claims.yaml. A malformed claim is one
:class:`ClaimsError` line naming the file and the claim.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

COMMON = {"id", "claim", "kind", "figure", "note"}
# Per kind: (required keys, optional keys).
KINDS = {
    "compare": (
        {"ablation", "reference", "metric", "expect"},
        {"variant", "variants", "combine", "source", "at_epoch", "reach", "where", "where_not"},
    ),
    "near_best": (
        {"ablation", "variant", "metric", "expect", "tolerance"},
        {"among", "source", "at_epoch", "reach", "where", "where_not"},
    ),
    "diverges": (set(), {"ablation", "source", "lr_above", "min_fraction"}),
    "special": ({"check"}, set()),  # the check's own keys are listed in SPECIAL
}
SOURCES = ("runs", "history", "shift")
COMBINE = ("all", "any", "mean")
# Special checks, by name: (the metric shown in the ledger, required keys, optional keys).
SPECIAL: dict[str, tuple[str, set, set]] = {
    "early_stopping_near_minimum": (
        "best_epoch - val_loss argmin (epochs)",
        {"ablation", "variant", "reference"},
        {"tolerance"},
    ),
    "second_order_cost": (
        "iterations ratio (second/first order)",
        set(),
        {"file", "second_order", "ablation"},
    ),
}
ID = re.compile(r"[a-z0-9_.-]+")


class ClaimsError(ValueError):
    """A malformed claims file or claim input; one line naming the file and the claim."""


def load_claims(path: Path) -> list[dict]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ClaimsError(
            f"{path}: cannot read the claims file ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ClaimsError(f"{path}: expected a mapping with a 'claims' list")
    seen = set()
    for i, claim in enumerate(data["claims"]):
        where = f"{path}: claim #{i + 1}"
        if not isinstance(claim, dict):
            raise ClaimsError(f"{where} is not a mapping")
        cid = claim.get("id")
        if not isinstance(cid, str) or not ID.fullmatch(cid):
            raise ClaimsError(f"{where}: id {cid!r} must match [a-z0-9_.-]+")
        where = f"{path}: claim {cid}"
        if cid in seen:
            raise ClaimsError(f"{where}: duplicate id")
        seen.add(cid)
        _check_claim(claim, where)
    return data["claims"]


def _check_claim(c: dict, where: str) -> None:
    kind = c.get("kind")
    if kind not in KINDS:
        raise ClaimsError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(c.get("claim"), str):
        raise ClaimsError(f"{where}: 'claim' (the sentence being tested) is required")
    required, optional = KINDS[kind]
    if kind == "special":
        check = c.get("check")
        if check not in SPECIAL:
            raise ClaimsError(f"{where}: check {check!r} is not one of {', '.join(SPECIAL)}")
        required, optional = required | SPECIAL[check][1], SPECIAL[check][2]
    missing = sorted(required - c.keys())
    if missing:
        raise ClaimsError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(c.keys() - required - optional - COMMON)
    if unknown:
        raise ClaimsError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "expect" in c and c["expect"] not in ("higher", "lower"):
        raise ClaimsError(f"{where}: expect must be 'higher' or 'lower'")
    if kind == "compare" and ("variant" in c) == ("variants" in c):
        raise ClaimsError(f"{where}: give exactly one of 'variant' or 'variants'")
    if c.get("combine", "all") not in COMBINE:
        raise ClaimsError(f"{where}: combine must be one of {', '.join(COMBINE)}")
    sources = ("tuning", "runs") if kind == "diverges" else SOURCES
    if c.get("source", sources[0]) not in sources:
        raise ClaimsError(f"{where}: source must be one of {', '.join(sources)}")
    if "at_epoch" in c and "reach" in c:
        raise ClaimsError(f"{where}: give at most one of 'at_epoch' or 'reach'")
    if c.get("source") != "history" and ("at_epoch" in c or "reach" in c):
        raise ClaimsError(f"{where}: at_epoch and reach need source: history")
    if c.get("source") == "history" and "at_epoch" not in c and "reach" not in c:
        raise ClaimsError(f"{where}: source: history needs at_epoch or reach")
