"""Performance of the study on this machine, measured against what users would write instead.

``python -m study.bench [section] [options]``; sections (``throughput`` when none is named):

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
- ``all``: every section (efficiency and eval-share are skipped when there is no study to read).

Every figure is printed as one line ``<key> <number> <note>``. Timings are medians over repeats,
with the loops of (a), (b) and (c) interleaved so that they share the machine's noise.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from study.config import CONF_DIR

ROOT = CONF_DIR.parent
FASHION_ROOT = ROOT / "resources" / "fashion-mnist"
HEAVY_MODULES = ("pandas", "matplotlib", "seaborn", "scipy")
TARGETS = {
    "ratio_a_b": (">=", 3.5),
    "ratio_a_c": (">=", 0.9),
    "startup_ratio": ("<=", 1.3),
    "efficiency": (">=", 0.85),
    "plan_s": ("<", 10.0),
}
AUGMENT = ("augment.shift=2", "augment.flip=true", "augment.cutout=10")


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


class Report:
    """Collects the figures and prints each as ``key value note`` (one line, parseable)."""

    def __init__(self):
        self.figures: dict[str, float] = {}

    def add(self, key: str, value: float, note: str = "") -> float:
        self.figures[key] = value
        verdict = ""
        if key in TARGETS:
            op, bound = TARGETS[key]
            held = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
            verdict = f"target {op} {bound:g}: {'PASS' if held else 'MISS'}"
            note = f"{note}; {verdict}" if note else verdict
        print(f"{key:<34} {fmt(value):>12}  {note}".rstrip(), flush=True)
        return value

    def section(self, title: str) -> None:
        print(f"\n# {title}", flush=True)


def fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "nan"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4f}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def cpu_name() -> str:
    """lscpu's model name (the processor as the cloud or the vendor calls it)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------
# Throughput: (a) the study's loop, (b) the usual torchvision loop, (c) compute only
# ---------------------------------------------------------------------------------------------


@dataclass
class Sizes:
    n_train: int = 10_000
    batch_size: int = 128
    epochs: int = 1  # per timed repeat
    repeats: int = 5
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


def study_config(sizes: Sizes, out: Path, cache: Path, threads: int, device: str, epochs: int):
    from study.config import compose

    return compose(
        [
            "model=resmlp",
            "optim=adamw",
            "schedule=cosine",
            f"data.n_train={sizes.n_train}",
            f"train.batch_size={sizes.batch_size}",
            f"train.epochs={epochs}",
            *AUGMENT,
            *sizes.eval_overrides,
            f"threads={threads}",
            f"device={device}",
            f"run.out={out}",
            f"run.cache={cache}",
            "run.verbose=false",
        ]
    )


def write_torchvision_layout(root: Path) -> Path:
    """torchvision's FashionMNIST folder (``<root>/FashionMNIST/raw``) from the vendored files,
    so (b) uses torchvision's own Dataset class offline."""
    from study.components.data import FASHION_MNIST_FILES

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_FILES.values():
        (raw / name.removesuffix(".gz")).write_bytes(
            gzip.decompress((FASHION_ROOT / name).read_bytes())
        )
    return root


