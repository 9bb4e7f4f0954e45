"""A saddle of known geometry: f(x, y) = ½(a·x² - b·y²), the origin a strict saddle.

From a start at distance ``delta`` of the saddle (a seeded random direction), gradient descent
with step ``lr`` multiplies y by (1 + lr·b) each step, so it leaves the band |y| < ``radius`` after
exactly ceil(ln(radius/|y0|) / ln(1 + lr·b)) steps: the closer the start, the longer it stalls.
Heavy-ball momentum (momentum ``beta``) multiplies y asymptotically by the larger root of
z² - (1 + beta + lr·b)z + beta, i.e. it escapes faster. Pure quadratic on purpose: the band is
where the escape is timed, so no quartic term is needed to bound the function there.
"""

from __future__ import annotations

import math

import numpy as np

CURVATURE_X, CURVATURE_Y = 1.0, 1.0


def escape_steps(start: np.ndarray, lr: float, beta: float, radius: float,
                 max_steps: int = 100_000) -> int:  # fmt: skip
    """Steps of (heavy-ball) gradient descent until |y| ≥ radius."""
    w = np.asarray(start, dtype=float).copy()
    previous = w.copy()
    curvature = np.array([CURVATURE_X, -CURVATURE_Y])
    for t in range(1, max_steps + 1):
        previous, w = w, w - lr * curvature * w + beta * (w - previous)
        if abs(w[1]) >= radius:
            return t
    return max_steps + 1


def gd_escape_closed_form(y0: float, lr: float, radius: float) -> int:
    """Gradient descent's escape steps from |y0|, exactly."""
    return math.ceil(math.log(radius / abs(y0)) / math.log1p(lr * CURVATURE_Y))


def momentum_growth(lr: float, beta: float) -> float:
    """The factor by which heavy ball multiplies y per step once transients have died out."""
    s = 1 + beta + lr * CURVATURE_Y
    return (s + math.sqrt(s * s - 4 * beta)) / 2


def start(delta: float, seed: int) -> np.ndarray:
    angle = np.random.default_rng(seed).uniform(0.1, math.pi / 2 - 0.1)  # both components nonzero
    return delta * np.array([math.cos(angle), math.sin(angle)])


def run(deltas, seeds, lr: float = 0.1, beta: float = 0.9, radius: float = 1.0) -> list[dict]:
    """Escape steps of GD and heavy ball from each distance and seed, with GD's closed form."""
    rows = []
    for delta in deltas:
        for s in seeds:
            w0 = start(delta, s)
            for method, b in (("gd", 0.0), ("heavy_ball", beta)):
                rows.append({
                    "experiment": "saddle", "method": method, "geometry": "strict_saddle",
                    "x": delta, "seed": s, "quantity": "escape_steps",
                    "value": escape_steps(w0, lr, b, radius), "reached": True, "parameter": lr,
                })  # fmt: skip
            rows.append({
                "experiment": "saddle", "method": "gd_closed_form", "geometry": "strict_saddle",
                "x": delta, "seed": s, "quantity": "escape_steps",
                "value": gd_escape_closed_form(w0[1], lr, radius), "reached": True,
                "parameter": lr,
            })  # fmt: skip
    return rows
