"""The weight-magnitude histogram of the regularization variants (read from their model.pt)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from study.figures.common import Context, FigureError

WEIGHT_VARIANTS = ("none", "l1", "l2")
"""Variants compared by ``weight_histogram`` (the regularization ablation's names)."""

# Weights below this magnitude are drawn in the first bin of the log-scaled histogram: exact zeros
# (which L1 produces) have no place on a log axis but must still be counted.
WEIGHT_FLOOR = 1e-6
# Matches the sparsity threshold of metrics.json (``weight_sparsity``: |w| < 1e-3).
SPARSITY_THRESHOLD = 1e-3


def _load_weights(path: Path) -> np.ndarray:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    # Architecture contract: "weights" are the tensors with two or more dimensions.
    tensors = [
        t.detach().float().abs().flatten()
        for t in state.values()
        if torch.is_tensor(t) and t.is_floating_point() and t.ndim >= 2
    ]
    if not tensors:
        return np.empty(0)
    # float64: a float32 floor would round below the first bin edge and drop out of the plot.
    return torch.cat(tensors).numpy().astype(np.float64)


def weight_histogram(ctx: Context) -> tuple[Figure, str]:
    what = "weight_histogram"
    wanted = [v for v in ctx.variants if v in WEIGHT_VARIANTS or v == ctx.ablation.baseline]
    if not wanted:
        raise FigureError(
            f"ablation {ctx.name!r}: {what} needs variants named {', '.join(WEIGHT_VARIANTS)}"
        )
    weights: dict[str, np.ndarray] = {}
    missing = []
    for variant in wanted:
        paths = [d / "model.pt" for d in ctx.seed_dirs(variant) if (d / "model.pt").is_file()]
        if not paths:
            missing.append(str(ctx.scale_dir / "runs" / ctx.name / variant / "seed*" / "model.pt"))
            continue
        weights[variant] = np.concatenate([_load_weights(p) for p in paths])
    if missing:
        raise FigureError(f"ablation {ctx.name!r}: {what} needs {', '.join(missing)}")
    top = max(float(w.max()) for w in weights.values() if len(w))
    bins = np.logspace(math.log10(WEIGHT_FLOOR), math.log10(max(top, 10 * WEIGHT_FLOOR)), 60)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    notes = []
    for variant, w in weights.items():
        clipped = np.clip(w, WEIGHT_FLOOR, None)
        label = f"{variant} ({100 * float((w < SPARSITY_THRESHOLD).mean()):.3g}% < 1e-3)"
        ax.hist(
            clipped,
            bins=bins,
            histtype="step",
            lw=1.6,
            color=ctx.color(variant),
            label=label,
            weights=np.full(len(w), 1 / len(w)),
        )
        notes.append(variant)
    ax.set_xscale("log")
    ax.axvline(SPARSITY_THRESHOLD, color="0.5", ls=":", lw=1)
    ax.set_xlabel("|w| (first bin: |w| ≤ 1e-6, exact zeros included)")
    ax.set_ylabel("fraction of weights")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    caption = (
        "Distribution of weight magnitudes |w| (Linear and Conv weights, all seeds pooled) for "
        f"{', '.join(notes)}, on a log scale; the legend gives the fraction below 1e-3 (dotted "
        "line), the sparsity threshold of the run metrics."
    )
    return fig, caption
