"""Pinned CPU kernel paths: what they cost in single-run throughput, and whether they change the
numbers on this machine.

Three process-wide settings choose the kernels a CPU run takes: PyTorch's dispatch level
(``ATEN_CPU_CAPABILITY``), MKL's conditional numerical reproducibility mode (``MKL_CBWR``) and
oneDNN's highest instruction set (``ONEDNN_MAX_CPU_ISA``). They are read once, when the libraries
load, so every arm is its own training job (``python -m study.train``, the study's real run),
and the arms are interleaved round by round so that they share the machine's noise. Each arm
reports its training images per second (from the run's history.csv, evaluation excluded) and its
final test loss and accuracy, which are compared with the unpinned arm's bit for bit.

Bit-identity *across CPU kinds*, the reason to pin, needs a second kind of CPU; this section only
measures one machine and says so.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.report import Report, median, paired_ratio, ratio_quartiles
from benchmarks.training import TRAIN_ENTRY
from benchmarks.workflow import ROOT, data_cache

PIN_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
# name -> the environment it sets (the unpinned arm clears all three).
ARMS = {
    "default": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "compatible": {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "COMPATIBLE",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    },
}
PROBE = "import torch; print(torch.backends.cpu.get_cpu_capability())"


def _environment(arm: dict[str, str], threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PIN_VARIABLES}
    env.update(arm)
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _train(out: Path, cache: Path, env: dict[str, str], overrides: list[str]) -> dict:
    subprocess.run(
        [sys.executable, "-m", TRAIN_ENTRY, *overrides, f"run.cache={cache}", f"run.out={out}",
         "run.verbose=false"],
        check=True, cwd=ROOT, env=env, capture_output=True,
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "history.csv") as f:
        seconds = sum(float(r["seconds"]) for r in csv.DictReader(f))
    return {"metrics": metrics, "seconds": seconds}


def pinning(
    report: Report, repeats: int, threads: int, cache: Path | None, n_train: int, epochs: int
) -> None:
    report.section(
        f"pinning: one training run per arm and round, resmlp + AdamW, {n_train} images x "
        f"{epochs} epochs, {threads} thread(s), {repeats} interleaved rounds"
    )
    overrides = ["model=resmlp", "optim=adamw", "schedule=cosine", f"data.n_train={n_train}",
                 f"train.epochs={epochs}", "device=cpu", f"threads={threads}",
                 "seed=0"]  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name in ARMS}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = data_cache(cache, Path(tmp))
        for name, arm in ARMS.items():
            env = _environment(arm, threads)
            isa = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                                 text=True, check=True).stdout.strip()  # fmt: skip
            print(f"arm {name}: {arm or 'nothing pinned'}; PyTorch dispatches to {isa}")
        for r in range(repeats):
            for name, arm in ARMS.items():
                env = _environment(arm, threads)
                run = _train(Path(tmp) / f"{name}-{r}", cache, env, overrides)
                rates[name].append(n_train * epochs / run["seconds"])
                results[name] = run["metrics"]
    for name in ARMS:
        report.add(f"pinning_{name}_images_per_s", median(rates[name]), "training images/s")
    for name in ARMS:
        if name == "default":
            continue
        report.add(
            f"pinning_{name}_over_default",
            paired_ratio(rates[name], rates["default"]),
            f"rounds' quartiles {ratio_quartiles(rates[name], rates['default'])}",
        )
        same = all(results[name][k] == results["default"][k] for k in ("test_loss", "test_acc"))
        print(
            f"{name}: test_loss {results[name]['test_loss']!r} test_acc "
            f"{results[name]['test_acc']!r} against default {results['default']['test_loss']!r} "
            f"{results['default']['test_acc']!r}: {'identical' if same else 'DIFFERENT'}"
        )
    print("bit-identity across CPU kinds: not checked (one kind of CPU measured here)")
