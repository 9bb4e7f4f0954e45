"""Snakemake's log of a study: its jobs (rule, outputs, start and end second), cores and first and
last timestamp, and which log finished the jobs of a given scale."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d{1,2}:\d{2}:\d{2} \d{4})\]\s*$")
RULE_LINE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):\s*$")
JOBID_LINE = re.compile(r"^\s+jobid: (\d+)\s*$")
OUTPUT_LINE = re.compile(r"^\s+output: (.*)$")
# Snakemake 9 writes "Finished jobid: 4 (Rule: train)"; 7 and 8 wrote "Finished job 4.".
FINISHED_LINE = re.compile(r"^Finished job(?:id:)? (\d+)\b")
CORES_LINE = re.compile(r"^Provided cores: (\d+)")
FLAG = re.compile(r"\s+\(\w+\)$")
WORKDIR_LINE = re.compile(r"^\s*Working directory: (.+?)\s*$")


@dataclass
class Job:
    jobid: int
    rule: str
    start: datetime
    outputs: list[str] = field(default_factory=list)
    end: datetime | None = None

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds() if self.end else math.nan


@dataclass
class SnakemakeLog:
    path: Path
    first: datetime | None
    last: datetime | None
    cores: int | None
    workdir: Path
    jobs: list[Job]

    @property
    def finished(self) -> list[Job]:
        return [j for j in self.jobs if j.end is not None]

    @property
    def wall_s(self) -> float:
        if self.first is None or self.last is None:
            return math.nan
        return (self.last - self.first).total_seconds()


def parse_snakemake_log(path: Path) -> SnakemakeLog:
    """Jobs (rule, outputs, start and end second) and the first and last timestamp of a log."""
    path = Path(path)
    stamp = first = last = None
    cores, workdir = None, path.resolve().parent.parent.parent  # <workdir>/.snakemake/log/x.log
    jobs: dict[int, Job] = {}
    pending: Job | None = None
    for line in path.read_text(errors="replace").splitlines():
        if m := TIMESTAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            first = first or stamp
            last = stamp
            pending = None
        elif (m := RULE_LINE.match(line)) and stamp is not None:
            pending = Job(jobid=-1, rule=m.group(1), start=stamp)
        elif pending is not None and (m := OUTPUT_LINE.match(line)):
            # A flagged output is printed with its flag: "<path> (update)".
            outputs = (FLAG.sub("", o.strip()) for o in m.group(1).split(","))
            pending.outputs = [o for o in outputs if o]
        elif pending is not None and (m := JOBID_LINE.match(line)):
            pending.jobid = int(m.group(1))
            jobs[pending.jobid] = pending
        elif (m := FINISHED_LINE.match(line)) and stamp is not None:
            job = jobs.get(int(m.group(1)))
            if job is not None:
                job.end = stamp
        elif m := CORES_LINE.match(line):
            cores = int(m.group(1))
        elif m := WORKDIR_LINE.match(line):
            workdir = Path(m.group(1))
    return SnakemakeLog(path, first, last, cores, workdir, list(jobs.values()))


def job_metrics(log: SnakemakeLog, job: Job, scale_dir: Path) -> list[Path]:
    """The metrics.json files a job wrote under ``scale_dir``: one per run it trained (a job
    trains several with runs_per_job > 1), none for other rules."""
    paths = [(log.workdir / out).resolve() for out in job.outputs]
    return [p for p in paths if p.name == "metrics.json" and p.is_relative_to(scale_dir)]


def jobs_under(log: SnakemakeLog, scale_dir: Path) -> list[Job]:
    return [
        j
        for j in log.finished
        if any((log.workdir / o).resolve().is_relative_to(scale_dir) for o in j.outputs)
    ]


def find_log(scale_dir: Path, log_dir: Path) -> Path | None:
    """The log of the Snakemake invocation that finished the most jobs of this scale."""
    best, best_n = None, 0
    for path in sorted(Path(log_dir).glob("*.snakemake.log")):
        n = len(jobs_under(parse_snakemake_log(path), scale_dir))
        if n > best_n:
            best, best_n = path, n
    return best
