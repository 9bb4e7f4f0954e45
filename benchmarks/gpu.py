"""Several runs sharing one GPU against the CPU, and the projected time of the full study.

``python -m benchmarks.gpu [--slots 1,2,4,8] [--seconds 15] [--scale full]``

A small model leaves most of a GPU idle, so the study can place several runs on one device (GPU
slots: with ``--resources gpu=<devices × slots>`` Snakemake starts that many runs whose device
is cuda at once). For each slot count this starts that many processes, each training the
scale's model on data resident on the device (no host copy, no host sync inside the step: the
loss stays on the device, as in study.training.loop's GPU path), and measures the images per
second of all of them together. The same step on one CPU core, times the machine's cores, is the
CPU's figure. The projection: the study's training images (every run and tuning run, epochs ×
steps × batch) over the best rate. Evaluation and start-up are left out (both are small next to
training: evaluation 0.1 of a run, start-up paid once per batch of runs).

Without a CUDA device it says so in one line and measures the CPU only (so it runs, and is tested,
anywhere); under 10 minutes on a GPU machine with the defaults.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

NO_CUDA = "no CUDA device: measuring the CPU only; GPU slots are not measured"


def step_rate(overrides: list[str], device_name: str, seconds: float, threads: int = 1) -> float:
    """Images per second of the scale's training step on ``device_name`` for ``seconds``."""
    import torch
    import torch.nn.functional as F

    from study.components.models import build_model
    from study.components.optimizers import build_optimizer
    from study.config import compose
    from study.training.evaluation import autocast

    torch.set_num_threads(threads)
    cfg = compose(overrides)
    device = torch.device(device_name)
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28), 10).to(device)
    optimizer = build_optimizer(cfg.optim, model)
    batch = int(cfg.train.batch_size)
    # Resident data: a few batches generated on the device, reused in turn.
    xs = torch.randn(8, batch, 1, 28, 28, device=device)
    ys = torch.randint(0, 10, (8, batch), device=device)
    losses = torch.zeros((), device=device)

    def step(i: int) -> None:
        nonlocal losses
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, cfg.train.precision):
            logits = model(xs[i % 8])
        loss = F.cross_entropy(logits.float(), ys[i % 8])
        loss.backward()
        optimizer.step()
        losses = losses + loss.detach()  # stays on the device: no sync

    model.train()
    for i in range(3):  # warm-up: allocator, kernels
        step(i)
    sync(device)
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            step(steps)
            steps += 1
        sync(device)
    return steps * batch / (time.perf_counter() - t0)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _worker(overrides, device_name, seconds, queue) -> None:
    queue.put(step_rate(overrides, device_name, seconds))


def shared_rate(overrides: list[str], slots: int, seconds: float) -> float:
    """Images per second of ``slots`` processes training at once on the one GPU."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(overrides, "cuda", seconds, queue)) for _ in range(slots)
    ]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=seconds * 10 + 300) for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


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
    p.add_argument("--slots", default="1,2,4,8", help="runs sharing the GPU, e.g. 1,2,4,8")
    p.add_argument("--seconds", type=float, default=15.0, help="timed seconds per measurement")
    p.add_argument("--scale", default="full", help="the study scale projected (default full)")
    p.add_argument("--cpu-seconds", type=float, help="timed seconds on the CPU (default --seconds)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    overrides = [f"scale={args.scale}", "device=cpu"]
    cores = os.cpu_count() or 1
    cpu_one = step_rate(overrides, "cpu", args.cpu_seconds or args.seconds)
    rates = {"cpu": cpu_one * cores}
    print(f"cpu_images_per_s {cpu_one:.1f} one core; x {cores} cores = {rates['cpu']:.1f}")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
        for slots in (int(s) for s in args.slots.split(",") if s.strip()):
            rate = shared_rate(overrides[:1] + ["device=cuda"], slots, args.seconds)
            rates[f"gpu_slots_{slots}"] = rate
            print(f"gpu_slots_{slots}_images_per_s {rate:.1f} ({rate / rates['cpu']:.1f}x the CPU)")
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
