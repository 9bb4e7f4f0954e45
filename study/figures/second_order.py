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


# Colour says the method, marker and line the problem family, in every panel; the fitted laws
# and the crossover take the family's neutral shade. Legends sit under their panels, off the data.
FAMILY_MARKS = (("o", "-"), ("s", ":"), ("^", "-."))
FAMILY_SHADES = ("black", "dimgray", "darkgray")
FIRST_ORDER_BEST = "tab:brown"  # the fastest first-order method, whichever it is at each size


def _law(fit: dict, n: np.ndarray) -> np.ndarray:
    return np.exp(fit["intercept"] + fit["slope"] * np.log(n))


class Styles:
    """The colour of each method and the marker, line and shade of each family."""

    def __init__(self, df: pd.DataFrame, families: list[str]):
        palette = plt.get_cmap("tab10").colors
        self.colour = {m: palette[i % 10] for i, m in enumerate(sorted(df["method"].unique()))}
        self.family = {f: i % len(FAMILY_MARKS) for i, f in enumerate(families)}

    def line(self, family: str, colour) -> dict:
        marker, linestyle = FAMILY_MARKS[self.family[family]]
        return {"marker": marker, "linestyle": linestyle, "color": colour, "markersize": 4}

    def shade(self, family: str) -> str:
        return FAMILY_SHADES[self.family[family] % len(FAMILY_SHADES)]


def _legend_below(ax) -> None:
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)


def _fitted_law(ax, family: str, info: dict, fit: dict, shade: str) -> None:
    """The fitted power law, solid over the sizes it was fitted on, dashed beyond them to 1e8;
    nothing when too few sizes were fitted."""
    if fit.get("slope") is None or not np.isfinite(fit["slope"]):
        return
    fitted = info.get("fit_n_params", info["n_params"])
    measured = np.geomspace(min(fitted), max(fitted), 50)
    beyond = np.geomspace(max(fitted), 1e8, 50)
    ax.plot(measured, _law(fit, measured), "-", color=shade, lw=1)
    legend = f"{family} newton fit N^{fit['slope']:.2f}, N ≥ {min(fitted)}"
    ax.plot(beyond, _law(fit, beyond), "--", color=shade, lw=1, label=legend)


def _time_to_target(ax, summary: dict, styles: Styles) -> None:
    """Newton's and the fastest first-order method's seconds to the target against N, with the
    crossover marked: a vertical line at the interpolated N over the shaded bracketing sizes, or
    the text saying on which side of the measured range it lies."""
    for family, info in summary["families"].items():
        sizes = info["n_params"]
        newton = styles.line(family, styles.colour.get("newton", "tab:purple"))
        ax.plot(sizes, info["newton_s_to_target"], label=f"{family} newton", **newton)
        best = styles.line(family, FIRST_ORDER_BEST)
        ax.plot(sizes, info["best_first_order_s_to_target"], label=f"{family} fastest first-order",
                **best)  # fmt: skip
        cross = info.get("crossover") or {}
        bracket = cross.get("bracket") or [None, None]
        shade = styles.shade(family)
        if cross.get("status") == "measured":
            ax.axvspan(*bracket, color=shade, alpha=0.12)
            ax.axvline(cross["n"], color=shade, lw=1)
            # Left of the line, at the foot: the crossover often lies near the largest size, where
            # the slowest curves run along the top.
            label = f"{family} crossover N≈{cross['n']:.0f} "
            ax.text(cross["n"], 0.03, label, transform=ax.get_xaxis_transform(), fontsize=7,
                    color=shade, va="bottom", ha="right")  # fmt: skip
        else:
            ax.plot([], [], " ", label=f"{family}: {str(cross.get('status')).replace('_', ' ')}")
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="seconds to target")
    ax.set_title("wall time to target (shaded: sizes bracketing the crossover)", fontsize=8)
    _legend_below(ax)


def second_order_scaling(csv_path, summary_path, out_png) -> Path:
    """Log-log Newton time and memory per iteration against N with the fitted laws (solid over the
    sizes fitted, dashed beyond them: extrapolation to 1e8), iterations to the target per method,
    and wall time to the target of Newton and the fastest first-order method, crossover marked."""
    df = pd.read_csv(csv_path)
    summary = json.loads(Path(summary_path).read_text())
    styles = Styles(df, list(summary["families"]))
    fig, axes = plt.subplots(2, 2, figsize=(12, 11))
    axes = axes.ravel()
    panels = (("s_per_iter_median", "time_exponent", "seconds per iteration"),
              ("peak_bytes", "memory_exponent", "bytes per iteration"))  # fmt: skip
    for ax, (column, key, label) in zip(axes[:2], panels, strict=True):
        for family, info in summary["families"].items():
            rows = df[df["family"] == family]
            for method, part in rows.groupby("method"):
                if column == "peak_bytes" or method == "newton":
                    style = styles.line(family, styles.colour[method])
                    ax.plot(part["n_params"], part[column], label=f"{family} {method}", **style)
            _fitted_law(ax, family, info, info[key], styles.shade(family))
        ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel=label)
        _legend_below(ax)
    _time_to_target(axes[3], summary, styles)
    ax = axes[2]
    for (family, method), part in df.groupby(["family", "method"]):
        reached = part[part["target_reached"].astype(str) == "True"]
        style = styles.line(family, styles.colour[method])
        ax.plot(reached["n_params"], reached["iterations"], label=f"{family} {method}", **style)
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="iterations to target")
    ax.set_title(summary.get("target", ""), fontsize=8)
    _legend_below(ax)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(out_png)
