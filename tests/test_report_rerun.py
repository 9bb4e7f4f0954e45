"""The committed paper reproduces from its own commit: two of its runs, retrained at HEAD from
their ablation file, give its runs.csv's test accuracy and loss, value for value on a machine
with the committed runs' hardware fingerprint and within the stated cross-machine tolerance
(study.provenance.CROSS_MACHINE_TOLERANCE) on any other; their status and config hash are equal
everywhere. A committed runs.csv without a fingerprint column counts as another machine's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study.paths import STUDY_ROOT
from study.provenance import CROSS_MACHINE_TOLERANCE, hardware, rerun_differences

LEDGER = STUDY_ROOT / "paper" / "runs.csv"
REQUIRED = ("ablation", "variant", "seed", "test_acc", "test_loss", "config_hash", "commit")
# What a single run's numbers depend on besides the machine: a change here since the committed
# runs' commit means a rerun at HEAD cannot be expected to match.
RUN_INPUTS = ("study", "conf", "resources")


def read_ledger(path: Path) -> pd.DataFrame:
    text = {"ablation": str, "variant": str, "commit": str, "fingerprint": str, "status": str}
    ledger = pd.read_csv(path, dtype=text, float_precision="round_trip")
    missing = [c for c in REQUIRED if c not in ledger.columns]
    assert not missing, f"{path} lacks columns {missing}"
    return ledger


def _ledger() -> pd.DataFrame:
    if not LEDGER.is_file():
        pytest.skip(f"{LEDGER} does not exist yet: run the default study")
    ledger = read_ledger(LEDGER)
    if ledger.empty:
        pytest.skip(f"{LEDGER} has no rows yet: run the default study")
    return ledger


def _same_code(commit: str) -> bool:
    """Whether the run's inputs at HEAD are those of ``commit`` (then the run must match)."""
    done = subprocess.run(
        ["git", "-C", str(STUDY_ROOT), "diff", "--quiet", commit, "HEAD", "--", *RUN_INPUTS],
        capture_output=True,
    )
    return done.returncode == 0


def _cheapest(ledger: pd.DataFrame) -> pd.DataFrame:
    ok = ledger[ledger["status"] == "ok"] if "status" in ledger.columns else ledger
    by_cost = [c for c in ("epochs_run", "wall_s") if c in ok.columns]
    return ok.sort_values(by_cost).head(2) if by_cost else ok.head(2)


def _row(ledger: pd.DataFrame, key: tuple) -> dict:
    match = ledger[
        (ledger["ablation"] == key[0]) & (ledger["variant"] == key[1]) & (ledger["seed"] == key[2])
    ]
    row = match.iloc[0].to_dict()
    return {k: (None if not isinstance(v, str) and pd.isna(v) else v) for k, v in row.items()}


def _altered_copy(tmp_path: Path, key: tuple, fingerprint: str | None) -> Path:
    """A copy of the committed runs.csv with run ``key``'s test accuracy moved by 5 pp (beyond
    the tolerance) and, with ``fingerprint``, every run stamped with it (exact mode)."""
    copy = tmp_path / "runs.csv"
    shutil.copy(LEDGER, copy)
    ledger = read_ledger(copy)
    at = (ledger["ablation"] == key[0]) & (ledger["variant"] == key[1]) & (ledger["seed"] == key[2])
    ledger.loc[at, "test_acc"] = ledger.loc[at, "test_acc"] - 0.05
    if fingerprint is not None:
        ledger["fingerprint"] = fingerprint
    ledger.to_csv(copy, index=False)
    return copy


def _as_rerun(row: dict, fingerprint: str) -> dict:
    """A committed row as the metrics.json of a rerun that gave exactly its numbers."""
    return {**row, "hardware": {"fingerprint": fingerprint}}


