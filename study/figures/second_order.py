"""Figure of the second-order experiment: cost per iteration against N, and iterations to target."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from study.outputs import atomic_path  # noqa: E402

__all__ = ["second_order_scaling"]


def _law(fit: dict, n: np.ndarray) -> np.ndarray:
    return np.exp(fit["intercept"] + fit["slope"] * np.log(n))


def second_order_scaling(csv_path, summary_path, out_png) -> Path:
    """Log-log Newton time and memory per iteration against N with the fitted laws (dashed beyond
    the measured sizes: extrapolation to 1e8), and iterations to the target per method."""
    df = pd.read_csv(csv_path)
    summary = json.loads(Path(summary_path).read_text())
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (("s_per_iter_median", "time_exponent", "seconds per iteration"),
              ("peak_bytes", "memory_exponent", "bytes per iteration"))  # fmt: skip
    for ax, (column, key, label) in zip(axes[:2], panels, strict=True):
        for family, info in summary["families"].items():
            rows = df[df["family"] == family]
            for method, part in rows.groupby("method"):
                if column == "peak_bytes" or method == "newton":
                    style = "o-" if method == "newton" else "."
                    ax.plot(part["n_params"], part[column], style, label=f"{family} {method}")
            fit = info[key]
            measured = np.geomspace(min(info["n_params"]), max(info["n_params"]), 50)
            beyond = np.geomspace(max(info["n_params"]), 1e8, 50)
            line = ax.plot(measured, _law(fit, measured), "-", alpha=0.6)[0]
            legend = f"{family} newton N^{fit['slope']:.2f} (dashed: extrapolation)"
            ax.plot(beyond, _law(fit, beyond), "--", color=line.get_color(), label=legend)
        ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel=label)
        ax.legend(fontsize=6)
    ax = axes[2]
    for (family, method), part in df.groupby(["family", "method"]):
        reached = part[part["target_reached"].astype(str) == "True"]
        ax.plot(reached["n_params"], reached["iterations"], "o-", label=f"{family} {method}")
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="iterations to target")
    ax.set_title(summary.get("target", ""), fontsize=7)
    ax.legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(out_png)
