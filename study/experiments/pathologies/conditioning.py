"""Badly conditioned quadratics: iterations to a target against the condition number kappa.

f(w) = ½ wᵀAw with eigenvalues log-spaced from 1 (L) down to 1/kappa (mu), either diagonal
(the axes are the eigenvectors) or rotated by a seeded random orthogonal matrix. The start is a
seeded random unit vector; the target is f(w) ≤ ``eps`` · f(w0). Gradient descent and heavy-ball
momentum use their theory-optimal parameters (GD: 2/(L+mu); Polyak's heavy ball: step
4/(√L+√mu)², momentum ((√κ-1)/(√κ+1))²; Nesterov: step 1/L, momentum (√κ-1)/(√κ+1)); AdaGrad,
RMSProp (0.99) and Adam (0.9, 0.999) take the rate of a fixed grid that reaches the target in
the fewest iterations on every seed, the same rule for each of them. All runs of one method,
geometry and kappa advance together as one batch (rates × seeds).
"""

from __future__ import annotations

import math

import numpy as np

THEORY = ("gd", "heavy_ball", "nesterov")
ADAPTIVE = ("adagrad", "rmsprop", "adam")
METHODS = THEORY + ADAPTIVE
GEOMETRIES = ("diagonal", "rotated")
RATE_GRID = tuple(float(v) for v in np.logspace(-4, 0.5, 19))
ADAPTIVE_EPS = 1e-12
LOOKAHEAD = ("nesterov",)  # the gradient is taken at the point momentum leads to


def spectrum(kappa: float, dim: int) -> np.ndarray:
    return np.logspace(0.0, -math.log10(kappa), dim)


def problem(kappa: float, dim: int, geometry: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, w0): the Hessian and the start of one seed."""
    rng = np.random.default_rng(seed)
    a = np.diag(spectrum(kappa, dim))
    if geometry == "rotated":
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        q = q * np.sign(np.diag(r))
        a = q @ a @ q.T
    w0 = rng.standard_normal(dim)
    return a, w0 / np.linalg.norm(w0)


def theory_parameters(method: str, kappa: float, lipschitz: float = 1.0) -> tuple[float, float]:
    """(step, momentum) of the theory-optimal choice for GD and the momentum methods."""
    mu, root = lipschitz / kappa, math.sqrt(kappa)
    return {
        "gd": (2 / (lipschitz + mu), 0.0),
        "heavy_ball": (
            4 / (math.sqrt(lipschitz) + math.sqrt(mu)) ** 2,
            ((root - 1) / (root + 1)) ** 2,
        ),
        "nesterov": (1 / lipschitz, (root - 1) / (root + 1)),
    }[method]


def iterate(method: str, a: np.ndarray, w0: np.ndarray, rates: np.ndarray, momentum: float,
            eps: float, max_iters: int, track: int = 0):  # fmt: skip
    """Iterations until f ≤ eps·f(w0), per seed and rate (max_iters + 1: not reached), for the
    seeds' Hessians ``a`` (S, d, d) and starts ``w0`` (S, d); stops as soon as one rate has reached
    the target on every seed (no later rate can then be the best). Also the signs of the
    component along the steepest eigenvector in the first ``track`` steps (seed 0, rates[0])."""
    w = np.repeat(w0[:, None, :], len(rates), axis=1)
    previous = w.copy()
    state1, state2 = np.zeros_like(w), np.zeros_like(w)
    f0 = 0.5 * np.einsum("sd,sde,se->s", w0, a, w0)[:, None]
    hit = np.full(w.shape[:2], max_iters + 1)
    top = np.linalg.eigh(a[0])[1][:, -1]
    signs = []
    lr = rates[None, :, None]
    for t in range(1, max_iters + 1):
        if method in LOOKAHEAD:
            look = w + momentum * (w - previous)
            previous, w = w, look - lr * np.einsum("srd,sde->sre", look, a)
        else:
            g = np.einsum("srd,sde->sre", w, a)
            step = _adaptive_step(method, g, state1, state2, t) if method in ADAPTIVE else g
            previous, w = w, w - lr * step + momentum * (w - previous)
        if t <= track:
            signs.append(float(np.sign(w[0, 0] @ top)))
        f = 0.5 * np.einsum("srd,sde,sre->sr", w, a, w)
        hit[(f <= eps * f0) & (hit > max_iters)] = t
        if ((hit <= max_iters).all(axis=0).any() and t >= track) or not np.isfinite(f).any():
            break
    return hit, signs


def _adaptive_step(method: str, g, state1, state2, t: int):
    """The update direction of AdaGrad, RMSProp or Adam; states are updated in place."""
    return ADAPTIVE_STEPS[method](g, state1, state2, t)


def _adagrad(g, state1, state2, t: int):
    state2 += g * g
    return g / (np.sqrt(state2) + ADAPTIVE_EPS)


def _rmsprop(g, state1, state2, t: int):
    state2 *= 0.99
    state2 += 0.01 * g * g
    return g / (np.sqrt(state2) + ADAPTIVE_EPS)


def _adam(g, state1, state2, t: int):
    state1 *= 0.9
    state1 += 0.1 * g
    state2 *= 0.999
    state2 += 0.001 * g * g
    return (state1 / (1 - 0.9**t)) / (np.sqrt(state2 / (1 - 0.999**t)) + ADAPTIVE_EPS)


ADAPTIVE_STEPS = {"adagrad": _adagrad, "rmsprop": _rmsprop, "adam": _adam}


def cap(kappa: float, eps: float) -> int:
    """Iteration cap: three times GD-with-1/L's count, kappa·ln(1/eps)."""
    return int(3 * kappa * math.log(1 / eps)) + 200