class Cutout:
    """The per-image cutout users add to a transform pipeline (DeVries & Taylor's reference
    code): zero one size×size square, clipped at the border, at a uniform random centre. It runs
    on the ToTensor output, before Normalize, so it erases to black as the study's cutout does."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, img):
        import torch

        _, h, w = img.shape
        cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
        top, left = cy - self.size // 2, cx - self.size // 2
        img[:, max(top, 0) : top + self.size, max(left, 0) : left + self.size] = 0
        return img


def user_loader(splits, root: Path, batch_size: int, workers: int, seed: int, device):
    """What a user writes: torchvision's Dataset (a PIL image per item), per-image transforms and
    a shuffling DataLoader. The Dataset holds the study's 10,000 training images, as a Subset of
    the official training set would."""
    import torch
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(28, padding=2),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            Cutout(10),
            transforms.Normalize(splits.mean, splits.std),
        ]
    )
    dataset = torchvision.datasets.FashionMNIST(str(root), train=True, transform=transform)
    dataset.data, dataset.targets = splits.train_x[:, 0].cpu(), splits.train_y.cpu()
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,  # as the study's loop, which drops a ragged last batch
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
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


def throughput(report: Report, sizes: Sizes, threads: int, device_name: str, cache: Path | None):
    import torch

    from study.components.data import load_splits, normalize, read_dataset, write_cache
    from study.components.optimizers import build_optimizer
    from study.startup import avoid_compiler_import
    from study.train import pick_device, train_run

    # The job applies this patch before torch.optim's first call; torchvision imports the
    # compiler stack, which would make the patch step aside, so it goes first here as well.
    avoid_compiler_import()
    torch.set_num_threads(threads)
    device = pick_device(device_name)
    tmp = Path(tempfile.mkdtemp(prefix="study-bench-"))
    loaders = {}
    try:
        if cache is None:
            cache = tmp / "fashion_mnist.pt"
            write_cache(read_dataset("fashion_mnist", FASHION_ROOT), cache)
        cfg = study_config(sizes, tmp / "run", cache, threads, str(device), sizes.epochs)
        warm_cfg = study_config(sizes, tmp / "warm", cache, threads, str(device), 1)
        splits = load_splits(cfg.data, cache)
        steps = sizes.n_train // sizes.batch_size

        # (c): the training images, normalized once, in batches of a fixed shuffled order.
        gen = torch.Generator().manual_seed(0)
        order = torch.randperm(len(splits.train_y), generator=gen)[: steps * sizes.batch_size]
        xs = normalize(splits.train_x[order], splits.mean, splits.std).to(device)
        ys = splits.train_y[order].to(device)
        premade = [
            (xs[i : i + sizes.batch_size], ys[i : i + sizes.batch_size])
            for i in range(0, len(ys), sizes.batch_size)
        ]
        tv_root = write_torchvision_layout(tmp / "tv")
        for w in sizes.workers:
            loaders[w] = user_loader(splits, tv_root, sizes.batch_size, w, 0, device)
        setup_s = []

        def run_a(run_cfg) -> float:
            metrics = train_run(run_cfg.copy())
            setup_s.append(metrics["wall_s"] - metrics["train_s"] - metrics["eval_s"])
            return float(metrics["images_per_s"])

        def run_b(workers: int) -> float:
            model = fresh_model(cfg, device)
            # The user's AdamW, with the study's hyperparameters; its step is the same eager code
            # as the study's (the patch above is class-wide), so (b) differs from (c) by its data.
            opt = torch.optim.AdamW(
                model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0
            )
            return step_loop(loaders[workers], model, opt, sizes.epochs, device)

        def run_c() -> float:
            model = fresh_model(cfg, device)
            return step_loop(
                premade, model, build_optimizer(cfg.optim, model), sizes.epochs, device
            )

        loops = {"a": lambda: run_a(cfg), "c": run_c}
        for w in sizes.workers:
            loops[f"b{w}"] = lambda w=w: run_b(w)
        # Warm-up: first-call costs (allocator, thread pools, worker start, Hydra) of every loop.
        run_a(warm_cfg)
        for name, loop in loops.items():
            if name != "a":
                loop()
        rates: dict[str, list[float]] = defaultdict(list)
        # CPU time of this process over wall time of the one-thread loops in it: near 1 unless
        # something else took the core (the loader process of b1 runs elsewhere, so b1 is left out).
        cpu_s = wall_s = 0.0
        for repeat in range(sizes.repeats):
            names = list(loops)
            names = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in names:
                t_cpu, t_wall = time.process_time(), time.perf_counter()
                rates[name].append(loops[name]())
                if name != "b1":
                    cpu_s += time.process_time() - t_cpu
                    wall_s += time.perf_counter() - t_wall
        a, c = median(rates["a"]), median(rates["c"])
        b_workers = 0 if 0 in sizes.workers else sizes.workers[0]
        b = median(rates[f"b{b_workers}"])
        peak = matmul_peak(sizes.matmul_n, device, max(sizes.repeats, 1))
        forward_flops, train_flops = train_flops_per_image(fresh_model(cfg, device))
    finally:
        loaders.clear()  # stops persistent loader processes
        shutil.rmtree(tmp, ignore_errors=True)

    report.section(
        f"throughput: resmlp (width {cfg.model.width}, {cfg.model.blocks} blocks), "
        f"{sizes.n_train} Fashion-MNIST images, batch {sizes.batch_size}, AdamW, "
        f"{threads} thread(s), {device}; median of {sizes.repeats} × {sizes.epochs} epoch(s)"
    )
    report.add("a_images_per_s", a, "study loop: train_run, shift 2 + flip + cutout 10")
    for w in sizes.workers:
        extra = " (a second process loads the data)" if w else ""
        report.add(
            f"b{w}_images_per_s",
            median(rates[f"b{w}"]),
            f"torchvision FashionMNIST + transforms + DataLoader, num_workers={w}{extra}",
        )
    report.add(
        "a_setup_s",
        median(setup_s[1:]),
        "in-run time of (a) outside steps and evaluation: data cache, model, output files",
    )
    report.add("c_images_per_s", c, "compute only: pre-made normalized batches, same model/opt")
    same = " (same threads)" if b_workers == 0 else ""
    report.add("ratio_a_b", a / b, f"a / b, num_workers={b_workers}{same}")
    if 1 in sizes.workers and 0 in sizes.workers:
        report.add("ratio_a_b1", a / median(rates["b1"]), "a / b with one loader process")
    report.add("ratio_a_c", a / c, "a / c")
    report.add("forward_mflop_per_image", forward_flops / 1e6, "matmul FLOPs, 2·in·out per Linear")
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
        cpu_s / wall_s,
        "process CPU time / wall time of the timed loops (near 1 with 1 thread on an idle machine)",
    )
    return rates


# ---------------------------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------------------------

# The real job's entry point with only the data left out: ``study.train.main`` (Hydra, logging),
# then what ``train_run`` imports and builds up to and including its first optimizer step.
JOB_PROBE = """
import json, sys
import study.train as train