@pytest.mark.parametrize("exact", [True, False], ids=["same fingerprint", "other fingerprint"])
def test_an_altered_committed_number_fails_the_rerun_check(tmp_path, exact):
    ledger = _ledger()
    here = hardware("cpu", 1)["fingerprint"]
    row = _row(ledger, tuple(_cheapest(ledger).iloc[0][["ablation", "variant", "seed"]]))
    key = (row["ablation"], row["variant"], row["seed"])
    rerun = _as_rerun(row, here if exact else "another CPU | AVX2 | OpenBLAS 0.3 | 1 thread")
    committed = {**row, "fingerprint": here} if exact else row
    assert rerun_differences(committed, rerun) == []
    altered = _row(read_ledger(_altered_copy(tmp_path, key, here if exact else None)), key)
    problems = rerun_differences(altered, rerun)
    assert len(problems) == 1 and problems[0].startswith("test_acc:"), problems
    assert ("same fingerprint" in problems[0]) is exact


def test_exact_mode_catches_what_the_tolerance_allows():
    here = hardware("cpu", 1)["fingerprint"]
    committed = {"status": "ok", "config_hash": "abc", "test_acc": 0.8485, "test_loss": 0.417}
    rerun = {**committed, "test_acc": 0.8485 + 1e-4, "hardware": {"fingerprint": here}}
    assert rerun_differences(committed, rerun) == []  # no committed fingerprint: tolerance
    assert rerun_differences({**committed, "fingerprint": here}, rerun) != []
    # The tolerance's own edge: just inside passes, just outside fails.
    kind, tolerance = CROSS_MACHINE_TOLERANCE["test_loss"]
    assert kind == "relative"
    inside = {**rerun, "test_acc": 0.8485, "test_loss": 0.417 * (1 + 0.9 * tolerance)}
    outside = {**inside, "test_loss": 0.417 * (1 + 1.1 * tolerance)}
    assert rerun_differences(committed, inside) == []
    assert rerun_differences(committed, outside) != []
    assert rerun_differences(committed, {**inside, "status": "diverged"}) != []


@pytest.mark.slow
def test_two_cheapest_runs_of_the_paper_rerun_value_for_value(tmp_path):
    from study.planning.ablation import plan

    ledger = _ledger()
    runs = {
        (r.ablation, r.variant, r.seed): r
        for r in plan(STUDY_ROOT / "conf/ablation", "default").runs
    }
    for row in _cheapest(ledger).itertuples():
        if not isinstance(row.commit, str) or bool(getattr(row, "dirty", False)):
            pytest.skip(f"run {row.ablation}/{row.variant}/seed{row.seed} came from a dirty tree")
        if not _same_code(row.commit):
            pytest.skip(f"{', '.join(RUN_INPUTS)} changed since {row.commit[:12]}: a rerun at "
                        "HEAD cannot be expected to match")  # fmt: skip
        run = runs[(row.ablation, row.variant, int(row.seed))]
        overrides = list(run.overrides)
        if run.tuned:
            overrides.append(f"optim.lr={float(row.lr)!r}")
        out = tmp_path / f"{row.ablation}-{row.variant}-{row.seed}"
        subprocess.run(
            [sys.executable, "-m", "study.train", *overrides, f"seed={row.seed}", "threads=1",
             f"run.out={out}", f"run.ablation={row.ablation}", f"run.variant={row.variant}",
             "run.verbose=false"],
            check=True, cwd=STUDY_ROOT, capture_output=True,
        )  # fmt: skip
        metrics = json.loads((Path(out) / "metrics.json").read_text())
        key = (row.ablation, row.variant, row.seed)
        assert rerun_differences(_row(ledger, key), metrics) == [], key
        # The same rerun against a committed number moved by 5 pp, in both modes.
        fingerprint = metrics["hardware"]["fingerprint"]
        for stamp in (fingerprint, None):
            altered = _row(read_ledger(_altered_copy(tmp_path, key, stamp)), key)
            assert rerun_differences(altered, metrics) != [], (key, stamp)
