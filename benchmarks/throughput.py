"""Throughput: images per second of three training loops side by side in one process.

On the default model (resmlp) and data (10,000 Fashion-MNIST images, batch 128, AdamW):
(a) the study's own loop with augmentation (shift 2, flip, cutout 10), through the real
training run, and (a_plain) the same loop without augmentation, the configuration most of the
default study's runs use, so that (a_plain)/(c) is the loop's own overhead and (a)/(c) adds the
augmentation work; (b) the loop users would write instead (``benchmarks.user_loop``); (c) the
compute-only limit: the same model and optimizer stepping on pre-made normalized batches. Also
the achieved FLOP/s of (c) against a matmul peak measured in the same run. The loops are
interleaved so that they share the machine's noise.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from benchmarks import training
from benchmarks.report import Report, median, paired_ratio, ratio_quartiles
from benchmarks.user_loop import user_loader, write_torchvision_layout
from benchmarks.workflow import data_cache

AUGMENT = ("augment.shift=2", "augment.flip=true", "augment.cutout=10")


@dataclass
class Sizes:
    n_train: int = 10_000
    batch_size: int = 128
    epochs: int = 1  # per timed repeat
    repeats: int = 11
    matmul_n: int = 1024
    workers: tuple[int, ...] = (0, 1)
    # Evaluation does not count in (a)'s rate; quick mode shrinks it to keep tests fast.
    eval_overrides: tuple[str, ...] = ()

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            n_train=512,
            epochs=1,
            repeats=1,
            matmul_n=256,
            eval_overrides=("data.n_val=100", "data.n_test=100", "train.eval_train_max=100"),
        )


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def study_config(
    sizes: Sizes,
    out: Path,
    cache: Path,
    threads: int,
    device: str,
    epochs: int,
    augment: tuple[str, ...] = AUGMENT,
):
    from study.config import compose

    return compose(
        [
            "model=resmlp",
            "optim=adamw",
            "schedule=cosine",
            f"data.n_train={sizes.n_train}",
            f"train.batch_size={sizes.batch_size}",
            f"train.epochs={epochs}",
            *augment,
            *sizes.eval_overrides,
            f"threads={threads}",
            f"device={device}",
            f"run.out={out}",
            f"run.cache={cache}",
            "run.verbose=false",
        ]
    )


def step_loop(batches, model, optimizer, epochs: int, device) -> float:
    """Images per second of the plain training step over ``batches`` (an iterable of (x, y))."""
    import torch.nn.functional as F

    model.train()
    images = 0
    sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            images += len(y)
    sync(device)
    return images / (time.perf_counter() - t0)


def fresh_model(cfg, device, seed: int = 0):
    import torch

    from study.components.models import build_model

    torch.manual_seed(seed)
    return build_model(cfg.model, (1, 28, 28), 10).to(device)


def train_flops_per_image(model) -> tuple[float, float]:
    """Matmul FLOPs per image of one forward pass and of one training step (forward + backward).

    Each Linear costs 2·in·out per image forward; backward costs the same for the weight gradient
    and again for the input gradient, except in the first layer, whose input (the data) needs no
    gradient. Elementwise work (ReLU, loss, optimizer) is not counted.
    """
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    forward = [2.0 * m.in_features * m.out_features for m in linears]
    train = 3 * sum(forward) - (forward[0] if forward else 0.0)
    return sum(forward), train


def matmul_peak(n: int, device, repeats: int) -> float:
    """FLOP/s of an n×n float32 matmul loop: the attainable peak of the machine and thread count."""
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    for _ in range(3):
        torch.mm(a, b, out=c)
    sync(device)
    t0 = time.perf_counter()
    torch.mm(a, b, out=c)
    sync(device)
    # About 0.3 s per repeat, whatever the machine.
    iters = max(3, int(0.3 / max(time.perf_counter() - t0, 1e-6)))
    rates = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            torch.mm(a, b, out=c)
        sync(device)
        rates.append(2.0 * n**3 * iters / (time.perf_counter() - t0))
    return median(rates)


def premade_batches(splits, sizes: Sizes, device) -> list:
    """(c)'s input: the training images, normalized once, in batches of a fixed shuffled order."""
    import torch

    from study.components.data import normalize

    steps = sizes.n_train // sizes.batch_size
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(splits.train_y), generator=gen)[: steps * sizes.batch_size]
    xs = normalize(splits.train_x[order], splits.mean, splits.std).to(device)
    ys = splits.train_y[order].to(device)
    return [
        (xs[i : i + sizes.batch_size], ys[i : i + sizes.batch_size])
        for i in range(0, len(ys), sizes.batch_size)
    ]


