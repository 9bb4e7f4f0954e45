"""Test-time distribution shift on saved models: corruptions, drift, class-prior shift, AdaBN.

The study's question: BatchNorm stores population statistics at training time; when the input
distribution drifts those statistics go stale. Batch Renormalization (Ioffe 2017) was designed for
small and non-i.i.d. minibatches at *training* time; whether it also helps under *test-time*
shift is what this module measures, against the practitioner's fix, AdaBN (Li et al. 2016):
re-estimate the normalization statistics on unlabeled data from the shifted distribution.

Everything here is evaluation only (no retraining) and deterministic: shifted test sets come from
a fixed seed in the shift settings, not the run's seed, so every model is scored on identical
inputs and comparisons between variants and seeds are paired.

The shifted sets other than single corruptions are built in
:mod:`study.experiments.shift_sets`; AdaBN is :mod:`study.experiments.adabn`.

CLI: ``python -m study.experiments.shift --run <run_dir> [--run <run_dir> ...] --data <cache.pt>
[--threads 1]`` writes each ``<run_dir>/shift.csv`` with the columns in :data:`COLUMNS`.
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from study.components.corruptions import CORRUPTIONS, MAX_SEVERITY, corrupt, corruption_param
from study.config import CONF_DIR
from study.experiments.adabn import adapt_norm_statistics, norm_modules
from study.experiments.shift_sets import (
    drift_slices,
    prior_proportions,
    prior_shift_indices,
    shift_generator,
)
from study.outputs import atomic_path

__all__ = [
    "COLUMNS",
    "ShiftError",
    "adapt_norm_statistics",
    "drift_slices",
    "evaluate_run",
    "load_settings",
    "main",
    "norm_modules",
    "prior_proportions",
    "prior_shift_indices",
    "write_csv",
]

COLUMNS = ("shift", "severity", "adapted", "slice", "accuracy", "loss", "param", "n", "n_norm")
DEFAULT_SETTINGS = CONF_DIR / "shift.yaml"


class ShiftError(Exception):
    """Bad input (missing file, unusable settings); the message is one line naming the fix."""


def load_settings(path: str | Path | None = None):
    """Shift settings (conf/shift.yaml by default) as an OmegaConf DictConfig, checked."""
    from omegaconf import OmegaConf

    path = Path(path) if path is not None else DEFAULT_SETTINGS
    if not path.is_file():
        raise ShiftError(f"{path}: shift settings not found; pass --settings conf/shift.yaml")
    s = OmegaConf.load(path)
    for name in [*s.corruptions, *s.drift.mix]:
        if name not in CORRUPTIONS:
            raise ShiftError(
                f"{path}: unknown corruption {name!r}; use one of {', '.join(CORRUPTIONS)}"
            )
    if any(not 1 <= sev <= MAX_SEVERITY for sev in s.severities):
        raise ShiftError(f"{path}: severities must be in 1..{MAX_SEVERITY}")
    if any(r < 1 for r in s.prior.ratios):
        raise ShiftError(f"{path}: prior.ratios must be >= 1 (largest / smallest class)")
    if not int(s.batch_size) >= 1:
        raise ShiftError(f"{path}: batch_size must be a positive integer")
    if s.get("adapt_batch_size") is not None and not int(s.adapt_batch_size) >= 2:
        raise ShiftError(f"{path}: adapt_batch_size must be null (one batch) or at least 2")
    return s


def _interfaces():
    # Imported here so the corruption and AdaBN functions work without the data and model modules.
    from study.components.data import DataError, load_splits, normalize
    from study.components.models import build_model

    return build_model, load_splits, normalize, DataError


def _device(name: str) -> torch.device:
    # Shift evaluation is cheap: a run trained on a GPU may be scored on a CPU node, so "cuda"
    # without a GPU falls back to the CPU instead of failing.
    if name in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _load_run(run_dir: Path, cache_path: Path, threads: int | None):
    """The run's config, its data splits and its saved model on the evaluation device."""
    from omegaconf import DictConfig, OmegaConf

    cfg_path, model_path = run_dir / "config.yaml", run_dir / "model.pt"
    if not cfg_path.is_file():
        raise ShiftError(
            f"{cfg_path}: run config not found; pass --run a run folder written by study.train"
        )
    if not model_path.is_file():
        raise ShiftError(
            f"{model_path}: saved model not found; train the run first (study.train writes it)"
        )
    if not cache_path.is_file():
        raise ShiftError(
            f"{cache_path}: missing data cache; build it with `snakemake {cache_path}`"
        )
    cfg = OmegaConf.load(cfg_path)
    if not isinstance(cfg, DictConfig) or "data" not in cfg or "model" not in cfg:
        raise ShiftError(f"{cfg_path}: not a run config (no data or model); retrain the run")
    torch.set_num_threads(int(threads if threads is not None else cfg.get("threads", 1) or 1))
    device = _device(str(cfg.get("device", "cpu")))

    build_model, load_splits, _, DataError = _interfaces()
    try:
        splits = load_splits(cfg.data, cache_path)
    except DataError as e:  # its message already names the file and the fix
        raise ShiftError(str(e)) from e
    model = build_model(cfg.model, tuple(splits.test_x.shape[1:]), len(splits.classes))
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # a truncated file or a model.pt from another config
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ShiftError(
            f"{model_path}: cannot load into the model of {cfg_path} ({first}); retrain the run"
        ) from e
    return splits, model.to(device).eval(), device


