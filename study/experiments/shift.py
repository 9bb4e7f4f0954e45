"""Test-time distribution shift on saved models: corruptions, drift, class-prior shift, AdaBN.

The study's question: BatchNorm stores population statistics at training time; when the input
distribution drifts those statistics go stale. Batch Renormalization (Ioffe 2017) was designed for
small and non-i.i.d. minibatches at *training* time; whether it also helps under *test-time*
shift is what this module measures, against the practitioner's fix, AdaBN (Li et al. 2016):
re-estimate the normalization statistics on unlabeled data from the shifted distribution.

Everything here is evaluation only (no retraining) and deterministic: shifted test sets come from
a fixed seed in the shift settings, not the run's seed, so every model is scored on identical
inputs and comparisons between variants and seeds are paired.

CLI: ``python -m study.experiments.shift --run <run_dir> --data <cache.pt> [--threads 1]`` writes
``<run_dir>/shift.csv`` with the columns in :data:`COLUMNS`.
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from study.components.corruptions import CORRUPTIONS, MAX_SEVERITY, corrupt, corruption_param
from study.config import CONF_DIR
from study.outputs import atomic_path

COLUMNS = ("shift", "severity", "adapted", "slice", "accuracy", "loss", "param", "n", "n_norm")
DEFAULT_SETTINGS = CONF_DIR / "shift.yaml"


def _generator(seed: int, *key: object) -> torch.Generator:
    # A stable stream per (seed, key): crc32 of the key, not Python's salted hash().
    salt = zlib.crc32(":".join(map(str, key)).encode())
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + salt) % (2**63))


# ------------------------------------------------------------------------------
# Gradual drift: the "model served for two years" scenario. The test set, in a fixed random order,
# is cut into T consecutive time slices; slice t is corrupted at severity max_severity·t/(T−1), so
# the first slice is the clean deployment-day data and the last is as hard as the per-corruption
# sets at max_severity. Each image gets one corruption of the mix (balanced, seeded assignment), so
# a slice mixes several kinds of decay at the same strength, as a fleet of ageing sensors would.
# ------------------------------------------------------------------------------
def drift_slices(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    slices: int,
    max_severity: float,
    mix: Sequence[str],
    seed: int,
) -> list[tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Split (x, y) into ``slices`` time slices of growing severity.

    Returns [(severity, idx, x_t, y_t), ...]: ``idx`` indexes the slice's images in ``x``, ``x_t``
    is ``x[idx]`` corrupted at ``severity``, ``y_t`` is ``y[idx]``.
    """
    if slices < 2:
        raise ValueError(f"drift needs at least 2 slices, got {slices}")
    if not mix:
        raise ValueError("drift needs at least one corruption in its mix")
    order = torch.randperm(len(x), generator=_generator(seed, "drift", "order"))
    out = []
    for t, idx in enumerate(torch.tensor_split(order, slices)):
        severity = max_severity * t / (slices - 1)
        xt, yt = x[idx].clone(), y[idx]
        # Balanced assignment: a random permutation of the slice, dealt round-robin to the mix.
        kinds = torch.randperm(len(idx), generator=_generator(seed, "drift", "kind", t)) % len(mix)
        for k, name in enumerate(mix):
            sel = kinds == k
            if sel.any() and severity > 0:
                xt[sel] = corrupt(xt[sel], name, severity, _generator(seed, "drift", name, t))
        out.append((severity, idx, xt, yt))
    return out


# ------------------------------------------------------------------------------
# Class-prior (label) shift: p(y) changes, p(x | y) does not. The class of rank r (in a seeded
# random order, the same at every level) keeps ratio^(−r/(K−1)) of n images, n the smallest class
# size: the power-law ("exponential profile") long-tailed sets of Cui et al. 2019, with ratio =
# largest / smallest class count. BN statistics re-estimated on such a set are dominated by the
# frequent classes, which is where AdaBN can hurt.
# ------------------------------------------------------------------------------
def prior_proportions(n_classes: int, ratio: float, seed: int) -> torch.Tensor:
    """Target share of each class (sums to 1) for an imbalance ratio >= 1."""
    if ratio < 1:
        raise ValueError(f"imbalance ratio must be >= 1, got {ratio}")
    rank = torch.empty(n_classes, dtype=torch.float64)
    rank[torch.randperm(n_classes, generator=_generator(seed, "prior", "order"))] = torch.arange(
        n_classes, dtype=torch.float64
    )
    w = float(ratio) ** (-rank / max(1, n_classes - 1))
    return w / w.sum()