def first_step(cfg):
    import torch
    import torch.nn.functional as F
    from study.components.augmentations import augment_batch, is_active
    from study.components.data import load_splits, normalize
    from study.components.layers import set_progress
    from study.components.models import build_model
    from study.components.optimizers import build_optimizer, penalty
    from study.components.schedules import lr_factor

    torch.set_num_threads(cfg.threads)
    model = build_model(cfg.model, (1, 28, 28), 10)
    optimizer = build_optimizer(cfg.optim, model)
    x = torch.randn(cfg.train.batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (cfg.train.batch_size,))
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    loaded = [m for m in sys.modules if m.split(".")[0] in HEAVY or m == "torch._dynamo"]
    print(json.dumps(sorted({m.split(".")[0] if m != "torch._dynamo" else m for m in loaded})))

train.train_run = first_step
sys.argv = ["study.train", "threads=1", "device=cpu", "run.verbose=false", "run.out=" + OUT]
train.main()
"""


def time_command(argv: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    return elapsed, done.stdout


def startup(report: Report, repeats: int, cache: Path | None, job_overrides=()):
    tmp = Path(tempfile.mkdtemp(prefix="study-bench-startup-"))
    try:
        if cache is None:
            from study.components.data import read_dataset, write_cache

            cache = tmp / "fashion_mnist.pt"
            write_cache(read_dataset("fashion_mnist", FASHION_ROOT), cache)
        probe = f"HEAVY = {HEAVY_MODULES!r}\nOUT = {str(tmp / 'run')!r}\n{JOB_PROBE}"
        # A whole (short) training job as the workflow starts it: its wall time outside the
        # run's own wall_s is what every job of a study pays on top of its in-run time.
        real_job = [sys.executable, "-m", "study.train", "data.n_train=1280", "train.epochs=1"]
        real_job += ["threads=1", "device=cpu", "run.verbose=false", *job_overrides]
        real_job += [f"run.out={tmp / 'job'}", f"run.cache={cache}"]
        commands = {
            "torch": [sys.executable, "-c", "import torch"],
            "study_train": [sys.executable, "-c", "import study.train"],
            "job": [sys.executable, "-c", probe],
            "real_job": real_job,
        }
        # An untimed first round fills the file cache, as a study's second job finds it
        # (skipped for a single repeat, which only checks that everything runs).
        warm = 1 if repeats > 1 else 0
        times: dict[str, list[float]] = defaultdict(list)
        loaded: list[str] = []
        for repeat in range(repeats + warm):
            for name, argv in commands.items():
                elapsed, stdout = time_command(argv, tmp)
                if name == "real_job":
                    elapsed -= read_metrics(tmp / "job" / "metrics.json")["wall_s"]
                if repeat >= warm:
                    times[name].append(elapsed)
                if name == "job":
                    loaded = json.loads(stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    torch_s, job_s = median(times["torch"]), median(times["job"])
    heavy = [m for m in loaded if m in HEAVY_MODULES]
    report.section(f"start-up: fresh interpreters, median of {repeats}")
    report.add("startup_import_torch_s", torch_s, 'python -c "import torch"')
    report.add("startup_import_study_train_s", median(times["study_train"]), "import study.train")
    report.add(
        "startup_job_s",
        job_s,
        "study.train.main → Hydra compose → model → optimizer → first step (no data)",
    )
    report.add("startup_ratio", job_s / torch_s, "job start-up / import torch")
    report.add(
        "job_process_overhead_s",
        median(times["real_job"]),
        "python -m study.train: process wall − in-run wall_s (start-up, outputs, exit)",
    )
    report.add(
        "startup_heavy_imports",
        len(heavy),
        f"of {', '.join(HEAVY_MODULES)} loaded by the job: {', '.join(heavy) or 'none'}; "
        f"compiler stack (torch._dynamo) loaded: {'yes' if 'torch._dynamo' in loaded else 'no'}",
    )
    return times, loaded


# ---------------------------------------------------------------------------------------------
# Pipeline efficiency (from a Snakemake log and the run folders)
# ---------------------------------------------------------------------------------------------

TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d{1,2}:\d{2}:\d{2} \d{4})\]\s*$")
RULE_LINE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):\s*$")
JOBID_LINE = re.compile(r"^\s+jobid: (\d+)\s*$")
OUTPUT_LINE = re.compile(r"^\s+output: (.*)$")
# Snakemake 9 writes "Finished jobid: 4 (Rule: train)"; 7 and 8 wrote "Finished job 4.".
FINISHED_LINE = re.compile(r"^Finished job(?:id:)? (\d+)\b")
CORES_LINE = re.compile(r"^Provided cores: (\d+)")
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
            pending.outputs = [o.strip() for o in m.group(1).split(",") if o.strip()]
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


def job_metrics(log: SnakemakeLog, job: Job, scale_dir: Path) -> Path | None:
    """The metrics.json a job wrote under ``scale_dir``, if it wrote one."""
    for out in job.outputs:
        path = (log.workdir / out).resolve()
        if path.name == "metrics.json" and path.is_relative_to(scale_dir):
            return path
    return None


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


def read_metrics(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def efficiency(report: Report, scale_dir: Path, log_path: Path, cores: int | None = None) -> dict:
    scale_dir = Path(scale_dir).resolve()
    log = parse_snakemake_log(log_path)
    cores = cores or log.cores or os.cpu_count() or 1
    in_run, overheads, job_walls = 0.0, [], []
    by_rule: dict[str, list[float]] = defaultdict(list)
    counted: set[Path] = set()
    for job in jobs_under(log, scale_dir):
        by_rule[job.rule].append(job.seconds)
        metrics_path = job_metrics(log, job, scale_dir)
        if metrics_path is None or not metrics_path.is_file():
            continue
        wall = float(read_metrics(metrics_path)["wall_s"])
        in_run += wall
        counted.add(metrics_path)
        overheads.append(job.seconds - wall)
        job_walls.append(job.seconds)
    on_disk = set(scale_dir.rglob("metrics.json"))
    if not counted:
        # A log that names no outputs (another Snakemake version): count every run on disk.
        for path in on_disk:
            in_run += float(read_metrics(path)["wall_s"])
        counted = on_disk
    capacity = log.wall_s * cores
    busy = sum(s for walls in by_rule.values() for s in walls)
    report.section(f"pipeline efficiency: {scale_dir.name} study, log {log.path.name}")
    report.add("study_wall_s", log.wall_s, "first to last timestamp of the Snakemake log")
    report.add("study_cores", cores, "Snakemake --cores")
    report.add("study_jobs", len(jobs_under(log, scale_dir)), "finished jobs of this scale")
    report.add("in_run_jobs", len(counted), "runs and tuning runs with a metrics.json")
    if len(on_disk) != len(counted):
        report.add("metrics_not_from_log", len(on_disk - counted), "metrics.json not counted")
    report.add("in_run_s", in_run, "sum of metrics.json wall_s")
    report.add("efficiency", in_run / capacity, "in-run time / (wall × cores)")
    report.add("busy_fraction", busy / capacity, "time cores ran any job / (wall × cores)")
    if overheads:
        report.add(
            "job_overhead_mean_s",
            statistics.fmean(overheads),
            "per run: job wall (log, 1 s resolution) − in-run wall_s",
        )
        report.add("job_wall_mean_s", statistics.fmean(job_walls), "per run, from the log")
    for rule, walls in sorted(by_rule.items(), key=lambda kv: -sum(kv[1])):
        report.add(f"rule_s:{rule}", sum(walls), f"{len(walls)} job(s)")
    return {"in_run_s": in_run, "capacity_s": capacity, "overheads": overheads}


# ---------------------------------------------------------------------------------------------
# Evaluation share
# ---------------------------------------------------------------------------------------------


def eval_share(report: Report, scale_dir: Path) -> dict[str, tuple[float, float, int]]:
    """eval_s / (train_s + eval_s), summed over the runs of each ablation and over all runs."""
    scale_dir = Path(scale_dir)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for path in sorted(scale_dir.rglob("metrics.json")):
        rel = path.relative_to(scale_dir).parts
        metrics = read_metrics(path)
        kind = "tune" if rel[0] == "tune" else "runs"
        key = f"{kind}/{metrics.get('ablation') or rel[min(1, len(rel) - 2)]}"
        for k in (key, "all"):
            totals[k][0] += float(metrics.get("train_s") or 0.0)
            totals[k][1] += float(metrics.get("eval_s") or 0.0)
            totals[k][2] += 1
    report.section(f"evaluation share: {scale_dir.name} study, eval_s / (train_s + eval_s)")
    shares = {}
    for key in sorted(totals, key=lambda k: (k == "all", k)):
        train_s, eval_s, n = totals[key]
        share = eval_s / (train_s + eval_s) if train_s + eval_s > 0 else math.nan
        shares[key] = (train_s, eval_s, n)
        report.add(
            f"eval_share:{key}", share, f"{n} runs, train {train_s:.1f} s, eval {eval_s:.1f} s"
        )
    return shares


# ---------------------------------------------------------------------------------------------
# Planning a large study
# ---------------------------------------------------------------------------------------------

OPTIMS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "exponential", "cosine", "linear", "inverse_sqrt", "piecewise")


def grid_ablation(n_runs: int, seeds: int = 3) -> tuple[str, int]:
    """An ablation file (YAML text) whose grid gives at least ``n_runs`` runs: optimizers ×
    schedules (distinct Hydra compositions) × dropout rates (value overrides)."""
    side = max(1, min(len(OPTIMS), math.ceil(math.sqrt(n_runs / seeds))))
    per_rate = side * side * seeds
    rates = [round(0.05 * i, 2) for i in range(math.ceil(n_runs / per_rate))]
    text = "\n".join(
        [
            "title: Planning benchmark",
            "question: How long does planning a large study take?",
            f"baseline: optim-{OPTIMS[0]}_schedule-{SCHEDULES[0]}_dropout-{rates[0]}",
            f"seeds: {seeds}",
            "common: [train.epochs=8]",
            "grid:",
            f"  optim: [{', '.join(OPTIMS[:side])}]",
            f"  schedule: [{', '.join(SCHEDULES[:side])}]",
            f"  model.dropout: [{', '.join(str(r) for r in rates)}]",
        ]
    )
    return text + "\n", per_rate * len(rates)


# What ``snakemake -n`` reads: the workflow, its configs, their schemas and conda environment, the
# report's inputs.
WORKFLOW_FILES = (
    "Snakefile",
    "rules",
    "conf",
    "envs",
    "schemas",
    "paper/templates",
    "paper/workflow.rst",
    "paper/figure_caption.rst",
)


def copy_files(dest: Path, names=WORKFLOW_FILES) -> None:
    """Copy the named files and folders of the checkout into ``dest`` (a disposable workflow)."""
    for name in names:
        src, target = ROOT / name, dest / name
        if not src.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)


def copy_workflow(dest: Path, keep_ablations: bool) -> None:
    copy_files(dest)
    if not keep_ablations:
        for path in (dest / "conf" / "ablation").glob("*.yaml"):
            path.unlink()


def job_stats(output: str) -> dict[str, int]:
    """The ``Job stats`` table of ``snakemake -n``: rule → number of jobs."""
    stats, inside = {}, False
    for line in output.splitlines():
        if line.startswith("Job stats"):
            inside, stats = True, {}
            continue
        if inside and (m := re.match(r"^(\w+)\s+(\d+)\s*$", line)):
            stats[m.group(1)] = int(m.group(2))
            if m.group(1) == "total":
                inside = False
    return stats


def plan_time(report: Report, n_runs: int, repeats: int, keep_ablations: bool, scale: str):
    tmp = Path(tempfile.mkdtemp(prefix="study-bench-plan-"))
    try:
        copy_workflow(tmp, keep_ablations)
        text, grid_runs = grid_ablation(n_runs)
        (tmp / "conf" / "ablation" / "bench_grid.yaml").write_text(text)
        argv = [sys.executable, "-m", "snakemake", "-n", "--cores", "2"]
        argv += ["--config", f"scale={scale}"]
        times, stats = [], {}
        for _ in range(repeats):
            elapsed, stdout = time_command(argv, tmp)
            times.append(elapsed)
            stats = job_stats(stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    runs = stats.get("train", 0) + stats.get("tune", 0)
    report.section(
        f"planning: snakemake -n --cores 2 on a copy of the workflow with a generated grid "
        f"({'plus' if keep_ablations else 'without'} the study's ablations), median of {repeats}"
    )
    report.add("plan_grid_runs", grid_runs, "runs of the generated ablation")
    report.add("plan_runs", runs, "training and tuning runs planned")
    report.add("plan_jobs", stats.get("total", 0), "jobs planned in all")
    report.add("plan_s", median(times), "wall time of snakemake -n")
    return times, stats


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

SECTIONS = ("throughput", "startup", "efficiency", "plan", "eval-share", "all")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m study.bench", description=__doc__.split("\n\n")[0])
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
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    sections = SECTIONS[:-1] if args.section == "all" else (args.section,)
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    if "throughput" in sections:
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
    if "startup" in sections:
        quick = Sizes.quick().eval_overrides if args.quick else ()
        startup(report, args.repeats or (1 if args.quick else 7), args.cache, quick)
    if "plan" in sections:
        n_runs = args.runs or (12 if args.quick else 1000)
        plan_time(
            report, n_runs, args.repeats or (1 if args.quick else 3), not args.quick, "default"
        )
    study_sections = [s for s in ("efficiency", "eval-share") if s in sections]
    if study_sections:
        scale_dir = args.scale_dir.resolve()
        log = args.log or find_log(scale_dir, args.log_dir)
        has_runs = scale_dir.is_dir() and any(scale_dir.rglob("metrics.json"))
        if not has_runs:
            print(f"\n# {', '.join(study_sections)}: skipped, no runs under {scale_dir}")
        else:
            if "efficiency" in study_sections:
                if log is None:
                    print(f"\n# efficiency: skipped, no Snakemake log for {scale_dir}")
                else:
                    efficiency(report, scale_dir, log, args.cores)
            if "eval-share" in study_sections:
                eval_share(report, scale_dir)
    if args.json:
        args.json.write_text(json.dumps(report.figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
