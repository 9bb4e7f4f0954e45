"""Where numbers came from: the study's commit, whether its inputs had changes, versions, hardware.

One definition for the runs (written into every ``metrics.json``) and the report (which compares
the runs' commits with its own), so "dirty" means the same thing in both: a change to one of the
study's inputs, :data:`STUDY_INPUTS` (the files that determine the numbers: code, configs,
workflow, schemas, data), tracked *or* not yet known to git, such as an ablation file not yet
committed, which changes what the study runs as surely as an edited one. The study's own outputs
(paper/, results/), the docs, the tests and the benchmarks do not make a run dirty: a rebuilt
paper/ is not a changed study.

The hardware fingerprint says which kernels a run's arithmetic took: the CPU model, the
instruction set PyTorch dispatches to, the BLAS and oneDNN versions, the torch version, the
threads and the device. Two runs with the same config, seed and fingerprint give the same
numbers; across fingerprints they agree within the tolerance stated in
:data:`CROSS_MACHINE_TOLERANCE`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

STUDY_ROOT = Path(__file__).resolve().parent.parent

# The packages whose versions decide the numbers or their presentation, in the report's order.
PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "hydra-core",
    "snakemake",
    "matplotlib",
    "seaborn",
    "jinja2",
)


# The paths (relative to the repository root) whose content determines a run's numbers. A change
# anywhere else (paper/, results/, docs/, tests/, benchmarks/, README.md) leaves a run clean.
STUDY_INPUTS = (
    "study",
    "conf",
    "rules",
    "Snakefile",
    "schemas",
    "resources",
    "pyproject.toml",
)


def _git(repo: Path, *args: str, strip: bool = True) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() if strip else done.stdout


def _changed_paths(porcelain: str) -> list[str]:
    """The paths of ``git status --porcelain`` lines (a rename counts as its new name)."""
    paths = []
    for line in porcelain.splitlines():
        path = line[3:]
        paths.append(path.split(" -> ")[-1].strip('"'))
    return sorted(paths)


def git_state(repo: str | Path | None = None, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"commit", "dirty", "changed"}`` of ``repo`` (default: the study's).

    ``dirty``: whether a file under :data:`STUDY_INPUTS` differs from the commit (or is new and
    not ignored); ``changed``: those files. ``exclude``: input paths (relative to ``repo``) whose
    changes do not count either. ``None`` means unknown (not a git checkout, or git missing);
    callers say so rather than guess.
    """
    repo = Path(repo) if repo is not None else STUDY_ROOT
    commit = _git(repo, "rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None, "changed": None}
    spec = [*STUDY_INPUTS, *(f":(exclude){p}" for p in exclude)]
    status = _git(repo, "status", "--porcelain", "--untracked-files=all", "--", *spec, strip=False)
    if status is None:
        return {"commit": commit, "dirty": None, "changed": None}
    changed = _changed_paths(status)
    return {"commit": commit, "dirty": bool(changed), "changed": changed}


def package_versions() -> dict[str, str]:
    """Python and every package of :data:`PACKAGES` that is installed, name → version."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def kernel_libraries() -> dict[str, str]:
    """The instruction set PyTorch dispatches to, its BLAS with version, and oneDNN's version
    (from ``torch.__config__.show()``; "unknown" where the build does not say)."""
    import torch

    shown = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", shown)
    openblas = re.search(r"OpenBLAS\s*(?:version)?\s*([\d.]+)", shown, re.IGNORECASE)
    blas_info = re.search(r"BLAS_INFO=(\w+)", shown)
    if mkl:
        blas = f"MKL {mkl.group(1)}"
    elif openblas:
        blas = f"OpenBLAS {openblas.group(1)}"
    else:
        blas = blas_info.group(1) if blas_info else "unknown"
    onednn = re.search(r"(?:MKL-DNN|oneDNN) v([\d.]+)", shown)
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas,
        "onednn": onednn.group(1) if onednn else "none",
        "torch": torch.__version__,
    }


def fingerprint(info: dict[str, Any]) -> str:
    """The short readable id of a :func:`hardware` record: the fields that choose the kernels a
    run's arithmetic takes, e.g. ``AMD EPYC | AVX512 | MKL 2024.2 | oneDNN 3.12.0 | torch 2.14.1
    | 1 thread | cpu``."""
    threads = info.get("threads")
    device = info.get("gpu") or info.get("device")
    return " | ".join(
        str(part)
        for part in (
            info.get("cpu_model"),
            info.get("cpu_capability"),
            info.get("blas"),
            f"oneDNN {info.get('onednn')}",
            f"torch {info.get('torch')}",
            f"{threads} thread{'s' if threads != 1 else ''}",
            device,
        )
    )


def hardware(device: Any = "cpu", threads: int | None = None) -> dict[str, Any]:
    """The machine a run used, with its :func:`fingerprint`; ``device`` is a ``torch.device``
    or its name."""
    info = {
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        **kernel_libraries(),
        "threads": threads,
        "device": str(device),
    }
    if str(device).startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(device)
    info["fingerprint"] = fingerprint(info)
    return info


def run_commits(
    ledger: Any, commit: str | None, dirty: bool | None, changed: list[str] | None = None
) -> dict[str, Any]:
    """Whether every run came from the report's own commit with a clean tree, and if not, how
    many runs came from which commit and tree state. ``clean`` is True only when it is known.
    ``ledger``: the runs' ``commit`` and ``dirty`` columns (a frame, or a mapping of lists).
    ``changed``: the study's input files that differed in the report's tree (named in the
    reason)."""
    groups: dict[tuple[str, str], int] = {}
    for run_commit, run_dirty in zip(ledger["commit"], ledger["dirty"], strict=True):
        known = isinstance(run_commit, str) and run_commit
        key = (
            run_commit[:12] if known else "unknown",
            {True: "uncommitted changes", False: "clean"}.get(run_dirty, "tree state unknown"),
        )
        groups[key] = groups.get(key, 0) + 1
    same = [
        c == commit and d is False for c, d in zip(ledger["commit"], ledger["dirty"], strict=True)
    ]
    reasons = []
    if not commit:
        reasons.append("the report was not built in a git checkout")
    elif dirty is not False:
        files = f" ({', '.join(changed)})" if changed else ""
        reasons.append(f"the report was built from a tree with uncommitted changes{files}")
    if not all(same):
        reasons.append(f"{len(same) - sum(same)} of {len(same)} runs came from another commit or "
                       "a tree with uncommitted changes")  # fmt: skip
    return {
        "clean": bool(commit) and dirty is False and all(same),
        "reasons": reasons,
        "groups": [
            {"commit": c, "state": d, "n": n}
            for (c, d), n in sorted(groups.items(), key=lambda kv: -kv[1])
        ],
    }


def run_fingerprints(fingerprints: Any) -> list[dict[str, Any]]:
    """``[{"fingerprint", "n"}]``: how many runs came from each hardware fingerprint (most
    first), from the runs' fingerprints; runs that recorded none count as "unknown"."""
    counts: dict[str, int] = {}
    for recorded in fingerprints:
        name = recorded if isinstance(recorded, str) and recorded else "unknown"
        counts[name] = counts.get(name, 0) + 1
    return [{"fingerprint": f, "n": n} for f, n in sorted(counts.items(), key=lambda kv: -kv[1])]


# How far a rerun on another hardware fingerprint may lie from a committed run, per value
# (absolute for accuracies, relative for losses), and where each number comes from:
# - test_acc: the default study rebuilt on a second CPU kind (Intel Xeon, AVX-512, against the
#   committed AMD EPYC runs; issue 27) gave equal test accuracy in 11 of 240 runs, median
#   |difference| 0.10 pp, largest 1.47 pp; the tolerance is that largest difference rounded up.
# - test_loss: measured only twice: 0.5% between those two CPU kinds (normalization/
#   batchnorm_small seed 1, 0.41920 against 0.41700) and at most 0.06% between the kernel paths
#   of one machine (benchmarks.pinning, docs/performance.md). Accuracy's largest difference was
#   about 15 times its median, so the tolerance is ten times the larger loss difference.
# Epochs run are not compared across fingerprints: early stopping moved by an epoch in 6 of the
# 240 runs. A run's status (ok, diverged, ...) and config hash must be equal everywhere.
CROSS_MACHINE_TOLERANCE = {
    "test_acc": ("absolute", 0.02),
    "test_loss": ("relative", 0.05),
}
# The spread measured between the two CPU kinds (issue 27), as the report's method states it.
CROSS_MACHINE_SPREAD = {
    "runs": 240,
    "equal_test_acc": 11,
    "median_test_acc_pp": 0.10,
    "largest_test_acc_pp": 1.47,
    "verdicts": 23,
    "verdicts_equal": 23,
}
# Compared exactly on every machine: what decides which verdict a run can feed.
SAME_EVERYWHERE = ("status", "config_hash")


def _known(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def rerun_differences(committed: dict[str, Any], rerun: dict[str, Any]) -> list[str]:
    """Why ``rerun`` (a metrics.json) does not reproduce ``committed`` (a row of runs.csv); empty
    when it does. Value for value when both record the same hardware fingerprint; within
    :data:`CROSS_MACHINE_TOLERANCE` otherwise (a committed run without a fingerprint counts as
    another machine's)."""
    fingerprint = (rerun.get("hardware") or {}).get("fingerprint")
    exact = _known(committed.get("fingerprint")) and committed.get("fingerprint") == fingerprint
    problems = [
        f"{key}: committed {committed[key]!r}, rerun {rerun.get(key)!r}"
        for key in SAME_EVERYWHERE
        if _known(committed.get(key)) and str(committed[key]) != str(rerun.get(key))
    ]
    for key, (kind, tolerance) in CROSS_MACHINE_TOLERANCE.items():
        want, got = float(committed[key]), float(rerun[key])
        if exact:
            if want != got:
                problems.append(f"{key}: committed {want!r}, rerun {got!r} (same fingerprint)")
            continue
        allowed = tolerance * abs(want) if kind == "relative" else tolerance
        if not abs(got - want) <= allowed:
            problems.append(
                f"{key}: committed {want!r}, rerun {got!r}, more than the cross-machine "
                f"tolerance {tolerance!r} ({kind})"
            )
    return problems