def make_loops(cfg, plain_cfg, sizes: Sizes, device, premade, loaders: dict, setup_s: list[float]):
    """The timed loops by name (a, a_plain, c, then b per worker count), each returning images
    per second, and (a) on any config (for its warm-up). (a) appends its in-run set-up time to
    ``setup_s``."""
    import torch

    from study.components.optimizers import build_optimizer

    def run_a(run_cfg) -> float:
        metrics = training.train_run(run_cfg.copy())
        setup_s.append(metrics["wall_s"] - metrics["train_s"] - metrics["eval_s"])
        return float(metrics["images_per_s"])

    def run_b(workers: int) -> float:
        model = fresh_model(cfg, device)
        # The user's AdamW, with the study's hyperparameters; its step is the same eager code
        # as the study's (the patch is class-wide), so (b) differs from (c) by its data.
        opt = torch.optim.AdamW(
            model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0
        )
        return step_loop(loaders[workers], model, opt, sizes.epochs, device)

    def run_c() -> float:
        model = fresh_model(cfg, device)
        return step_loop(premade, model, build_optimizer(cfg.optim, model), sizes.epochs, device)

    loops = {"a": lambda: run_a(cfg), "a_plain": lambda: run_a(plain_cfg), "c": run_c}
    for w in sizes.workers:
        loops[f"b{w}"] = lambda w=w: run_b(w)
    return loops, run_a


# The loops whose ratios carry targets run back to back in every round, so that each pair shares
# the machine's state of that moment (other tenants make a shared core's speed drift by 10-20%
# within seconds); the slower user loops (b) follow them.
PAIRED = ("a", "a_plain", "c")


def interleaved_rates(loops: dict, repeats: int) -> tuple[dict[str, list[float]], float]:
    """Rates of every loop over ``repeats`` rounds, each round starting the paired loops and the
    others one loop further on, and the CPU share of the one-thread loops."""
    rates: dict[str, list[float]] = defaultdict(list)
    paired = [name for name in loops if name in PAIRED]
    others = [name for name in loops if name not in PAIRED]
    # CPU time of this process over wall time of the one-thread loops in it: near 1 unless
    # something else took the core (the loader process of b1 runs elsewhere, so b1 is left out).
    cpu_s = wall_s = 0.0
    for repeat in range(repeats):
        names = []
        for group in (paired, others):
            turn = repeat % len(group) if group else 0
            names += group[turn:] + group[:turn]
        for name in names:
            t_cpu, t_wall = time.process_time(), time.perf_counter()
            rates[name].append(loops[name]())
            if name != "b1":
                cpu_s += time.process_time() - t_cpu
                wall_s += time.perf_counter() - t_wall
    return rates, cpu_s / wall_s


@dataclass
class Measured:
    """What one throughput measurement found, before it is reported."""

    cfg: object
    rates: dict[str, list[float]]
    setup_s: list[float]
    cpu_share: float
    peak: float
    forward_flops: float
    train_flops: float


def throughput(report: Report, sizes: Sizes, threads: int, device_name: str, cache: Path | None):
    import torch

    from study.components.data import load_splits

    # The job applies this patch before torch.optim's first call; torchvision imports the
    # compiler stack, which would make the patch step aside, so it goes first here as well.
    training.avoid_compiler_import()
    torch.set_num_threads(threads)
    device = training.pick_device(device_name)
    tmp = Path(tempfile.mkdtemp(prefix="study-bench-"))
    loaders = {}
    try:
        cache = data_cache(cache, tmp)
        cfg = study_config(sizes, tmp / "run", cache, threads, str(device), sizes.epochs)
        plain_cfg = study_config(
            sizes, tmp / "plain", cache, threads, str(device), sizes.epochs, augment=()
        )
        warm_cfg = study_config(sizes, tmp / "warm", cache, threads, str(device), 1)
        splits = load_splits(cfg.data, cache)
        premade = premade_batches(splits, sizes, device)
        tv_root = write_torchvision_layout(tmp / "tv")
        for w in sizes.workers:
            loaders[w] = user_loader(splits, tv_root, sizes.batch_size, w, 0, device)
        setup_s: list[float] = []
        loops, run_a = make_loops(cfg, plain_cfg, sizes, device, premade, loaders, setup_s)
        # Warm-up: first-call costs (allocator, thread pools, worker start, Hydra) of every loop.
        run_a(warm_cfg)
        for name, loop in loops.items():
            if name not in ("a", "a_plain"):
                loop()
        rates, cpu_share = interleaved_rates(loops, sizes.repeats)
        peak = matmul_peak(sizes.matmul_n, device, max(sizes.repeats, 1))
        forward_flops, train_flops = train_flops_per_image(fresh_model(cfg, device))
    finally:
        loaders.clear()  # stops persistent loader processes
        shutil.rmtree(tmp, ignore_errors=True)
    measured = Measured(cfg, rates, setup_s, cpu_share, peak, forward_flops, train_flops)
    report_throughput(report, sizes, threads, device, measured)
    return rates


