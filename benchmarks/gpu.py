"""The training step of the study's runs, one run and several sharing one GPU, against the CPU,
and the projected time of the full study.

``python -m benchmarks.gpu [--slots 1,2,4,8,16] [--seconds 15] [--scale full] [--compile]``

Each figure times whole training epochs of a real run as the study trains it
(benchmarks.gpu_step: study.training.run.build and study.training.loop.train_epoch), so it
measures the levers the training code applies on that device and no others. On the CPU: one run
on one core (the plain fp32 step), times the machine's cores. On a CUDA device, for each slot
count, that many processes train at once (GPU slots: ``--resources gpu=<slots>`` lets Snakemake
start that many runs whose device is cuda), each printed as images/s per run and for the whole
device, and as TFLOP/s against the GPU's dense bf16 peak (989 for an H200). The projection: the
study's training images (every run and tuning run, epochs × steps × batch) over the best rate;
evaluation and start-up are left out (about 0.1 of a run, and once per batch of runs).

Without a CUDA device it says so in one line and measures the CPU only (so it runs, and is tested,
anywhere); under 10 minutes on a GPU machine with the defaults.
"""

from __future__ import annotations

import argparse
import os

from benchmarks.gpu_step import (
    H200_BF16_PEAK_TFLOPS,
    device_line,
    epoch_rate,
    flops_per_image,
    shared_rates,
)

NO_CUDA = "no CUDA device: measuring the CPU only; GPU slots are not measured"


def study_images(scale: str) -> tuple[int, int]:
    """Training images of every run and tuning run of the study at ``scale``, and the runs."""
    from study.config import compose
    from study.planning.ablation import plan

    planned = plan("conf/ablation", scale)
    total = 0
    jobs = [*planned.runs, *planned.tuning]
    for job in jobs:
        cfg = compose(list(job.overrides))
        n_train = cfg.data.n_train or 60_000 - int(cfg.data.n_val)
        epochs = min(cfg.train.epochs, cfg.train.max_epochs or cfg.train.epochs)
        total += epochs * (n_train // cfg.train.batch_size) * cfg.train.batch_size
    return total, len(jobs)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--slots", default="1,4,16", help="runs sharing the GPU, e.g. 1,2,4,8,16")
    p.add_argument("--seconds", type=float, default=15.0, help="timed seconds per measurement")
    p.add_argument("--scale", default="full", help="the study scale projected (default full)")
    p.add_argument("--cpu-seconds", type=float, help="timed seconds on the CPU (default --seconds)")
    p.add_argument(
        "--cpu-n-train", type=int, default=1024,
        help="training images of the CPU's run (an epoch of the full scale's 55,000 takes "
        "minutes on one core)",
    )  # fmt: skip
    p.add_argument("--compile", action="store_true", help="also time torch.compile on the GPU")
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_PEAK_TFLOPS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    scale = [f"scale={args.scale}"]
    flops = flops_per_image(scale)
    print(
        f"model_flops_per_image {flops / 1e9:.3f} GFLOP (forward and backward, scale={args.scale})"
    )
    cores = os.cpu_count() or 1
    cpu_scale = [*scale, f"data.n_train={args.cpu_n_train}"]
    cpu_one = epoch_rate(cpu_scale, "cpu", args.cpu_seconds or args.seconds)
    rates = {"cpu": cpu_one * cores}
    print(
        f"cpu_images_per_s {cpu_one:.1f} one run on one core; x {cores} cores = {rates['cpu']:.1f}"
    )
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
        for compiled in (False, True) if args.compile else (False,):
            for slots in (int(s) for s in args.slots.split(",") if s.strip()):
                label = f"gpu_slots_{slots}" + ("_compiled" if compiled else "")
                per_run = shared_rates(scale, slots, args.seconds, compiled)
                rates[label] = sum(per_run)
                print(device_line(label, per_run, flops, args.peak_tflops))
    else:
        print(NO_CUDA)
    images, runs = study_images(args.scale)
    best = max(rates, key=rates.get)
    seconds = images / rates[best]
    print(f"study_images {images} in {runs} runs and tuning runs at scale={args.scale}")
    print(
        f"projected_study_s {seconds:.1f} ({seconds / 3600:.2f} h) at {best} "
        f"({rates[best]:.1f} images/s, training only)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
