"""The training step a run takes, timed as the study runs it: study.training.run.build makes the
run (real Fashion-MNIST split, data and augmentation on the run's device, the model in the memory
format and precision its config and device give) and study.training.loop.train_epoch trains whole
epochs (batch order, augmentation, step, divergence check), so every lever the training code
applies on a device is in the figure, and only those.

On a CPU that is the plain step (fp32, contiguous; a run's numbers there are what they were). On a
CUDA device the levers are channels-last convolutions for the ResNet, the scale's precision (bf16
autocast at the full scale), data and augmentation resident on the device, no host sync per step,
and optionally ``torch.compile`` of the model (``compile=True``: measured here, not yet used by
the study's runs).
"""

from __future__ import annotations

import tempfile
import time

# The dense bf16 tensor-core peak of an H200 (SXM), in TFLOP/s: the ceiling a step is held to.
H200_BF16_PEAK_TFLOPS = 989.0


def run_config(overrides: list[str], device: str, out: str):
    from study.config import compose

    return compose([*overrides, f"device={device}", f"run.out={out}", "run.verbose=false"])


def flops_per_image(overrides: list[str]) -> float:
    """Forward and backward FLOPs of one training image through the scale's model (counted by
    torch's FLOP counter on a CPU batch: matmuls and convolutions, the work tensor cores do)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from study.components.models import build_model

    cfg = run_config(overrides, "cpu", tempfile.gettempdir())
    model = build_model(cfg.model, (1, 28, 28), 10)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 8


def epoch_rate(overrides: list[str], device_name: str, seconds: float, compile: bool = False):
    """Images per second of whole training epochs of one run on ``device_name``, for at least
    ``seconds`` after one warm-up epoch; with ``compile`` the model is torch.compile'd first."""
    import torch

    from study.training.checkpoint import BestEpoch
    from study.training.loop import train_epoch
    from study.training.parts import Progress
    from study.training.run import build, setup

    with tempfile.TemporaryDirectory() as out:
        cfg = run_config(overrides, device_name, out)
        device = setup(cfg)
        parts = build(cfg, device)
        if compile:
            parts.model = torch.compile(parts.model)
        progress = Progress(best=BestEpoch(False, 1))
        train_epoch(parts, progress)  # warm-up: allocator, kernels, compilation
        sync(device)
        t0, images = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            outcome = train_epoch(parts, progress)
            if isinstance(outcome, tuple):
                raise RuntimeError(f"the measured run diverged at step {outcome[0]}")
            images += parts.steps_per_epoch * parts.batch_size
        sync(device)
        return images / (time.perf_counter() - t0)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _worker(overrides, seconds, compile, queue) -> None:
    queue.put(epoch_rate(overrides, "cuda", seconds, compile))


def shared_rates(overrides: list[str], slots: int, seconds: float, compile: bool) -> list[float]:
    """Images per second of each of ``slots`` runs training at once on the one GPU."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(overrides, seconds, compile, queue)) for _ in range(slots)
    ]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=seconds * 20 + 600) for _ in procs]
    for p in procs:
        p.join()
    return rates


def device_line(label: str, rates: list[float], flops: float, peak_tflops: float) -> str:
    """One printed figure: images/s per run and for the whole device, and the share of the
    device's bf16 peak the whole device's arithmetic reaches."""
    total = sum(rates)
    tflops = total * flops / 1e12
    return (
        f"{label}_images_per_s {total:.1f} (per run {total / len(rates):.1f}, {len(rates)} runs); "
        f"{tflops:.2f} TFLOP/s = {tflops / peak_tflops:.2%} of the {peak_tflops:.0f} TFLOP/s "
        "bf16 peak"
    )
