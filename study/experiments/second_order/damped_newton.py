"""Exact damped Newton for the second-order comparison (study.experiments.second_order): the
Hessian by automatic differentiation or the problem's closed form, one Levenberg-Marquardt step,
the iteration, and the timing of a step in its parts."""

from __future__ import annotations

import math
import time

import torch
from torch.func import jacrev

from study.experiments.second_order.problems import Problem

__all__ = ["NEWTON_MIN_REPEAT_S", "hessian", "newton", "newton_step", "time_newton"]


def hessian(loss, theta: torch.Tensor, chunk_size: int | None = 256) -> torch.Tensor:
    """The full N×N Hessian, reverse over reverse; ``chunk_size`` rows at a time bound memory."""
    return jacrev(jacrev(loss), chunk_size=chunk_size)(theta)


def newton_step(
    loss, theta, value, damping: float, chunk_size=256, hessian_of=None, clock=time.perf_counter
):
    """One damped Newton iteration: (θ', loss(θ'), λ', timings of Hessian and of solves).
    ``hessian_of``: the problem's closed-form Hessian; None builds it by autograd. ``clock``: the
    timer of the parts (wall or CPU seconds)."""
    start = clock()
    g = torch.func.grad(loss)(theta)
    h = hessian(loss, theta, chunk_size) if hessian_of is None else hessian_of(theta)
    built = clock()
    scale = float(h.diagonal().abs().mean()) or 1.0
    while True:
        factor, info = torch.linalg.cholesky_ex(h + damping * torch.eye(len(h), dtype=h.dtype))
        if int(info) == 0:
            candidate = theta + torch.cholesky_solve(-g.unsqueeze(1), factor).squeeze(1)
            new_value = float(loss(candidate))
            if new_value <= value:
                return (
                    candidate,
                    new_value,
                    damping / 10,
                    built - start,
                    clock() - built,
                )
        if damping > 1e12 * scale:  # no descent even along a tiny gradient step: stationary
            return theta, value, damping, built - start, clock() - built
        damping = max(10 * damping, 1e-8 * scale)


def newton(loss, theta0, max_iters: int, tol: float = 1e-13, chunk_size=256, hessian_of=None):
    """Damped Newton from ``theta0``: (θ, losses after 0, 1, ... iterations)."""
    theta, damping = theta0.clone(), 0.0
    losses = [float(loss(theta))]
    for _ in range(max_iters):
        theta, value, damping, _, _ = newton_step(
            loss, theta, losses[-1], damping, chunk_size, hessian_of
        )
        losses.append(value)
        if losses[-2] - value <= tol * abs(losses[-2]):
            break
    return theta, losses


# A timed repeat of Newton lasts at least this long: one step of 1 ms is otherwise timed alone
# and one preemption on a shared machine multiplies it, where a first-order block of 20 steps
# averages it away.
NEWTON_MIN_REPEAT_S = 0.02


def _newton_repeat(problem: Problem, steps: int, chunk_size: int, clock) -> tuple[float, ...]:
    """Mean seconds of ``steps`` damped Newton steps from θ0: (step, its Hessian, its solves)."""
    theta = problem.theta0.clone()
    value = float(problem.loss(theta))
    built = solved = 0.0
    start = clock()
    for _ in range(steps):
        *_, b, s = newton_step(problem.loss, theta, value, 0.0, chunk_size, problem.hessian, clock)
        built, solved = built + b, solved + s
    return (clock() - start) / steps, built / steps, solved / steps


def _autograd_hessian_s(problem: Problem, steps: int, chunk_size: int, clock) -> float:
    """Mean seconds of the gradient and autograd Hessian at θ0 over ``steps`` builds (the part a
    Newton step times as its Hessian's)."""
    start = clock()
    for _ in range(steps):
        torch.func.grad(problem.loss)(problem.theta0)
        hessian(problem.loss, problem.theta0, chunk_size)
    return (clock() - start) / steps


def _steps_to_fill(step_s: float) -> int:
    """Steps of ``step_s`` seconds each that fill one timed repeat of NEWTON_MIN_REPEAT_S."""
    return max(1, math.ceil(NEWTON_MIN_REPEAT_S / max(step_s, 1e-9)))


def time_newton(problem: Problem, repeats: int, chunk_size=256, clock=time.perf_counter):
    """Newton's seconds per iteration, Hessian and solves, and the autograd Hessian's (the same as
    its own when the problem has no closed form), in ``repeats`` timed repeats after a warm-up;
    each repeat takes as many steps from θ0 as fill ``NEWTON_MIN_REPEAT_S`` (one at large N)."""
    steps = _steps_to_fill(_newton_repeat(problem, 1, chunk_size, clock)[0])
    times, hessian_s, solve_s = zip(
        *(_newton_repeat(problem, steps, chunk_size, clock) for _ in range(repeats)), strict=True
    )
    if problem.hessian is None:
        return list(times), list(hessian_s), list(solve_s), list(hessian_s)
    steps = _steps_to_fill(_autograd_hessian_s(problem, 1, chunk_size, clock))
    autograd_s = [_autograd_hessian_s(problem, steps, chunk_size, clock) for _ in range(repeats)]
    return list(times), list(hessian_s), list(solve_s), autograd_s
