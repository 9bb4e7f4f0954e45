"""Shifted test sets that are not a single corruption: a drift stream and class-prior shift.

Both are deterministic: every draw comes from :func:`shift_generator`, a stream keyed by the shift
settings' seed and the draw's purpose, never by the run's seed, so every model of a study is scored
on identical inputs (study/experiments/shift.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch

from study.components.corruptions import corrupt


def shift_generator(seed: int, *key: object) -> torch.Generator:
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
    order = torch.randperm(len(x), generator=shift_generator(seed, "drift", "order"))
    out = []
    for t, idx in enumerate(torch.tensor_split(order, slices)):
        severity = max_severity * t / (slices - 1)
        xt, yt = x[idx].clone(), y[idx]
        # Balanced assignment: a random permutation of the slice, dealt round-robin to the mix.
        deal = shift_generator(seed, "drift", "kind", t)
        kinds = torch.randperm(len(idx), generator=deal) % len(mix)
        for k, name in enumerate(mix):
            sel = kinds == k
            if sel.any() and severity > 0:
                xt[sel] = corrupt(xt[sel], name, severity, shift_generator(seed, "drift", name, t))
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
    order = torch.randperm(n_classes, generator=shift_generator(seed, "prior", "order"))
    rank[order] = torch.arange(n_classes, dtype=torch.float64)
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
    perm = torch.randperm(len(y), generator=shift_generator(seed, "prior", "pick"))
    y_perm = y[perm]
    picked = [perm[y_perm == k][: int(quota[k])] for k in range(n_classes)]
    return torch.cat(picked).sort().values
