"""A disposable copy of the workflow, for tests that run the real `snakemake` command.

The copy holds what a user's checkout holds (Snakefile, rules, configs and their schemas, vendored
data, report templates, profiles) with only the ablations and variants a test names, so that a
whole study at smoke scale takes about a minute. The `study` package is the installed (editable)
one, so the copy runs the code under test. Nothing is shared with the repository's own results/
or paper/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ("Snakefile", "rules", "conf", "schemas", "envs", "resources", "profiles",
            "paper/templates", "paper/workflow.rst", "paper/figure_caption.rst")  # fmt: skip

# Regularization at smoke scale, cut to three variants (2 seeds each): six training runs plus
# data, second-order check, tables, figures and report. Enough to exercise every rule that a
# plain ablation uses, small enough to run several times in one test session.
REDUCED = {"regularization": ("none", "l2", "dropout")}

# runs.csv columns that depend on the machine's load or the clock, not on the computation.
TIMING = ("wall_s", "train_s", "eval_s", "s_per_epoch", "images_per_s")
RUN_FILES = ("metrics.json", "history.csv", "model.pt", "config.yaml")


def copy_files(dest: Path, names: tuple[str, ...]) -> None:
    """Copy the named files and folders of the checkout into ``dest``; names the checkout lacks
    are skipped."""
    for name in names:
        src, target = ROOT / name, dest / name
        if not src.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)


def copy_workflow(
    dest: Path, ablations: dict[str, tuple[str, ...] | None] | None = REDUCED
) -> Path:
    """Copy the workflow into ``dest`` with only ``ablations`` (name → variants to keep, or None
    for all of them) in conf/ablation/, or every ablation if ``ablations`` is None."""
    dest.mkdir(parents=True, exist_ok=True)
    copy_files(dest, WORKFLOW)
    if ablations is None:
        return dest
    folder = dest / "conf/ablation"
    for path in folder.glob("*.yaml"):
        if path.stem not in ablations:
            path.unlink()
    for name, keep in ablations.items():
        path = folder / f"{name}.yaml"
        if keep is None:
            continue
        spec = yaml.safe_load(path.read_text())
        spec["variants"] = {v: o for v, o in spec["variants"].items() if v in keep}
        assert spec["baseline"] in spec["variants"], f"{name}: keep the baseline variant"
        _keep_only(spec, set(keep))
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def _keep_only(spec: dict, keep: set[str]) -> None:
    """Drop what names a removed variant: its tuning search, its own seed count, its place in a
    ``shift`` list and its places in ``compare`` (a group left with fewer than two variants
    goes)."""
    if isinstance(spec.get("shift"), list):
        spec["shift"] = [v for v in spec["shift"] if v in keep] or False
    searches = (spec.get("tune") or {}).get("variants")
    if searches:
        spec["tune"]["variants"] = {v: s for v, s in searches.items() if v in keep}
    if spec.get("seeds_by_variant"):
        spec["seeds_by_variant"] = {v: n for v, n in spec["seeds_by_variant"].items() if v in keep}
    groups = []
    for group in spec.get("compare") or []:
        if isinstance(group, dict):
            kept = [v for v in group["variants"] if v in keep]
            if len(kept) > 1:
                groups.append({**group, "variants": kept})
        elif len(kept := [v for v in group if v in keep]) > 1:
            groups.append(kept)
    if groups:
        spec["compare"] = groups
    else:
        spec.pop("compare", None)


def snakemake(
    cwd: Path, *args: str, timeout: float = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`snakemake ARGS` in ``cwd`` with this interpreter, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def tail(result: subprocess.CompletedProcess, n: int = 4000) -> str:
    """The end of a command's output, for assertion messages."""
    out, err = result.stdout[-n:], result.stderr[-n:]
    return f"exit {result.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"


def comparable_runs(study: Path, scale: str = "smoke") -> pd.DataFrame:
    """runs.csv without the timing columns, sorted by run: what must not depend on where or
    when the study ran."""
    runs = pd.read_csv(study / f"results/{scale}/tables/runs.csv")
    machine = [c for c in runs.columns if c.startswith(("hardware.", "versions."))]
    runs = runs.drop(columns=[*TIMING, *machine], errors="ignore")
    return runs.sort_values(["ablation", "variant", "seed"]).reset_index(drop=True)


def assert_same_runs(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Value for value: same columns, same rows, floats bit-identical (same machine, threads)."""
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def run_folders(study: Path, scale: str = "smoke") -> list[Path]:
    return sorted((study / f"results/{scale}/runs").glob("*/*/seed*"))


def finished_runs(study: Path, scale: str = "smoke") -> list[Path]:
    return [r for r in run_folders(study, scale) if (r / "metrics.json").exists()]


def assert_complete_or_not_finished(run: Path) -> None:
    """A folder with metrics.json is a complete run (every contracted file, readable metrics);
    a folder without it is one that tables skip as in progress."""
    if not (run / "metrics.json").exists():
        return
    for name in RUN_FILES:
        assert (run / name).is_file(), f"{run} has metrics.json but no {name}"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] in ("ok", "diverged", "stopped_early"), run


@dataclass
class Study:
    path: Path
    seconds: float


_reference: dict[tuple, Study] = {}


def reference_study(tmp_path_factory, ablations=REDUCED) -> Study:
    """The reduced smoke study run locally and uninterrupted (`snakemake --cores 2`), once per
    test session: the numbers a SLURM run or a recovered run must reproduce."""
    key = tuple(sorted((k, v) for k, v in ablations.items()))
    if key not in _reference:
        study = copy_workflow(tmp_path_factory.mktemp("reference"), ablations)
        start = time.perf_counter()
        result = snakemake(study, "--cores", "2", "--config", "scale=smoke")
        seconds = time.perf_counter() - start
        assert result.returncode == 0, tail(result)
        _reference[key] = Study(study, seconds)
    return _reference[key]
