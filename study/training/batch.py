"""Several runs in one process: the interpreter, torch and the config library start once.

A workflow job pays about 2 s of start-up before its first step, on runs of 10-20 s; a job that
trains all seeds of a variant (or all learning-rate levels of a tuning sweep) one after another
pays it once. Each run is still a pure function of its own config and seed: the process state a
run could leave behind (torch's global generator, the resolved-schedule cache, deterministic
flags, the thread count) is reset before each run, so a run trained in a batch gives the numbers,
files and weights of the same run trained alone.

A killed batch is resumed by running it again: runs whose ``metrics.json`` is complete and of the
same config are skipped, the rest are trained (each from its epoch checkpoint if it has one).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from study.config import compose, config_hash

log = logging.getLogger("study.train")

# torch's process-wide settings as the interpreter started with them, restored before every run.
_DETERMINISTIC = torch.are_deterministic_algorithms_enabled()
_DETERMINISTIC_WARN_ONLY = torch.is_deterministic_algorithms_warn_only_enabled()
_CUDNN_BENCHMARK = torch.backends.cudnn.benchmark


@dataclass(frozen=True)
class Member:
    """One run of a batch: its overrides (its own, after the shared ones)."""

    overrides: tuple[str, ...]


def split_members(argv: list[str]) -> tuple[list[str], list[Member]]:
    """``shared... -- run1... -- run2...`` as the shared overrides and the runs' own."""
    parts, current = [], []
    for arg in argv:
        if arg == "--":
            parts.append(current)
            current = []
        else:
            current.append(arg)
    parts.append(current)
    return parts[0], [Member(tuple(p)) for p in parts[1:] if p]


def reset_process_state(threads: int) -> None:
    """What one run may have changed in the process, back to how a fresh process has it."""
    from study.components import schedules

    schedules._RESOLVED.clear()
    # Only when a run changed them: torch.use_deterministic_algorithms imports the compiler's
    # config and with it torch._dynamo (1 s of a job's start-up, and the optimizer patch of
    # study.startup then steps aside), which CPU runs never need.
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if deterministic != (_DETERMINISTIC, _DETERMINISTIC_WARN_ONLY):
        torch.use_deterministic_algorithms(_DETERMINISTIC, warn_only=_DETERMINISTIC_WARN_ONLY)
    torch.backends.cudnn.benchmark = _CUDNN_BENCHMARK
    torch.set_num_threads(threads)
    torch.manual_seed(0)  # the run seeds its own generators; nothing may depend on the last run


def member_config(shared: list[str], member: Member) -> DictConfig:
    """The run's config, composed as ``python -m study.train <shared> <its own>`` would."""
    return compose([*shared, *member.overrides])


def is_complete(cfg: DictConfig) -> bool:
    """The run folder already holds this config's finished run (metrics.json is written last and
    atomically, so a complete file means a complete folder)."""
    from study.training.run import apply_tuned_lr

    path = Path(cfg.run.out) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    probe = cfg.copy()
    if probe.train.lr_from:
        apply_tuned_lr(probe)
    return metrics.get("config_hash") == config_hash(probe) and metrics.get("seed") == cfg.seed
