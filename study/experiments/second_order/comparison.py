"""Second-order versus first-order optimization as the number of parameters N grows.

Claim under test: a second-order method reaches the minimum in far fewer iterations, but its
Hessian has N² entries and factorizing it costs N³ operations, so at large N cheap first-order steps
win in wall time. Every problem is a full-batch, L2-regularized classification objective on the
first ``n`` Fashion-MNIST training images, from a family whose parameter count grows:

* ``logreg``: multinomial logistic regression on ``d`` features (a fixed Gaussian random projection
  of the standardized pixels, then standardized again); N = (d + 1) · 10. Convex, and the L2 term on
  all parameters makes it strongly convex, so its minimum is unique.
* ``mlp``: one tanh hidden layer of width ``h`` on 16 projected features; N = 17h + 10(h + 1).
  Not convex: methods may settle in different minima (the target below accounts for that).

Methods, all from the same initial point, in float64, on a flat parameter vector:

* ``newton``: exact Newton with Levenberg-Marquardt damping (Nocedal & Wright 2006, ch. 3 and 10).
  The Hessian is the problem's closed form where it has one (logistic regression: two matrix
  products, as iteratively reweighted least squares computes it), otherwise ``torch.func``'s
  reverse over reverse ``jacrev(jacrev(loss))`` (the MLP). The generic one is also timed on every
  problem (``autograd_hessian_s_median``): one vectorized backward pass per row, an overhead per
  row that no first-order step pays (one core of a busy machine: 0.2 ms closed form against 7 ms
  at N = 20, 0.1 s against 0.7 s at N = 1,290), so the crossover is also computed as if Newton had
  used it. The step
  solves (H + λI) s = -g by Cholesky. λ starts at 0 (the L2 term keeps H positive definite for the
  convex family), grows tenfold while the factorization fails or the loss goes up, and shrinks
  tenfold after an accepted step. One iteration is one Hessian.
* ``lbfgs``: ``torch.optim.LBFGS`` with a strong-Wolfe line search, history 10, one quasi-Newton
  iteration per step.
* ``gd`` and ``momentum`` (heavy ball, 0.9) with step 1/L, L an upper bound on the curvature: for
  logistic regression λ_max(X̃ᵀX̃)/(2n) + l2 (the softmax Hessian has norm ≤ 1/2, Nesterov 2004); for
  the MLP, which has no such bound, twice the largest Hessian eigenvalue at the initial point
  (power iteration on Hessian-vector products).
* ``adam`` with lr 0.01.

Target: within ``rel`` (default 1e-3) relative of the lowest loss any method reached on that
problem; ``iterations`` is the first iteration whose loss is at or below it. Time per iteration is
measured apart from the runs, in ``repeats`` timed repeats of ``block`` iterations from the initial
point (for Newton, as many steps from the initial point as fill 20 ms: one at large N), and
reported as the median with a distribution-free order-statistic interval for the median, in CPU
seconds of the process by default (``--clock``; see ``CLOCKS``).
Memory is computed from tensor sizes (PyTorch's CPU allocator is invisible to tracemalloc): the
bytes the method holds per iteration besides the model's forward and backward, i.e. parameters,
gradient and optimizer state, plus for Newton the Hessian and its Cholesky factor.
The scaling fits, crossover and extrapolations are in :mod:`study.experiments.second_order.scaling`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from study.errors import ConfigError
from study.experiments.second_order.damped_newton import hessian, newton, time_newton
from study.experiments.second_order.problems import (
    Problem,
    load_images,
    logreg_problem,
    mlp_problem,
)
from study.experiments.second_order.scaling import order_statistic_interval, summarize
from study.outputs import atomic_path, write_text

__all__ = ["COLUMNS", "METHODS", "SECOND_ORDER", "hessian", "main", "measure", "newton"]

METHODS = ("newton", "lbfgs", "gd", "momentum", "adam")
COLUMNS = [
    "problem", "family", "size", "n_params", "n_samples", "method", "lr", "iterations",
    "target_reached", "reached", "target_loss", "best_loss", "final_loss", "iterations_run",
    "max_iters", "seconds", "s_per_iter_median", "s_per_iter_lo", "s_per_iter_hi",
    "s_per_iter_coverage", "timing_repeats", "timing_block", "s_to_target", "s_to_target_lo",
    "s_to_target_hi", "hessian_s_median", "solve_s_median", "peak_bytes", "hessian_bytes",
    "hessian_method", "autograd_hessian_s_median",
]  # fmt: skip


@dataclass(frozen=True)
class Method:
    """One method of the comparison: its torch optimizer (none for exact Newton), whether its step
    re-evaluates the loss (line search), the state it holds, its iteration cap and step size."""

    make: Callable[[torch.Tensor, float], torch.optim.Optimizer] | None
    extra_vectors: Callable[[int], int]  # numbers held beyond parameters and gradient, for N
    second_order: bool = False
    closure_step: bool = False
    cap: str = "max_iters"  # the command-line setting that caps its iterations
    fixed_lr: float | None = None  # None: the problem's step size 1/L


METHOD_SPECS: dict[str, Method] = {
    # The Hessian, its damped copy and the Cholesky factor (3N²) and ~3N vectors.
    "newton": Method(None, lambda n: 3 * n * n + 3 * n, True, cap="newton_iters", fixed_lr=1.0),
    # Tolerances 0 so it never stops on its own; max_eval bounds the line search; 10 curvature
    # pairs (20N) and ~4N working vectors.
    "lbfgs": Method(
        lambda theta, lr: torch.optim.LBFGS(
            [theta],
            lr=1.0,
            max_iter=1,
            max_eval=26,
            history_size=10,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,
        ),  # fmt: skip
        lambda n: 24 * n,
        True,
        closure_step=True,
        cap="lbfgs_iters",
        fixed_lr=1.0,
    ),
    "gd": Method(lambda theta, lr: torch.optim.SGD([theta], lr=lr), lambda n: 0),
    "momentum": Method(
        lambda theta, lr: torch.optim.SGD([theta], lr=lr, momentum=0.9), lambda n: n
    ),
    "adam": Method(
        lambda theta, lr: torch.optim.Adam([theta], lr=0.01), lambda n: 2 * n, fixed_lr=0.01
    ),  # fmt: skip
}


# Default sizes: N = 20..1,290 (logistic regression) and 37..874 (MLP). The smallest ones are
# there to bracket the crossover, which lies at small N when it exists (Newton's few iterations
# against many cheap ones); each costs well under a second.
LOGREG_D = [1, 2, 4, 8, 16, 32, 64, 128]
MLP_WIDTH = [1, 2, 4, 8, 16, 32]

SECOND_ORDER = tuple(name for name, spec in METHOD_SPECS.items() if spec.second_order)


def method_spec(method: str) -> Method:
    try:
        return METHOD_SPECS[method]
    except KeyError:
        raise ConfigError(f"unknown method {method!r}; use one of {', '.join(METHODS)}") from None


def _stepper(method: str, problem: Problem, theta: torch.Tensor):
    spec = method_spec(method)
    optimizer = spec.make(theta, problem.lr)

    def closure():
        optimizer.zero_grad()
        value = problem.loss(theta)
        value.backward()
        return value

    if spec.closure_step:
        return lambda: optimizer.step(closure)
    return lambda: (closure(), optimizer.step())


def first_order(method: str, problem: Problem, max_iters: int, stop_at: float) -> list[float]:
    """Losses after 0, 1, ... iterations of a torch optimizer, until ``stop_at`` or the cap."""
    theta = problem.theta0.clone().requires_grad_(True)
    step = _stepper(method, problem, theta)
    with torch.no_grad():
        losses = [float(problem.loss(theta))]
    while losses[-1] > stop_at and len(losses) <= max_iters and math.isfinite(losses[-1]):
        step()
        with torch.no_grad():
            losses.append(float(problem.loss(theta)))
    return losses


# The timer of the iteration timings. "cpu": the process's CPU seconds (all its threads), which
# a shared machine's other jobs leave untouched: on the 2-core machine shared with other work,
# wall-clock timings of one run and the next differed by up to 4x at N = 1,290 and moved the
# crossover across the largest size. One thread of CPU time is the wall time of an idle core.
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def time_per_iteration(
    method: str, problem: Problem, repeats: int, block: int, chunk_size=256, clock=time.perf_counter
):
    """Seconds per iteration in ``repeats`` timings of ``block`` iterations from the start; for
    Newton (see ``time_newton``) also its Hessian, its solves and the autograd Hessian."""
    if method_spec(method).make is None:
        return time_newton(problem, repeats, chunk_size, clock)
    times = []
    for _ in range(repeats):
        theta = problem.theta0.clone().requires_grad_(True)
        step = _stepper(method, problem, theta)
        start = clock()
        for _ in range(block):
            step()
        times.append((clock() - start) / block)
    return times, [], [], []


def peak_bytes(method: str, n: int, element: int = 8) -> tuple[int, int]:
    """(bytes held per iteration beyond forward/backward, bytes of the Hessian) from tensor sizes.

    Parameters and gradient (2N) for every method, plus state: momentum 1N, Adam 2N, L-BFGS 2·10N
    curvature pairs and ~4N working vectors; Newton the Hessian, its damped copy and the Cholesky
    factor (3N²) and ~3N vectors (step, candidate, gradient of the rows' chunk).
    """
    spec = method_spec(method)
    hessian_bytes = n * n * element if spec.make is None else 0
    return (2 * n + spec.extra_vectors(n)) * element, hessian_bytes


def measure(problem: Problem, args) -> list[dict]:
    """Every method on ``problem``: iterations to the shared target, time and memory per step."""
    histories: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for method in args.methods:  # second-order first: their minimum sets the early stop below
        start = time.perf_counter()
        spec = method_spec(method)
        cap = getattr(args, spec.cap)
        if spec.make is None:
            histories[method] = newton(
                problem.loss, problem.theta0, cap, hessian_of=problem.hessian
            )[1]
        else:
            best = min((min(h) for h in histories.values()), default=-math.inf)
            stop = -math.inf if spec.second_order else best + args.rel * abs(best)
            histories[method] = first_order(method, problem, cap, stop)
        seconds[method] = time.perf_counter() - start
    best = min(min(v for v in h if math.isfinite(v)) for h in histories.values())
    target = best + args.rel * abs(best)
    rows = []
    for method, losses in histories.items():
        hit = next((i for i, v in enumerate(losses) if v <= target), None)
        block = max(1, min(hit or len(losses) - 1, args.block))
        times, hessian_s, solve_s, autograd_s = time_per_iteration(
            method, problem, args.repeats, block, clock=CLOCKS[args.clock]
        )
        median, lo, hi, coverage = order_statistic_interval(times)
        held, hessian_bytes = peak_bytes(method, problem.n_params)
        iterations = hit if hit is not None else len(losses) - 1
        spec = method_spec(method)
        cap = getattr(args, spec.cap)
        rows.append({
            "problem": problem.name, "family": problem.family, "size": problem.size,
            "n_params": problem.n_params, "n_samples": problem.n_samples, "method": method,
            "lr": problem.lr if spec.fixed_lr is None else spec.fixed_lr,
            "iterations": iterations, "target_reached": hit is not None, "reached": hit is not None,
            "target_loss": target, "best_loss": best, "final_loss": losses[-1],
            "iterations_run": len(losses) - 1, "max_iters": cap, "seconds": seconds[method],
            "s_per_iter_median": median, "s_per_iter_lo": lo, "s_per_iter_hi": hi,
            "s_per_iter_coverage": coverage, "timing_repeats": len(times), "timing_block": block,
            "s_to_target": iterations * median if hit is not None else math.nan,
            "s_to_target_lo": iterations * lo if hit is not None else math.nan,
            "s_to_target_hi": iterations * hi if hit is not None else math.nan,
            "hessian_s_median": _median(hessian_s), "solve_s_median": _median(solve_s),
            "peak_bytes": held, "hessian_bytes": hessian_bytes,
            "hessian_method": _hessian_method(spec, problem),
            "autograd_hessian_s_median": _median(autograd_s),
        })  # fmt: skip
    return rows


def _hessian_method(spec: Method, problem: Problem) -> str:
    if spec.make is not None:
        return ""
    return "autograd" if problem.hessian is None else "closed_form"


def _median(values: list[float]) -> float:
    return float(torch.tensor(values).median()) if values else math.nan


def write_csv(rows: list[dict], out) -> None:
    """``rows`` to ``out`` atomically (a temporary file beside it, then ``os.replace``)."""
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _sizes(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"sizes {text!r}: give comma-separated integers, e.g. 8,32,128") from None


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data cache (.pt) with train_x, train_y")
    parser.add_argument("--out", required=True, help="CSV to write (one row per problem, method)")
    parser.add_argument("--summary", help="JSON summary to write (default: the CSV's .json)")
    parser.add_argument("--n", type=int, default=500, help="training images (full batch)")
    parser.add_argument("--logreg-d", type=_sizes, default=LOGREG_D, help="features")
    parser.add_argument("--mlp-width", type=_sizes, default=MLP_WIDTH, help="hidden units")
    parser.add_argument("--methods", type=lambda s: tuple(s.split(",")), default=METHODS)
    parser.add_argument("--max-iters", type=int, default=2000, help="cap for gd, momentum, adam")
    parser.add_argument("--lbfgs-iters", type=int, default=500, help="cap for lbfgs")
    # 100, not the handful a convex problem needs: on the MLP the damping starts large where the
    # Hessian is indefinite and shrinks only tenfold per accepted step, and Newton stopped on its
    # own after 27, 47 and 68 iterations at widths 1, 2 and 4; a cap of 30 kept it from the target.
    parser.add_argument("--newton-iters", type=int, default=100, help="cap for newton")
    # Below ~90 parameters a Newton step costs a fixed ~2 ms of dispatch whatever N is: a power
    # law fitted there would flatten the exponent that the extrapolation to 1e6 rests on.
    parser.add_argument("--fit-min-n", type=int, default=90, help="smallest N in the exponent fits")
    parser.add_argument("--rel", type=float, default=1e-3, help="target: within rel of the best")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per method (>= 5)")
    parser.add_argument("--block", type=int, default=20, help="iterations per timed repeat")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="cpu", help="timer of the iteration timings"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"--methods: unknown {unknown}; use some of {', '.join(METHODS)}")
    args.methods = tuple(m for m in METHODS if m in args.methods)  # second-order first
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    x, y = load_images(args.data, args.n)
    rows = []
    start = time.perf_counter()
    for family, sizes in (("logreg", args.logreg_d), ("mlp", args.mlp_width)):
        for size in sizes:
            build = logreg_problem if family == "logreg" else mlp_problem
            problem = build(x, y, size, seed=args.seed)
            rows += measure(problem, args)
            for row in rows[-len(args.methods) :]:
                print(
                    f"{row['problem']:>12} N={row['n_params']:6d} {row['method']:>8}: "
                    f"reached={row['target_reached']!s:5} iters={row['iterations']:5d} "
                    f"s/iter={row['s_per_iter_median']:.2e} loss={row['final_loss']:.6f}",
                    flush=True,
                )
    summary = summarize(rows, second_order="newton", rel=args.rel, fit_min_n=args.fit_min_n)
    summary["seconds_total"] = time.perf_counter() - start
    summary["time_basis"] = (
        f"median of timed repeats of a Newton iteration (Hessian + Cholesky solve), in "
        f"{'CPU seconds of the process' if args.clock == 'cpu' else 'wall-clock seconds'} "
        f"on {args.threads} thread(s)"
    )
    write_csv(rows, args.out)
    out = args.summary or str(args.out).rsplit(".", 1)[0] + ".json"
    write_text(out, json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")


if __name__ == "__main__":
    main()