def report_throughput(report: Report, sizes: Sizes, threads: int, device, m: Measured) -> None:
    rates, peak, train_flops = m.rates, m.peak, m.train_flops
    a, c = median(rates["a"]), median(rates["c"])
    b_workers = 0 if 0 in sizes.workers else sizes.workers[0]
    report.section(
        f"throughput: resmlp (width {m.cfg.model.width}, {m.cfg.model.blocks} blocks), "
        f"{sizes.n_train} Fashion-MNIST images, batch {sizes.batch_size}, AdamW, "
        f"{threads} thread(s), {device}; median of {sizes.repeats} × {sizes.epochs} epoch(s)"
    )
    a_plain = median(rates["a_plain"])
    report.add("a_images_per_s", a, "study loop: train_run, shift 2 + flip + cutout 10")
    report.add("a_plain_images_per_s", a_plain, "study loop: train_run, no augmentation")
    for w in sizes.workers:
        extra = " (a second process loads the data)" if w else ""
        report.add(
            f"b{w}_images_per_s",
            median(rates[f"b{w}"]),
            f"torchvision FashionMNIST + transforms + DataLoader, num_workers={w}{extra}",
        )
    report.add(
        "a_setup_s",
        median(m.setup_s[1:]),
        "in-run time of (a) outside steps and evaluation: data cache, model, output files",
    )
    report.add("c_images_per_s", c, "compute only: pre-made normalized batches, same model/opt")
    same = " (same threads)" if b_workers == 0 else ""
    paired = f"median of the {len(rates['a'])} rounds' ratios"
    report.add(
        "ratio_a_b", paired_ratio(rates["a"], rates[f"b{b_workers}"]), f"a / b, num_workers="
        f"{b_workers}{same}, {paired}"
    )  # fmt: skip
    if 1 in sizes.workers and 0 in sizes.workers:
        report.add(
            "ratio_a_b1", paired_ratio(rates["a"], rates["b1"]), "a / b with one loader process"
        )
    report.add(
        "ratio_a_c",
        paired_ratio(rates["a"], rates["c"]),
        f"a / c: the loop with its augmentation work, which c has not; {paired} "
        f"({ratio_quartiles(rates['a'], rates['c'])})",
    )
    report.add(
        "ratio_a_plain_c",
        paired_ratio(rates["a_plain"], rates["c"]),
        f"a_plain / c: the loop's own overhead; {paired} "
        f"({ratio_quartiles(rates['a_plain'], rates['c'])})",
    )
    report.add(
        "forward_mflop_per_image", m.forward_flops / 1e6, "matmul FLOPs, 2·in·out per Linear"
    )
    report.add("train_mflop_per_image", train_flops / 1e6, "forward + backward matmul FLOPs")
    report.add("c_gflop_s", c * train_flops / 1e9, "achieved by (c)")
    report.add(
        "matmul_peak_gflop_s",
        peak / 1e9,
        f"{sizes.matmul_n}×{sizes.matmul_n} float32 matmul, {threads} thread(s)",
    )
    report.add("c_fraction_of_peak", c * train_flops / peak, "(c) FLOP/s / matmul peak")
    report.add(
        "cpu_share",
        m.cpu_share,
        "process CPU time / wall time of the timed loops (near 1 with 1 thread on an idle machine)",
    )