class _Scorer:
    """Accuracy and mean loss of one saved model on a set, as trained and after AdaBN.

    Each adaptation starts from the trained weights and statistics, so shifts do not compound.
    """

    def __init__(self, model: nn.Module, splits, device: torch.device, settings) -> None:
        _, _, self.normalize, _ = _interfaces()
        self.model, self.device = model, device
        self.mean, self.std = splits.mean, splits.std
        self.trained = copy.deepcopy(model.state_dict())
        self.n_norm = len(norm_modules(model))
        self.batch_size = int(settings.batch_size)
        self.adapt_batch_size = settings.get("adapt_batch_size")

    def batches(self, xu: torch.Tensor, size: int):
        for i in range(0, len(xu), size):
            yield self.normalize(xu[i : i + size].to(self.device), self.mean, self.std)

    def metrics(self, logits: list[torch.Tensor], yu: torch.Tensor) -> tuple[float, float]:
        yu = yu.to(self.device)
        logits_all = torch.cat(logits).float()
        loss = F.cross_entropy(logits_all, yu, reduction="sum").item()
        correct = int((logits_all.argmax(1) == yu).sum())
        return correct / len(yu), loss / len(yu)

    def score(self, xu: torch.Tensor, yu: torch.Tensor) -> tuple[float, float]:
        with torch.inference_mode():
            return self.metrics([self.model(xb) for xb in self.batches(xu, self.batch_size)], yu)

    def score_adapted(self, xu: torch.Tensor, yu: torch.Tensor) -> tuple[float, float]:
        if self.adapt_batch_size is None:
            # One batch: exact AdaBN, and its pass already yields the adapted outputs (see
            # adapt_norm_statistics), which saves a third pass over the data.
            out: list[torch.Tensor] = []
            adapt_norm_statistics(self.model, self.batches(xu, len(xu)), outputs=out)
            result = self.metrics(out, yu)
        else:
            adapt_norm_statistics(self.model, self.batches(xu, int(self.adapt_batch_size)))
            result = self.score(xu, yu)
        self.model.load_state_dict(self.trained)  # the next shift adapts from the trained weights
        return result

    def rows(self, shift: str, severity, param, xu, yu, slice_: int | None = None) -> list[dict]:
        """The two rows of one shifted set: as trained, then adapted."""
        base = {"shift": shift, "severity": severity, "slice": slice_, "param": param}
        base |= {"n": len(yu), "n_norm": self.n_norm}
        acc, loss = self.score(xu, yu)
        rows = [base | {"adapted": False, "accuracy": acc, "loss": loss}]
        if self.n_norm:  # else adaptation is the identity: the adapted row repeats the measurement
            acc, loss = self.score_adapted(xu, yu)
        return rows + [base | {"adapted": True, "accuracy": acc, "loss": loss}]


