"""Newton's cost at sizes where the cubic term of the solve dominates, and its time to a target.

Binary logistic regression with an L2 term on ``n`` seeded Gaussian examples of N features (labels
from a seeded planted weight vector, flipped with probability 0.1). The Hessian has a closed form,
Xᵀ diag(p(1-p)) X / n + l2·I: building it costs n·N² multiply-adds, its Cholesky solve N³/3, so
at N in the thousands both are cheap enough to time on measured points. Each part is timed
separately in CPU seconds of the process on one thread (median of ``repeats``).

Time to target: Newton against the best first-order method (gradient descent at 1/L and
Nesterov's method with the strongly convex parameters, L = λ_max(XᵀX)/(4n) + l2, mu = l2), each
run until its loss is within ``rel`` of the minimum (Newton's converged loss), and timed as its
iterations times its median seconds per iteration.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

L2 = 1e-3
FLIP = 0.1


def data(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    planted = torch.randn(dim, generator=generator, dtype=torch.float64) / math.sqrt(dim)
    y = (x @ planted > 0).to(torch.float64)
    flip = torch.rand(n, generator=generator, dtype=torch.float64) < FLIP
    return x, torch.where(flip, 1 - y, y)


def loss(w, x, y) -> float:
    z = x @ w
    return float(torch.nn.functional.softplus(z).mean() - (y * z).mean() + L2 / 2 * w @ w)


def gradient(w, x, y) -> torch.Tensor:
    return x.T @ (torch.sigmoid(x @ w) - y) / len(x) + L2 * w


def hessian(w, x) -> torch.Tensor:
    p = torch.sigmoid(x @ w)
    weighted = x * (p * (1 - p)).sqrt().unsqueeze(1)
    h = weighted.T @ weighted / len(x)
    h.diagonal().add_(L2)
    return h


def solve(h, g) -> torch.Tensor:
    return torch.cholesky_solve(g.unsqueeze(1), torch.linalg.cholesky(h)).squeeze(1)


def _timed(fn, repeats: int, clock=time.process_time) -> float:
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return float(np.median(times))


def part_times(x, y, repeats: int) -> dict[str, float]:
    """Median CPU seconds of the Hessian build, the solve and one first-order step."""
    w = torch.zeros(x.shape[1], dtype=torch.float64)
    g, h = gradient(w, x, y), hessian(w, x)
    return {
        "hessian_s": _timed(lambda: hessian(w, x), repeats),
        "solve_s": _timed(lambda: solve(h, g), repeats),
        "gradient_s": _timed(lambda: gradient(w, x, y), max(repeats, 20)),
    }


def newton_losses(x, y, max_iters: int = 30) -> list[float]:
    w = torch.zeros(x.shape[1], dtype=torch.float64)
    losses = [loss(w, x, y)]
    for _ in range(max_iters):
        w = w - solve(hessian(w, x), gradient(w, x, y))
        losses.append(loss(w, x, y))
        if losses[-2] - losses[-1] <= 1e-15 * abs(losses[-2]):
            break
    return losses


MOMENTUM = {"gd": False, "nesterov": True}  # Nesterov: the strongly convex momentum


def first_order_iterations(method: str, x, y, target: float, max_iters: int) -> int:
    """Iterations of GD (1/L) or Nesterov (1/L, (√κ-1)/(√κ+1)) until the loss ≤ target."""
    lipschitz = float(torch.linalg.eigvalsh(x.T @ x)[-1]) / (4 * len(x)) + L2
    root = math.sqrt(lipschitz / L2)
    beta = (root - 1) / (root + 1) if MOMENTUM[method] else 0.0
    w = previous = torch.zeros(x.shape[1], dtype=torch.float64)
    for t in range(1, max_iters + 1):
        look = w + beta * (w - previous)
        previous, w = w, look - gradient(look, x, y) / lipschitz
        if loss(w, x, y) <= target:
            return t
    return max_iters + 1


def run(sizes, n: int, seed: int, repeats: int, rel: float, time_to_target_max: int,
        max_iters: int = 20_000) -> list[dict]:  # fmt: skip
    """Part timings at every size; time to the target at the sizes ≤ ``time_to_target_max``."""
    rows = []

    def row(method, size, quantity, value):
        rows.append({
            "experiment": "newton", "method": method, "geometry": f"n{n}", "x": size,
            "seed": seed, "quantity": quantity, "value": value, "reached": True, "parameter": rel,
        })  # fmt: skip

    for size in sizes:
        x, y = data(n, size, seed)
        parts = part_times(x, y, repeats)
        for quantity, value in parts.items():
            row("newton" if quantity != "gradient_s" else "first_order", size, quantity, value)
        if size > time_to_target_max:
            continue
        losses = newton_losses(x, y)
        target = losses[-1] + rel * abs(losses[-1])
        newton_iters = next(i for i, v in enumerate(losses) if v <= target)
        step = parts["hessian_s"] + parts["solve_s"] + parts["gradient_s"]
        row("newton", size, "iterations", newton_iters)
        row("newton", size, "s_to_target", newton_iters * step)
        for method in ("gd", "nesterov"):
            iters = first_order_iterations(method, x, y, target, max_iters)
            row(method, size, "iterations", iters)
            row(method, size, "s_to_target", iters * parts["gradient_s"] if iters <= max_iters
                else math.nan)  # fmt: skip
    return rows
