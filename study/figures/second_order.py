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


def _fitted_law(ax, family: str, info: dict, fit: dict) -> None:
    """The fitted power law, solid over the sizes it was fitted on, dashed beyond them to 1e8;
    nothing when too few sizes were fitted."""
    if fit.get("slope") is None or not np.isfinite(fit["slope"]):
        return
    fitted = info.get("fit_n_params", info["n_params"])
    measured = np.geomspace(min(fitted), max(fitted), 50)
    beyond = np.geomspace(max(fitted), 1e8, 50)
    line = ax.plot(measured, _law(fit, measured), "-", alpha=0.6)[0]
    legend = f"{family} newton N^{fit['slope']:.2f}, N ≥ {min(fitted)} (dashed: extrapolation)"
    ax.plot(beyond, _law(fit, beyond), "--", color=line.get_color(), label=legend)


def _time_to_target(ax, summary: dict) -> None:
    """Newton's and the fastest first-order method's seconds to the target against N, with the
    crossover marked: a vertical line at the interpolated N over the shaded bracketing sizes, or
    the text saying on which side of the measured range it lies."""
    for family, info in summary["families"].items():
        sizes = info["n_params"]
        line = ax.plot(sizes, info["newton_s_to_target"], "o-", label=f"{family} newton")[0]
        colour = line.get_color()
        best = info["best_first_order_s_to_target"]
        ax.plot(sizes, best, "s--", color=colour, label=f"{family} fastest first-order")
        cross = info.get("crossover") or {}
        bracket = cross.get("bracket") or [None, None]
        if cross.get("status") == "measured":
            ax.axvspan(*bracket, color=colour, alpha=0.12)
            ax.axvline(cross["n"], color=colour, lw=1)
            label = f" {family} crossover N≈{cross['n']:.0f}"
            ax.text(cross["n"], 0.95, label, transform=ax.get_xaxis_transform(), fontsize=7,
                    color=colour, va="top")  # fmt: skip
        else:
            ax.plot([], [], " ", label=f"{family}: {str(cross.get('status')).replace('_', ' ')}")
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="seconds to target")
    ax.set_title("wall time to target (shaded: sizes bracketing the crossover)", fontsize=7)
    ax.legend(fontsize=6)


def second_order_scaling(csv_path, summary_path, out_png) -> Path:
    """Log-log Newton time and memory per iteration against N with the fitted laws (solid over the
    sizes fitted, dashed beyond them: extrapolation to 1e8), iterations to the target per method,
    and wall time to the target of Newton and the fastest first-order method, crossover marked."""
    df = pd.read_csv(csv_path)
    summary = json.loads(Path(summary_path).read_text())
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    panels = (("s_per_iter_median", "time_exponent", "seconds per iteration"),
              ("peak_bytes", "memory_exponent", "bytes per iteration"))  # fmt: skip
    for ax, (column, key, label) in zip(axes[:2], panels, strict=True):
        for family, info in summary["families"].items():
            rows = df[df["family"] == family]
            for method, part in rows.groupby("method"):
                if column == "peak_bytes" or method == "newton":
                    style = "o-" if method == "newton" else "."
                    ax.plot(part["n_params"], part[column], style, label=f"{family} {method}")
            _fitted_law(ax, family, info, info[key])
        ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel=label)
        ax.legend(fontsize=6)
    _time_to_target(axes[3], summary)
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
