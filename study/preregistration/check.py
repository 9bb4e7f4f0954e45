"""A finished study held against its pre-registration record.

A claim is confirmatory only when its test keys, the ablation files it depends on and the scale's
settings have the digests the record gave them, and its runs used exactly the record's seeds; and
the record itself must have been committed before the commit the runs came from (an ancestor, not
the same commit). Anything else is named, claim by claim, and the report calls the study
exploratory.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import yaml

from study.analysis.ledger.claims_file import load_claims
from study.planning.ablation import load_ablations
from study.preregistration.record import RECORD, ablations_of, claim_digest, digest


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None


def record_commit(repo: Path, record: Path) -> str | None:
    """The commit that last changed the record, or None if it is not committed as it is."""
    rel = record.resolve().relative_to(repo.resolve())
    changed = _git(repo, "status", "--porcelain", "--", str(rel))
    if changed is None or changed.returncode != 0 or changed.stdout.strip():
        return None
    done = _git(repo, "log", "-1", "--format=%H", "--", str(rel))
    return done.stdout.strip() or None if done and done.returncode == 0 else None


def committed_before(repo: Path, record_at: str, runs_at: str) -> bool:
    if record_at == runs_at:
        return False
    done = _git(repo, "merge-base", "--is-ancestor", record_at, runs_at)
    return done is not None and done.returncode == 0


def mismatches(record: dict, claims: list[dict], ablation_dir: Path, runs: pd.DataFrame) -> list:
    """(claim id, reason) for every claim whose inputs or runs differ from the record."""
    ablations = load_ablations(ablation_dir)
    recorded = {c["id"]: c for c in record.get("claims", [])}
    scale_file = Path("conf/scale") / f"{record.get('scale', 'default')}.yaml"
    scale_digest = digest(scale_file.read_bytes()) if scale_file.exists() else None
    out = []
    for c in claims:
        r = recorded.get(c["id"])
        if r is None:
            out.append((c["id"], "not in the record (added after it)"))
            continue
        if claim_digest(c) != r["digest"]:
            out.append((c["id"], "its test keys changed after the record"))
            continue
        if r.get("inputs_scale") != scale_digest:
            out.append((c["id"], f"{scale_file} changed after the record"))
            continue
        now = {n: digest(ablations[n].path.read_bytes()) for n in ablations_of(c, ablations)}
        changed = sorted(
            n
            for n in set(now) | set(r.get("inputs", {}))
            if now.get(n) != r.get("inputs", {}).get(n)
        )
        if changed:
            out.append((c["id"], f"ablation file(s) {', '.join(changed)} changed after the record"))
            continue
        bad = _seed_mismatch(record, c.get("ablation"), runs)
        if bad:
            out.append((c["id"], bad))
    out += [
        (i, "in the record but no longer a claim")
        for i in recorded
        if i not in {c["id"] for c in claims}
    ]
    return out


def _seed_mismatch(record: dict, ablation: str | None, runs: pd.DataFrame) -> str:
    if not ablation or runs.empty or "ablation" not in runs:
        return ""
    planned = record.get("seeds", {}).get(ablation, {})
    have = (
        runs[runs["ablation"] == ablation]
        .groupby("variant")["seed"]
        .apply(lambda s: sorted(int(x) for x in s))
    )
    for variant, seeds in have.items():
        if sorted(planned.get(variant, [])) != seeds:
            return f"runs of {ablation}/{variant} used seeds other than the record's"
    return ""


def status(
    repo: Path,
    claims_path: Path,
    ablation_dir: Path,
    runs: pd.DataFrame,
    runs_commit: str | None,
    record_path: Path = RECORD,
) -> dict:
    """{"commit": the record's commit or None, "mismatched": [(claim id, reason), ...]}; the
    study is confirmatory when commit is set and nothing is mismatched."""
    path = record_path if record_path.is_absolute() else repo / record_path
    if not path.exists():
        return {
            "commit": None,
            "mismatched": [("*", f"no pre-registration record ({record_path})")],
        }
    record = yaml.safe_load(path.read_text()) or {}
    found = mismatches(record, load_claims(claims_path), ablation_dir, runs)
    commit = record_commit(repo, path)
    if commit is None:
        found.insert(0, ("*", f"{record_path} is not committed as it is"))
    elif runs_commit and not committed_before(repo, commit, runs_commit):
        found.insert(
            0,
            (
                "*",
                f"{record_path} was committed at {commit[:7]}, not before the runs' commit "
                f"{runs_commit[:7]}",
            ),
        )
        commit = None
    return {"commit": commit, "mismatched": found}