def run(kappas, seeds, dim: int = 20, eps: float = 1e-4) -> list[dict]:
    """One row per method, geometry, kappa and seed: iterations to the target (and the rate)."""
    rows = []
    for geometry in GEOMETRIES:
        for kappa in kappas:
            for method in METHODS:
                rows += _method_rows(method, geometry, kappa, seeds, dim, eps)
    return rows


def _method_rows(method, geometry, kappa, seeds, dim, eps) -> list[dict]:
    limit = cap(kappa, eps)
    if method in THEORY:
        step, momentum = theory_parameters(method, kappa)
        rates = np.array([step])
    else:
        momentum, rates = 0.0, np.array(RATE_GRID)
    a, w0 = (
        np.stack(v) for v in zip(*(problem(kappa, dim, geometry, s) for s in seeds), strict=True)
    )
    hits = iterate(method, a, w0, rates, momentum, eps, limit)[0]
    worst = hits.max(axis=0)  # the same rule for every method: reached on every seed, fewest
    best = int(np.argmin(worst))
    return [
        {
            "experiment": "conditioning", "method": method, "geometry": geometry,
            "x": kappa, "seed": s, "quantity": "iterations", "value": int(hits[i, best]),
            "reached": bool(hits[i, best] <= limit), "parameter": float(rates[best]),
        }
        for i, s in enumerate(seeds)
    ]  # fmt: skip


def zigzag(kappa: float, seeds, dim: int = 20, steps: int = 50, step_l: float = 1.8,
           momentum: float = 0.9) -> list[dict]:  # fmt: skip
    """Fraction of the first ``steps`` steps whose component along the steepest direction changes
    sign: GD at step ``step_l``/L against heavy ball at the same effective step
    (step_l·(1-momentum)/L, momentum 0.9), on the rotated quadratic."""
    rows = []
    for s in seeds:
        a, w0 = problem(kappa, dim, "rotated", s)
        for method, rate, beta in (("gd", step_l, 0.0),
                                   ("heavy_ball", step_l * (1 - momentum), momentum)):  # fmt: skip
            _, signs = iterate("gd", a[None], w0[None], np.array([rate]), beta, 0.0, steps, steps)
            flips = np.mean([a_ != b_ for a_, b_ in zip(signs[:-1], signs[1:], strict=True)])
            rows.append({
                "experiment": "zigzag", "method": method, "geometry": "rotated", "x": kappa,
                "seed": s, "quantity": "sign_change_fraction", "value": float(flips),
                "reached": True, "parameter": rate,
            })  # fmt: skip
    return rows
