"""The pathologies experiment's command: every problem, one CSV (one measured value per row) and a
JSON of its fits beside it. Sizes per scale in conf/scale/*.yaml (``run.pathologies``)."""

from __future__ import annotations

import argparse
import csv
import json
import time

import pandas as pd
import torch

from study.errors import ConfigError
from study.experiments.pathologies import (
    activations,
    conditioning,
    fits,
    gradient_noise,
    newton_asymptotics,
    saddle,
)
from study.outputs import atomic_path, write_text

COLUMNS = ["experiment", "method", "geometry", "x", "seed", "quantity", "value", "reached",
           "parameter"]  # fmt: skip


def _numbers(kind):
    def parse(text: str):
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            # argparse turns this into one usage line and exit status 2
            raise argparse.ArgumentTypeError(
                f"{text!r}: give comma-separated numbers, e.g. 1,2,4"
            ) from None

    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="data cache (.pt) with train_x, train_y")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--summary", help="JSON of fits (default: the CSV's .json)")
    p.add_argument("--seeds", type=int, default=5, help="seeds of every stochastic part")
    p.add_argument(
        "--kappas", type=_numbers(float), default=[10, 31.6, 100, 316, 1000, 3162, 10000]
    )
    p.add_argument("--eps", type=float, default=1e-4, help="target relative loss (quadratics)")
    p.add_argument("--deltas", type=_numbers(float), default=[1e-2, 1e-4, 1e-6, 1e-8])
    p.add_argument("--batches", type=_numbers(int), default=[1, 2, 4, 8, 16, 32, 64, 128, 256])
    p.add_argument("--noise-n", type=int, default=1000, help="examples of the noise problem")
    p.add_argument("--draws", type=int, default=200, help="minibatches per B and seed")
    p.add_argument("--depths", type=_numbers(int), default=[2, 4, 8, 16])
    p.add_argument("--dead-rates", type=_numbers(float), default=[0.1, 3.0])
    p.add_argument(
        "--newton-sizes", type=_numbers(int), default=[256, 512, 1024, 1536, 2048, 3072, 4096]
    )
    p.add_argument("--newton-n", type=int, default=1024, help="examples of the Newton problem")
    p.add_argument("--newton-target-max", type=int, default=1024,
                   help="largest N timed to the target")  # fmt: skip
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each Newton part")
    p.add_argument("--threads", type=int, default=1, help="torch threads (timings: use 1)")
    args = p.parse_args(argv)
    if args.seeds < 2:
        raise ConfigError(f"--seeds {args.seeds}: intervals need at least 2 seeds")
    if max(args.batches) >= args.noise_n:
        raise ConfigError(f"--batches: every B must be below --noise-n {args.noise_n}")
    return args


def images(path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training images as intensities in [0, 1], flattened, and their labels."""
    cache = torch.load(path, map_location="cpu", weights_only=True)
    if "train_x" not in cache or "train_y" not in cache:
        raise ConfigError(f"{path}: lacks train_x/train_y; rebuild the data cache")
    x = cache["train_x"][:n].to(torch.float64).div_(255)
    return x.reshape(len(x), -1), cache["train_y"][:n].long()


def measure(args) -> list[dict]:
    seeds = list(range(args.seeds))
    pixels, labels = images(args.data, max(args.noise_n, 2000))
    if len(pixels) < max(args.noise_n, 2000):
        raise ConfigError(
            f"{args.data}: {len(pixels)} training images; the problems need "
            f"{max(args.noise_n, 2000)} (2,000 for the dead-unit batches), rebuild the cache"
        )
    standard = (pixels - pixels.mean(0)) / pixels.std(0).clamp_min(1e-6)
    rows = conditioning.run(args.kappas, seeds, eps=args.eps)
    rows += conditioning.zigzag(100.0, seeds)
    rows += saddle.run(args.deltas, seeds)
    rows += gradient_noise.run(
        standard[: args.noise_n], labels[: args.noise_n], args.batches, seeds, args.draws
    )
    rows += activations.vanishing(standard[:256], labels[:256], args.depths, seeds)
    # Raw intensities (all ≥ 0): a large step along the batch's gradient then moves a unit's
    # pre-activation the same way on every image, which is how a high rate kills it.
    rows += activations.dead_units(
        pixels[:512], labels[:512], pixels[1000:2000], args.dead_rates, seeds
    )
    rows += newton_asymptotics.run(
        args.newton_sizes, args.newton_n, 0, args.repeats, 1e-6, args.newton_target_max
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.process_time()
    rows = measure(args)
    summary = fits.summary(pd.DataFrame(rows))
    summary["cpu_seconds"] = time.process_time() - start
    with atomic_path(args.out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    out = args.summary or str(args.out).rsplit(".", 1)[0] + ".json"
    write_text(out, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"pathologies: {len(rows)} rows in {summary['cpu_seconds']:.1f} CPU s", flush=True)


if __name__ == "__main__":
    main()
