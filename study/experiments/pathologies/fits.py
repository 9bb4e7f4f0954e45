"""The numbers the pathologies experiment is judged by, from its rows (one value per row): fitted
exponents with their intervals and per-seed ratios. The ledger's checks and the summary JSON both
call these, so the figure, the JSON and the verdicts read the same numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from study.experiments.second_order.scaling import fit_power_law


def _rows(df: pd.DataFrame, experiment: str, quantity: str, **match) -> pd.DataFrame:
    keep = (df["experiment"] == experiment) & (df["quantity"] == quantity)
    for column, value in match.items():
        keep &= df[column] == value
    out = df[keep].copy()
    out["x"], out["value"] = out["x"].astype(float), out["value"].astype(float)
    return out


def iteration_exponent(df: pd.DataFrame, method: str, geometry: str) -> dict:
    """Slope of log iterations against log kappa over every (kappa, seed), with its interval."""
    rows = _rows(df, "conditioning", "iterations", method=method, geometry=geometry)
    rows = rows[rows["value"] > 0]
    return fit_power_law(rows["x"], rows["value"])


def noise_exponent(df: pd.DataFrame) -> dict:
    """Slope of log(variance · (n-1)/(n-B)) against log B: the 1/B law once the finite-population
    correction is divided out (exactly -1 in expectation)."""
    rows = _rows(df, "gradient_noise", "variance")
    n = int(str(rows["geometry"].iloc[0])[1:]) if len(rows) else 0
    corrected = rows["value"] * (n - 1) / (n - rows["x"])
    return fit_power_law(rows["x"], corrected)


# Below ~1,000 parameters a solve is too short for BLAS to run at full speed: those sizes flatten
# the exponent, so the cost fits start at this N.
COST_FIT_MIN_N = 1000


def cost_exponent(df: pd.DataFrame, quantity: str) -> dict:
    """Slope of log seconds against log N (N ≥ COST_FIT_MIN_N) for Newton's Hessian or solve."""
    rows = _rows(df, "newton", quantity, method="newton")
    rows = rows[rows["x"] >= COST_FIT_MIN_N]
    return fit_power_law(rows["x"], rows["value"])


def paired(df: pd.DataFrame, experiment: str, quantity: str, top: str, bottom: str,
           by: str = "seed", at=None) -> pd.Series:  # fmt: skip
    """top / bottom per ``by`` (seed or x), at one ``x`` if given, for methods top and bottom."""
    rows = _rows(df, experiment, quantity)
    if at is not None:
        rows = rows[np.isclose(rows["x"], float(at), rtol=1e-9, atol=0.0)]
    wide = rows.pivot_table(index=by, columns="method", values="value", aggfunc="mean")
    if top not in wide or bottom not in wide:
        return pd.Series(dtype=float)
    return (wide[top] / wide[bottom]).dropna()


def per_seed(df: pd.DataFrame, experiment: str, quantity: str, method: str, at=None) -> pd.Series:
    rows = _rows(df, experiment, quantity, method=method)
    if at is not None:
        rows = rows[np.isclose(rows["x"], float(at), rtol=1e-9, atol=0.0)]
    return rows.groupby("seed")["value"].mean()


def summary(df: pd.DataFrame) -> dict:
    """Every fit of the experiment, for the JSON beside the CSV."""
    out: dict = {"iteration_exponents": {}}
    for (method, geometry), _ in df[df["experiment"] == "conditioning"].groupby(
        ["method", "geometry"]
    ):
        fit = iteration_exponent(df, method, geometry)
        out["iteration_exponents"][f"{method}/{geometry}"] = _public(fit)
    if (df["experiment"] == "gradient_noise").any():
        out["noise_exponent"] = _public(noise_exponent(df))
    if (df["experiment"] == "newton").any():
        out["hessian_exponent"] = _public(cost_exponent(df, "hessian_s"))
        out["solve_exponent"] = _public(cost_exponent(df, "solve_s"))
    return out


def _public(fit: dict) -> dict:
    keys = ("slope", "lo", "hi", "points", "intercept")
    finite = {k: v for k, v in fit.items() if k in keys}
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in finite.items()
    }
