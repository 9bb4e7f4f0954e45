"""The committed paper reproduces from its own commit: two of its runs, retrained at HEAD from
their ablation file, give its runs.csv's test accuracy and loss value for value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study.paths import STUDY_ROOT

LEDGER = STUDY_ROOT / "paper" / "runs.csv"
REQUIRED = ("ablation", "variant", "seed", "test_acc", "test_loss", "config_hash", "commit")


def _ledger() -> pd.DataFrame:
    if not LEDGER.is_file():
        pytest.skip(f"{LEDGER} does not exist yet: run the default study")
    ledger = pd.read_csv(
        LEDGER, dtype={"ablation": str, "variant": str, "commit": str}, float_precision="round_trip"
    )
    if ledger.empty:
        pytest.skip(f"{LEDGER} has no rows yet: run the default study")
    missing = [c for c in REQUIRED if c not in ledger.columns]
    assert not missing, f"{LEDGER} lacks columns {missing}"
    return ledger


def _same_code(commit: str) -> bool:
    """Whether study/ and conf/ at HEAD are those of ``commit`` (then the run must match)."""
    done = subprocess.run(
        ["git", "-C", str(STUDY_ROOT), "diff", "--quiet", commit, "HEAD", "--", "study", "conf"],
        capture_output=True,
    )
    return done.returncode == 0


@pytest.mark.slow
def test_two_cheapest_runs_of_the_paper_rerun_value_for_value(tmp_path):
    from study.planning.ablation import plan

    ledger = _ledger()
    ok = ledger[ledger["status"] == "ok"] if "status" in ledger.columns else ledger
    by_cost = [c for c in ("epochs_run", "wall_s") if c in ok.columns]
    cheapest = ok.sort_values(by_cost).head(2) if by_cost else ok.head(2)
    runs = {
        (r.ablation, r.variant, r.seed): r
        for r in plan(STUDY_ROOT / "conf/ablation", "default").runs
    }
    for row in cheapest.itertuples():
        if not isinstance(row.commit, str) or bool(getattr(row, "dirty", False)):
            pytest.skip(f"run {row.ablation}/{row.variant}/seed{row.seed} came from a dirty tree")
        if not _same_code(row.commit):
            pytest.skip(f"study/ or conf/ changed since {row.commit[:12]}: a rerun at HEAD "
                        "cannot be expected to match")  # fmt: skip
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
        assert metrics["test_acc"] == row.test_acc, (row.ablation, row.variant, row.seed)
        assert metrics["test_loss"] == row.test_loss, (row.ablation, row.variant, row.seed)
