"""The weight-magnitude histogram of an ablation's variants (read from their model.pt).

It compares the baseline with the variants that add a weight penalty to the loss
(``regularization.l1`` or ``regularization.l2`` above 0 in the runs' configs): the sparsity that
L1 produces and the shrinkage of L2 are what the figure shows. An ablation without such variants
gets every variant in the figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from study.figures.common import Context, FigureError, figure

PENALTY_KEYS = ("regularization.l1", "regularization.l2")
"""Config keys of the penalties added to the loss (decoupled weight decay is the optimizer's)."""

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


def _penalized(ctx: Context, what: str) -> set[str]:
    """Variants whose runs add a weight penalty (from runs.csv, else the ablation's overrides)."""
    try:
        runs = ctx.runs(what)
    except FigureError:  # before the tables exist: what the ablation file sets
        runs = None
    if runs is not None:
        columns = [f"config.{k}" for k in PENALTY_KEYS if f"config.{k}" in runs.columns]
        values = runs[columns].apply(pd.to_numeric, errors="coerce").fillna(0.0)
        return set(runs.loc[(values > 0).any(axis=1), "variant"])
    return {
        variant
        for variant, overrides in ctx.ablation.variants.items()
        if any(o.split("=", 1)[0] in PENALTY_KEYS for o in overrides)
    }


def compared_variants(ctx: Context, what: str = "weight_histogram") -> list[str]:
    """The baseline and the weight-penalty variants in file order; every variant if none is."""
    penalized = _penalized(ctx, what)
    if not penalized:
        return list(ctx.variants)
    return [v for v in ctx.variants if v in penalized or v == ctx.ablation.baseline]


@figure("weight_histogram", needs="model.pt of the baseline and the weight-penalty variants")
def weight_histogram(ctx: Context) -> tuple[Figure, str]:
    what = "weight_histogram"
    wanted = compared_variants(ctx, what)
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
