"""Figure of the pathologies experiment: iterations against the condition number (rotated and
axis-aligned quadratics, theory slopes as reference lines), escape steps from a saddle, minibatch
gradient variance against B with the exact law, and the first layer's gradient against depth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from study.figure_catalog import PNG_DPI  # noqa: E402
from study.outputs import atomic_path  # noqa: E402

__all__ = ["pathologies_figure"]

METHOD_COLOURS = {"gd": "C0", "heavy_ball": "C1", "nesterov": "C2", "adagrad": "C3",
                  "rmsprop": "C4", "adam": "C5"}  # fmt: skip


def _mean(df: pd.DataFrame, experiment: str, quantity: str) -> pd.DataFrame:
    rows = df[(df["experiment"] == experiment) & (df["quantity"] == quantity)]
    return rows.groupby(["method", "x"], as_index=False)["value"].mean()


def _iterations(ax, df: pd.DataFrame, geometry: str) -> None:
    rows = df[(df["experiment"] == "conditioning") & (df["geometry"] == geometry)]
    means = rows.groupby(["method", "x"], as_index=False)["value"].mean()
    for method, part in means.groupby("method"):
        ax.plot(part["x"], part["value"], "o-", ms=3, color=METHOD_COLOURS.get(method),
                label=method)  # fmt: skip
    kappa = np.geomspace(means["x"].min(), means["x"].max(), 20)
    for slope, style in ((1.0, ":"), (0.5, "--")):
        ax.plot(kappa, 3 * kappa**slope, style, color="grey", lw=1, label=f"slope {slope:g}")
    ax.set(xscale="log", yscale="log", xlabel="condition number κ",
           ylabel="iterations to target")  # fmt: skip
    ax.set_title(f"{geometry} quadratics", fontsize=9)


def pathologies_figure(csv_path, out_png) -> Path:
    df = pd.read_csv(csv_path)
    # Two rows of three at the report's width: in one row of five the labels printed at about
    # three points. The sixth cell holds the methods' legend, clear of every panel's data.
    fig, grid = plt.subplots(2, 3, figsize=(8, 5.6), constrained_layout=True)
    axes = [grid[0, 0], grid[0, 1], grid[1, 0], grid[1, 1], grid[1, 2]]
    _iterations(axes[0], df, "rotated")
    _iterations(axes[1], df, "diagonal")
    grid[0, 2].axis("off")
    grid[0, 2].legend(*axes[1].get_legend_handles_labels(), fontsize=8, loc="center",
                      title="top row", title_fontsize=8)  # fmt: skip
    escape = _mean(df, "saddle", "escape_steps")
    for method, part in escape.groupby("method"):
        style = "k:" if method == "gd_closed_form" else "o-"
        axes[2].plot(1 / part["x"], part["value"], style, ms=3, label=method.replace("_", " "))
    axes[2].set(xscale="log", xlabel="1 / distance of the start to the saddle",
                ylabel="steps to escape")  # fmt: skip
    axes[2].legend(fontsize=7, loc="upper left")
    noise = _mean(df, "gradient_noise", "variance")
    exact = _mean(df, "gradient_noise", "exact_variance")
    axes[3].plot(noise["x"], noise["value"], "o", ms=4, label="measured")
    axes[3].plot(exact["x"], exact["value"], "-", label="σ²/B · (n-B)/(n-1)")
    b = exact["x"].to_numpy(float)
    axes[3].plot(b, exact["value"].iloc[0] / b, ":", color="grey", label="1/B")
    axes[3].set(xscale="log", yscale="log", xlabel="batch size B",
                ylabel="E‖g_B − g‖²")  # fmt: skip
    axes[3].legend(fontsize=7, loc="lower left")
    depth = _mean(df, "vanishing", "first_layer_grad_norm")
    for method, part in depth.groupby("method"):
        axes[4].plot(part["x"], part["value"], "o-", ms=3, label=method)
    axes[4].set(yscale="log", xlabel="hidden layers", ylabel="first-layer gradient norm")
    axes[4].legend(fontsize=7, loc="lower left")
    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI)
    plt.close(fig)
    return out
