"""Where numbers came from: the study's commit, whether its tree had changes, versions, hardware.

One definition for the runs (written into every ``metrics.json``) and the report (which compares
the runs' commits with its own), so "dirty" means the same thing in both: any change to a tracked
file *or* a file git does not ignore, such as an ablation file not yet committed, which changes
what the study runs as surely as an edited one.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
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


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(repo: str | Path | None = None, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of ``repo`` (default: the study's).

    ``exclude``: paths (relative to ``repo``) whose changes do not count, such as the folder a
    step is writing its own tracked outputs into (Snakemake deletes a job's old outputs first).
    ``None`` means unknown (not a git checkout, or git missing); callers say so rather than guess.
    """
    repo = Path(repo) if repo is not None else STUDY_ROOT
    commit = _git(repo, "rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None}
    spec = [".", *(f":(exclude){p}" for p in exclude)] if exclude else []
    status = _git(repo, "status", "--porcelain", "--untracked-files=normal", "--", *spec)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions() -> dict[str, str]:
    """Python and every package of :data:`PACKAGES` that is installed, name → version."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def hardware(device: Any = "cpu", threads: int | None = None) -> dict[str, Any]:
    """The machine a run used; ``device`` is a ``torch.device`` or its name."""
    info = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "device": str(device),
    }
    if str(device).startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(device)
    return info
