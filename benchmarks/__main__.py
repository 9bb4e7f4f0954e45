"""Performance of the study on this machine, measured against what users would write instead.

``python -m benchmarks [section] [options]``, from the repository root; sections (``throughput``
when none is named):

- ``throughput``: images per second of three training loops side by side in one process, on the
  default model (resmlp) and data (10,000 Fashion-MNIST images, batch 128, AdamW):
  (a) the study's own loop with augmentation (shift 2, flip, cutout 10), through the real
  ``study.train.train_run``; (b) the loop users would write instead: torchvision's FashionMNIST
  Dataset with per-image PIL transforms and a DataLoader; (c) the compute-only limit: the same
  model and optimizer stepping on pre-made normalized batches. Also the achieved FLOP/s of (c)
  against a matmul peak measured in the same run.
- ``startup``: ``python -c "import torch"`` against a training job's start-up up to its first
  optimizer step (the real ``study.train.main`` with the data left out), in fresh interpreters.
- ``efficiency``: in-run time of a finished study's jobs over its wall time × cores, from
  ``results/<scale>`` and the Snakemake log; also the mean per-job overhead.
- ``plan``: time of ``snakemake -n`` on a copy of the workflow with a large generated ablation.
- ``eval-share``: evaluation time over training + evaluation time, per ablation.
- ``slice``: a slice shaped like the default study (four variants × 6 seeds of 10-epoch runs,
  shift evaluation) run for real with ``snakemake --cores 2`` at runs_per_job 1 and at the
  workflow's setting: pipeline efficiency counting every job that does study work, and the
  evaluation share of its runs (benchmarks.slice).
- ``pinning``: the study's training run with PyTorch's, MKL's and oneDNN's CPU kernel paths left
  free and pinned to AVX2 (or to the most compatible paths), one job per arm in interleaved rounds:
  training images per second and whether the pinned runs give the unpinned run's numbers
  (benchmarks.pinning). Not part of ``all``.
- ``all``: every section but ``pinning`` (efficiency and eval-share are skipped when there is no
  study to read).

Every figure is printed as one line ``<key> <number> <note>``. Timings are medians over repeats,
with the loops of (a), (b) and (c) interleaved so that they share the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from benchmarks.pinning import pinning
from benchmarks.pipeline import efficiency, eval_share
from benchmarks.plan import plan_time
from benchmarks.report import Report, cpu_name
from benchmarks.slice import SliceShape, slice_study
from benchmarks.snakemake_log import find_log
from benchmarks.startup import startup
from benchmarks.throughput import Sizes, throughput
from benchmarks.workflow import ROOT

SECTIONS = (
    "throughput", "startup", "efficiency", "plan", "eval-share", "slice", "pinning", "all"
)  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("section", nargs="?", default="throughput", choices=SECTIONS)
    p.add_argument("--quick", action="store_true", help="tiny sizes and one repeat (for tests)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--repeats", type=int, help="timed repeats per figure (median)")
    p.add_argument("--epochs", type=int, help="epochs per throughput repeat")
    p.add_argument("--workers", help="DataLoader num_workers values for (b), e.g. 0,1")
    p.add_argument(
        "--cache", type=Path, help="a data cache (python -m study.components.data) to reuse"
    )
    p.add_argument("--scale-dir", type=Path, default=ROOT / "results" / "default")
    p.add_argument("--log", type=Path, help="Snakemake log of the study (default: found)")
    p.add_argument("--log-dir", type=Path, default=ROOT / ".snakemake" / "log")
    p.add_argument("--cores", type=int, help="cores of the study (default: from the log)")
    p.add_argument("--runs", type=int, help="runs of the generated ablation (plan)")
    p.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    p.add_argument(
        "--slice-epochs", type=int, default=10, help="epochs per run of the slice (default 10)"
    )
    return p.parse_args(argv)


def run_throughput(report: Report, args: argparse.Namespace) -> None:
    import torch

    print(f"torch {torch.__version__}")
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.repeats:
        sizes.repeats = args.repeats
    if args.epochs:
        sizes.epochs = args.epochs
    if args.workers is not None:
        sizes.workers = tuple(int(w) for w in args.workers.split(",") if w.strip())
    throughput(report, sizes, args.threads, args.device, args.cache)


def run_study_sections(report: Report, args: argparse.Namespace, study_sections: list[str]):
    """Efficiency and evaluation share of a finished study (skipped when there is none)."""
    scale_dir = args.scale_dir.resolve()
    log = args.log or find_log(scale_dir, args.log_dir)
    has_runs = scale_dir.is_dir() and any(scale_dir.rglob("metrics.json"))
    if not has_runs:
        print(f"\n# {', '.join(study_sections)}: skipped, no runs under {scale_dir}")
        return
    if "efficiency" in study_sections:
        if log is None:
            print(f"\n# efficiency: skipped, no Snakemake log for {scale_dir}")
        else:
            efficiency(report, scale_dir, log, args.cores)
    if "eval-share" in study_sections:
        eval_share(report, scale_dir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    sections = SECTIONS[:-2] if args.section == "all" else (args.section,)
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    if "throughput" in sections:
        run_throughput(report, args)
    if "startup" in sections:
        quick = Sizes.quick().eval_overrides if args.quick else ()
        startup(report, args.repeats or (1 if args.quick else 7), args.cache, quick)
    if "plan" in sections:
        n_runs = args.runs or (12 if args.quick else 1000)
        plan_time(
            report, n_runs, args.repeats or (1 if args.quick else 3), not args.quick, "default"
        )
    if "slice" in sections:
        shape = SliceShape.quick() if args.quick else SliceShape(epochs=args.slice_epochs)
        slice_study(report, shape, args.cache)
    if "pinning" in sections:
        n_train, epochs = (512, 1) if args.quick else (10_000, args.epochs or 3)
        pinning(report, args.repeats or (1 if args.quick else 3), args.threads, args.cache,
                n_train, epochs)  # fmt: skip
    study_sections = [s for s in ("efficiency", "eval-share") if s in sections]
    if study_sections:
        run_study_sections(report, args, study_sections)
    if args.json:
        args.json.write_text(json.dumps(report.figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