def prior_shift_indices(y: torch.Tensor, n_classes: int, ratio: float, seed: int) -> torch.Tensor:
    """Indices of a class-skewed subset of ``y``: class k keeps ratio ** (-rank_k / (K-1)) of the
    smallest class size (at least one image), chosen at random with a fixed seed."""
    share = prior_proportions(n_classes, ratio, seed)
    counts = torch.bincount(y, minlength=n_classes)
    n_max = int(counts[counts > 0].min())  # every class can supply its quota
    # The epsilon keeps exact quotas (ratio 10 at rank K-1: 1000 / 10) from flooring to one less.
    quota = (share / share.max() * n_max + 1e-9).floor().clamp(min=1).long()
    perm = torch.randperm(len(y), generator=_generator(seed, "prior", "pick"))
    y_perm = y[perm]
    picked = [perm[y_perm == k][: int(quota[k])] for k in range(n_classes)]
    return torch.cat(picked).sort().values


# ------------------------------------------------------------------------------
# AdaBN (Li et al. 2016, "Revisiting Batch Normalization For Practical Domain Adaptation").
# ------------------------------------------------------------------------------
def norm_modules(model: nn.Module) -> list[nn.Module]:
    """Modules with running statistics: nn.BatchNorm* and its subclasses (the study's BatchRenorm),
    and any other module exposing running_mean, running_var and reset_running_stats. Layers built
    with track_running_stats=False have none."""
    found = []
    for m in model.modules():
        is_bn = isinstance(m, nn.modules.batchnorm._BatchNorm)
        has_api = all(hasattr(m, a) for a in ("running_mean", "running_var", "reset_running_stats"))
        if (is_bn or has_api) and getattr(m, "running_mean", None) is not None:
            found.append(m)
    return found