def evaluate_run(
    run_dir: str | Path, cache_path: str | Path, settings, threads: int | None = None
) -> list[dict]:
    """Score a saved run under every shift in ``settings``, as trained and with AdaBN.

    Returns rows with :data:`COLUMNS`: ``shift`` (clean, a corruption name, drift, prior),
    ``severity`` (0 for clean, 1..5 for corruptions, the slice's fractional severity for drift,
    None for prior), ``adapted`` (AdaBN on the same unlabeled inputs), ``slice`` (drift time slice
    0..T-1, None otherwise), ``accuracy``, ``loss`` (mean cross-entropy), ``param`` (the
    corruption's parameter, the prior's imbalance ratio, else None), ``n`` (images), ``n_norm``
    (layers whose statistics AdaBN re-estimated; 0 means adapted rows equal the unadapted ones).
    None is written as an empty CSV cell: figures and claims select corruption rows as those with
    a severity and no slice, drift rows as those with a slice.
    """
    splits, model, device = _load_run(Path(run_dir), Path(cache_path), threads)
    scorer = _Scorer(model, splits, device, settings)
    x, y, n_classes = splits.test_x, splits.test_y, len(splits.classes)
    seed = int(settings.seed)
    rows = scorer.rows("clean", 0, None, x, y)
    for name in settings.corruptions:
        for sev in settings.severities:
            xc = corrupt(x, name, sev, shift_generator(seed, name, sev))
            rows += scorer.rows(name, sev, corruption_param(name, sev), xc, y)
    d = settings.drift
    stream = drift_slices(
        x, y, slices=int(d.slices), max_severity=float(d.max_severity), mix=list(d.mix), seed=seed
    )
    for t, (sev, _, xt, yt) in enumerate(stream):
        rows += scorer.rows("drift", round(sev, 4), None, xt, yt, slice_=t)
    for ratio in settings.prior.ratios:
        idx = prior_shift_indices(y, n_classes, float(ratio), seed)
        rows += scorer.rows("prior", None, ratio, x[idx], y[idx])
    return rows


def write_csv(rows: list[dict], path: str | Path) -> None:
    """Write rows atomically: a temp file in the same folder, then os.replace."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            out = dict(r)
            for k in ("accuracy", "loss"):
                out[k] = f"{r[k]:.6f}"
            w.writerow(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m study.experiments.shift",
        description="Evaluate saved runs under test-time distribution shift; writes shift.csv.",
    )
    p.add_argument(
        "--run",
        required=True,
        action="append",
        help="run folder with config.yaml and model.pt; repeat it to score several runs in one "
        "process (one start-up), each as it would be scored alone",
    )
    p.add_argument("--data", required=True, help="data cache (.pt) written by the prepare step")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the run's)")
    p.add_argument("--settings", default=None, help=f"shift settings (default: {DEFAULT_SETTINGS})")
    a = p.parse_args(argv)
    try:
        settings = load_settings(a.settings)
    except ShiftError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for run in a.run:  # every run is attempted; the job fails if any did
        start = time.perf_counter()
        try:
            rows = evaluate_run(run, a.data, settings, threads=a.threads)
            out = Path(run) / "shift.csv"
            write_csv(rows, out)
        except ShiftError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"wrote {out} ({len(rows)} rows) in {time.perf_counter() - start:.1f}s")
    return 2 if failed else 0


if __name__ == "__main__":
    from study.startup import exit_job

    exit_job(main())
