"""The checkout the benchmark measures: its root, its vendored data, commands run in it, the
metrics its runs write, and disposable copies of its workflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from study.config import CONF_DIR

ROOT = CONF_DIR.parent
FASHION_ROOT = ROOT / "resources" / "fashion-mnist"


# What ``snakemake -n`` reads: the workflow, its configs and conda environment, the report's inputs.
WORKFLOW_FILES = (
    "Snakefile",
    "rules",
    "conf",
    "schemas",
    "envs",
    "paper/templates",
    "paper/workflow.rst",
    "paper/figure_caption.rst",
)


def data_cache(cache: Path | None, folder: Path) -> Path:
    """``cache``, or, when none is given, the vendored Fashion-MNIST files written as the study's
    data cache into ``folder`` (a benchmark's temporary folder)."""
    if cache is not None:
        return cache
    from study.components.data import read_dataset, write_cache

    made = folder / "fashion_mnist.pt"
    write_cache(read_dataset("fashion_mnist", FASHION_ROOT), made)
    return made


def copy_files(dest: Path, names=WORKFLOW_FILES) -> None:
    """Copy the named files and folders of the checkout into ``dest`` (a disposable workflow)."""
    for name in names:
        src, target = ROOT / name, dest / name
        if not src.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)


def copy_workflow(dest: Path, keep_ablations: bool) -> None:
    copy_files(dest)
    if not keep_ablations:
        for path in (dest / "conf" / "ablation").glob("*.yaml"):
            path.unlink()


def read_metrics(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def checkout_env() -> dict[str, str]:
    """The environment of a command run in a copy of the workflow: it imports this checkout's
    study package, whatever is installed."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def time_command(
    argv: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or checkout_env()
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    return elapsed, done.stdout