class _Moments:
    """Exact per-channel mean and variance over many batches (Chan et al. parallel update)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, x: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() < 2 or x.shape[1] != channels:
            raise ValueError(
                f"normalization layer with {channels} channels got input {tuple(x.shape)}; "
                "AdaBN expects channels in dimension 1"
            )
        nb = x.numel() // channels
        # BatchNorm's own statistics kernel (batch mean and population variance per channel, in
        # float32 as in training): on CPU an order of magnitude faster than torch.var_mean over
        # dims (0, 2, ...). The pooling across batches is done in float64.
        mean_b, var_b = torch.batch_norm_update_stats(x.detach().float(), None, None, 0.0)
        mean_b, var_b = mean_b.double(), var_b.double()
        m2_b = var_b * nb
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mean_b, m2_b
        else:
            n = self.n + nb
            delta = mean_b - self.mean
            self.mean = self.mean + delta * nb / n
            self.m2 = self.m2 + m2_b + delta**2 * self.n * nb / n
            self.n = n
        return mean_b, var_b  # this batch's mean and biased variance

    def unbiased_var(self) -> torch.Tensor:
        assert self.m2 is not None
        return self.m2 / max(1, self.n - 1)


@torch.no_grad()
def adapt_norm_statistics(
    model: nn.Module,
    x_float_batches: Iterable[torch.Tensor],
    outputs: list[torch.Tensor] | None = None,
) -> int:
    """Re-estimate every normalization layer's running statistics on unlabeled batches (AdaBN).

    Afterwards each layer's running_mean/running_var are the mean and (unbiased) variance of its
    input over all batches, where every earlier layer already normalized with the new data's
    statistics, as in Li et al. 2016. Returns the number of layers adapted; 0 means the model has
    no running statistics and is left unchanged.

    How: the whole model stays in eval mode, so dropout, DropConnect and stochastic depth are off
    and the pass is deterministic. A pre-forward hook on each normalization layer computes the
    current batch's statistics and writes them into the layer's running buffers just before its own
    eval-mode forward, which therefore normalizes with batch statistics exactly as a BatchNorm in
    training mode would; the hook also accumulates exact totals over all batches. This never calls
    a layer's training-mode forward, which matters for Batch Renormalization: once relaxed (r_max
    > 1, d_max > 0, as at the end of training), its training forward after a reset corrects
    towards mean 0, variance 1 and passes a nearly un-normalized input on to deeper layers.
    momentum is untouched: totals are kept here, not by each layer's moving average.

    ``outputs``, if given, receives the model's output for each batch of the pass. With all the
    data in one batch, every layer normalizes with the statistics of the whole set, which is
    Li et al.'s definition exactly, and these outputs are the adapted model's, up to the
    n/(n−1) factor between the population variance used in the pass and the unbiased one stored.
    """
    modules = norm_modules(model)
    if not modules:
        return 0
    flags = {m: m.training for m in model.modules()}
    moments = {m: _Moments() for m in modules}

    def hook(module: nn.Module, args: tuple) -> None:
        mean_b, var_b = moments[module].add(args[0], module.running_mean.numel())
        module.running_mean.copy_(mean_b)
        module.running_var.copy_(var_b)

    for m in modules:
        m.reset_running_stats()
    handles = [m.register_forward_pre_hook(hook) for m in modules]
    model.eval()
    try:
        n_batches = 0
        for xb in x_float_batches:
            out = model(xb)
            if outputs is not None:
                outputs.append(out)
            n_batches += 1
        if n_batches == 0:
            raise ValueError("AdaBN needs at least one batch of unlabeled data")
    finally:
        for h in handles:
            h.remove()
        for m, training in flags.items():
            m.train(training)
    for m in modules:
        m.running_mean.copy_(moments[m].mean)
        m.running_var.copy_(moments[m].unbiased_var())
        if getattr(m, "num_batches_tracked", None) is not None:
            m.num_batches_tracked.fill_(n_batches)
    return len(modules)


# ------------------------------------------------------------------------------
# Evaluation of one saved run.
# ------------------------------------------------------------------------------
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
    from omegaconf import DictConfig, OmegaConf

    run_dir, cache_path = Path(run_dir), Path(cache_path)
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

    build_model, load_splits, normalize, DataError = _interfaces()
    try:
        splits = load_splits(cfg.data, cache_path)
    except DataError as e:  # its message already names the file and the fix
        raise ShiftError(str(e)) from e
    x, y = splits.test_x, splits.test_y
    n_classes = len(splits.classes)
    model = build_model(cfg.model, tuple(x.shape[1:]), n_classes)
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # a truncated file or a model.pt from another config
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ShiftError(
            f"{model_path}: cannot load into the model of {cfg_path} ({first}); retrain the run"
        ) from e
    model.to(device).eval()
    trained = copy.deepcopy(model.state_dict())
    n_norm = len(norm_modules(model))
    bs = int(settings.batch_size)
    adapt_bs = settings.get("adapt_batch_size")
    mean, std = splits.mean, splits.std

    def batches(xu: torch.Tensor, size: int):
        for i in range(0, len(xu), size):
            yield normalize(xu[i : i + size].to(device), mean, std)

    def metrics(logits: list[torch.Tensor], yu: torch.Tensor) -> tuple[float, float]:
        yu = yu.to(device)
        logits_all = torch.cat(logits).float()
        loss = F.cross_entropy(logits_all, yu, reduction="sum").item()
        correct = int((logits_all.argmax(1) == yu).sum())
        return correct / len(yu), loss / len(yu)

    def score(xu: torch.Tensor, yu: torch.Tensor) -> tuple[float, float]:
        with torch.inference_mode():
            return metrics([model(xb) for xb in batches(xu, bs)], yu)

    def score_adapted(xu: torch.Tensor, yu: torch.Tensor) -> tuple[float, float]:
        if adapt_bs is None:
            # One batch: exact AdaBN, and its pass already yields the adapted outputs (see
            # adapt_norm_statistics), which saves a third pass over the data.
            out: list[torch.Tensor] = []
            adapt_norm_statistics(model, batches(xu, len(xu)), outputs=out)
            result = metrics(out, yu)
        else:
            adapt_norm_statistics(model, batches(xu, int(adapt_bs)))
            result = score(xu, yu)
        model.load_state_dict(trained)  # the next shift adapts from the trained weights
        return result

    rows: list[dict] = []

    def add(shift: str, severity, param, xu, yu, slice_: int | None = None) -> None:
        base = {"shift": shift, "severity": severity, "slice": slice_, "param": param}
        base |= {"n": len(yu), "n_norm": n_norm}
        acc, loss = score(xu, yu)
        rows.append(base | {"adapted": False, "accuracy": acc, "loss": loss})
        if n_norm:  # else adaptation is the identity: the adapted row repeats the measurement
            acc, loss = score_adapted(xu, yu)
        rows.append(base | {"adapted": True, "accuracy": acc, "loss": loss})

    seed = int(settings.seed)
    add("clean", 0, None, x, y)
    for name in settings.corruptions:
        for sev in settings.severities:
            xc = corrupt(x, name, sev, _generator(seed, name, sev))
            add(name, sev, corruption_param(name, sev), xc, y)
    d = settings.drift
    stream = drift_slices(
        x, y, slices=int(d.slices), max_severity=float(d.max_severity), mix=list(d.mix), seed=seed
    )
    for t, (sev, _, xt, yt) in enumerate(stream):
        add("drift", round(sev, 4), None, xt, yt, slice_=t)
    for ratio in settings.prior.ratios:
        idx = prior_shift_indices(y, n_classes, float(ratio), seed)
        add("prior", None, ratio, x[idx], y[idx])
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
        description="Evaluate a saved run under test-time distribution shift; writes shift.csv.",
    )
    p.add_argument("--run", required=True, help="run folder with config.yaml and model.pt")
    p.add_argument("--data", required=True, help="data cache (.pt) written by the prepare step")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the run's)")
    p.add_argument("--settings", default=None, help=f"shift settings (default: {DEFAULT_SETTINGS})")
    a = p.parse_args(argv)
    start = time.perf_counter()
    try:
        settings = load_settings(a.settings)
        rows = evaluate_run(a.run, a.data, settings, threads=a.threads)
        out = Path(a.run) / "shift.csv"
        write_csv(rows, out)
    except ShiftError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(rows)} rows) in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
