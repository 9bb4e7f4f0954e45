"""How many runs one training job trains: enough jobs to keep every slot busy, few enough to
save most of the start-up.

A job pays the start-up (Python, torch, Hydra; on a GPU the CUDA context too) once for the runs
it trains one after another. Few large batches save the most start-up but leave slots idle when
a group of runs is small (27 runs in batches of 6 are 5 jobs, which use 5 of 16 cores); one run
per job keeps every slot busy and pays the start-up every time. The rule here: a group of runs
is cut into as many jobs as there are slots (cores, or GPU slots for runs on a GPU), but never
into batches larger than ``most`` runs and never into more jobs than runs; batch sizes differ by
at most one run.

The batches are a pure function of (the runs in plan order, slots, most): a rerun with the same
``--cores`` plans the same jobs and reuses their results. Another ``--cores`` regroups the jobs,
never a run's numbers: each run keeps its own config and seed whichever job trains it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

Job = TypeVar("Job")


def jobs_for(runs: int, slots: int, most: int) -> int:
    """The number of jobs for a group of ``runs``: at least ``slots`` when there are that many
    runs, at least enough for batches of at most ``most`` runs, never more than the runs."""
    if runs <= 0:
        return 0
    return min(runs, max(slots, -(-runs // max(most, 1))))


def even_cuts(items: Sequence[Job], jobs: int) -> list[list[Job]]:
    """``items`` in order, cut into ``jobs`` consecutive batches whose sizes differ by at most
    one (the larger ones first)."""
    size, extra = divmod(len(items), jobs)
    batches, start = [], 0
    for i in range(jobs):
        stop = start + size + (1 if i < extra else 0)
        batches.append(list(items[start:stop]))
        start = stop
    return batches


def batches(
    runs: Sequence[Job],
    key: Callable[[Job], Hashable],
    slots: Callable[[Job], int],
    most: int,
) -> list[list[Job]]:
    """The runs in plan order, grouped by ``key`` (the inputs a run waits for: runs of one group
    can share a job), each group cut by :func:`jobs_for` with the slots of its runs' device."""
    groups: dict[Hashable, list[Job]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return [
        batch
        for group in groups.values()
        for batch in even_cuts(group, jobs_for(len(group), slots(group[0]), most))
    ]


def slots_of(cores: int | None, threads: int, gpu_slots: int | None) -> Callable[[str], int]:
    """Runs that can train at once on a device ("cpu" or "cuda"): the cores over the threads
    each run takes; for runs on a GPU also at most the GPU slots (``--resources gpu=N``) when
    given. Without a core count (a cluster executor that sets only --jobs), one."""
    on_cores = max((cores or 1) // max(threads, 1), 1)

    def slots(device: str) -> int:
        if device == "cuda" and gpu_slots:
            return max(min(on_cores, gpu_slots), 1)
        return on_cores

    return slots
