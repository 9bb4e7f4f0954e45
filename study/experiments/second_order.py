"""Quasi-Newton reference experiment: iterations versus cost per iteration.

Claim under test: second-order methods need far fewer iterations than first-order methods, but each
iteration costs much more. The problem is small enough for full-batch optimization: L2-regularized
multinomial logistic regression (a convex objective with a unique minimum, so "the loss L-BFGS
reaches" is a well-defined target) on the first ``n`` Fashion-MNIST training images.

Every method minimizes the same full-batch objective ``CE(Wx + b, y) + l2/2 · ||W||²`` from the same
initial point and stops when the objective reaches the target or after ``max_iters`` iterations:

* ``lbfgs``: L-BFGS (Liu & Nocedal 1989) with a strong-Wolfe line search (Nocedal & Wright 2006,
  Alg. 3.5/3.6), one quasi-Newton iteration per ``step``. Each iteration costs one or more
  function/gradient evaluations plus the two-loop recursion over the curvature history.
* ``gd``: gradient descent with step ``1/L``, where ``L = λ_max(X̃ᵀX̃)/(2n) + l2`` bounds the
  curvature of the objective (X̃ is X with a column of ones; the softmax Hessian has norm ≤ 1/2):
  the textbook step that guarantees descent (Nesterov 2004).
* ``momentum``: heavy ball (Polyak 1964) with the same step and momentum 0.9.
* ``adam``: Adam (Kingma & Ba 2015) with lr 0.01, a usual value for a convex model.

The target defaults to 1.01 × the objective L-BFGS reaches after a long reference run (within 1%).
Evaluations count objective+gradient computations; L-BFGS re-evaluating the point where its line
search stopped is served from a one-entry cache, so it is not charged twice.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from study.outputs import atomic_path

__all__ = ["COLUMNS", "METHODS", "compare", "load_problem", "main", "reference_loss", "write_csv"]

L2 = 1e-3  # makes the objective strongly convex; small enough not to change the problem much
METHODS = ("lbfgs", "gd", "momentum", "adam")
COLUMNS = [
    "method",
    "lr",
    "reached",
    "iterations",
    "evaluations",
    "seconds",
    "s_per_iter",
    "evals_per_iter",
    "final_loss",
    "target_loss",
    "reference_loss",
    "max_iters",
    "n",
    "features",
]


class Objective:
    """Full-batch objective and gradient of ``model`` with a one-entry cache and a counter."""

    def __init__(self, model: nn.Linear, x: torch.Tensor, y: torch.Tensor, l2: float):
        self.model, self.x, self.y, self.l2 = model, x, y, l2
        self.params = list(model.parameters())
        self.evaluations = 0
        self._cached: tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor] | None = None

    def __call__(self) -> torch.Tensor:
        if self._cached is not None:
            at, grads, loss = self._cached
            if all(torch.equal(p, a) for p, a in zip(self.params, at, strict=True)):
                for p, g in zip(self.params, grads, strict=True):
                    p.grad = g.clone()
                return loss
        with torch.enable_grad():
            for p in self.params:
                p.grad = None
            w = self.model.weight
            loss = F.cross_entropy(self.model(self.x), self.y) + (self.l2 / 2) * w.pow(2).sum()
            loss.backward()
        self.evaluations += 1
        loss = loss.detach()
        self._cached = (
            [p.detach().clone() for p in self.params],
            [p.grad.clone() for p in self.params],
            loss,
        )
        return loss


def _model(features: int, classes: int, seed: int) -> nn.Linear:
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(features, classes)
    with torch.no_grad():
        model.weight.copy_(0.01 * torch.randn(classes, features, generator=generator))
        model.bias.zero_()
    return model


def _smoothness(x: torch.Tensor, l2: float) -> float:
    """Upper bound on the objective's curvature: λ_max(X̃ᵀX̃)/(2n) + l2."""
    xt = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1).double()
    gram = xt.T @ xt / len(x)
    return float(torch.linalg.eigvalsh(gram)[-1]) / 2 + l2


def _optimizer(method: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if method == "lbfgs":
        # One iteration per step() so progress is checked after every quasi-Newton iteration;
        # tolerances at 0 so torch never stops early on its own criteria. max_eval must be given:
        # torch's default (max_iter·5/4 = 1) would leave the line search no trial evaluations.
        return torch.optim.LBFGS(
            params,
            lr=lr,
            max_iter=1,
            max_eval=1 + 25,
            history_size=10,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
    if method == "gd":
        return torch.optim.SGD(params, lr=lr)
    if method == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if method == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def _run(
    method: str,
    lr: float,
    x: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    target: float,
    max_iters: int,
    seed: int,
    l2: float,
) -> dict:
    model = _model(x.shape[1], classes, seed)
    objective = Objective(model, x, y, l2)
    optimizer = _optimizer(method, model, lr)
    step: Callable[[], object]
    if method == "lbfgs":

        def step():
            return optimizer.step(objective)
    else:
        step = optimizer.step
    iterations, reached = 0, False
    start = time.perf_counter()
    while True:
        loss = float(objective())  # at the current iterate; cached after an L-BFGS step
        if not math.isfinite(loss):
            break
        if loss <= target:
            reached = True
            break
        if iterations >= max_iters:
            break
        step()
        iterations += 1
    seconds = time.perf_counter() - start
    return {
        "method": method,
        "lr": lr,
        "reached": reached,
        "iterations": iterations,
        "evaluations": objective.evaluations,
        "seconds": seconds,
        "s_per_iter": seconds / max(iterations, 1),
        "evals_per_iter": objective.evaluations / max(iterations, 1),
        "final_loss": loss,
        "target_loss": target,
        "max_iters": max_iters,
        "n": len(x),
        "features": x.shape[1],
    }


def reference_loss(
    x: torch.Tensor, y: torch.Tensor, iters: int = 500, seed: int = 0, l2: float = L2
) -> float:
    """Objective reached by a long full-batch L-BFGS run (the reference minimum)."""
    classes = int(y.max()) + 1
    row = _run("lbfgs", 1.0, x, y, classes, -math.inf, iters, seed, l2)
    return row["final_loss"]


def compare(
    x: torch.Tensor,
    y: torch.Tensor,
    target_loss: float | None = None,
    max_iters: int = 2000,
    seed: int = 0,
    methods: tuple[str, ...] = METHODS,
    l2: float = L2,
) -> list[dict]:
    """Run each method on the full batch ``(x, y)`` until ``target_loss`` or ``max_iters``.

    ``x``: float ``N×D`` (or ``N×C×H×W``, flattened), already normalized; ``y``: int64 labels.
    Without ``target_loss``, the target is 1.01 × the objective of a 500-iteration L-BFGS run.
    Returns one dict per method with the keys of :data:`COLUMNS`.
    """
    x = x.reshape(len(x), -1).float()
    y = y.long()
    classes = int(y.max()) + 1
    reference = reference_loss(x, y, seed=seed, l2=l2) if target_loss is None else math.nan
    target = 1.01 * reference if target_loss is None else float(target_loss)
    step = 1.0 / _smoothness(x, l2)
    lrs = {"lbfgs": 1.0, "gd": step, "momentum": step, "adam": 0.01}
    rows = []
    for method in methods:
        row = _run(method, lrs[method], x, y, classes, target, max_iters, seed, l2)
        row["reference_loss"] = reference
        rows.append(row)
    return rows


def load_problem(path: str | Path, n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training images of a data cache, scaled to [0, 1] and standardized."""
    cache = torch.load(path, map_location="cpu", weights_only=True)
    x = cache["train_x"][:n].float().div_(255)
    y = cache["train_y"][:n].long()
    # Per-channel statistics of these images, as the study normalizes its inputs.
    dims = [0, *range(2, x.ndim)]
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-8)
    return ((x - mean) / std).reshape(len(x), -1), y


def write_csv(rows: list[dict], out: str | Path) -> None:
    """Write ``rows`` to ``out`` atomically (temp file in the same folder, then ``os.replace``)."""
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data cache (.pt) with train_x, train_y")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--n", type=int, default=2000, help="number of training images")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--max-iters", type=int, default=2000, help="iteration cap per method")
    parser.add_argument("--target", type=float, default=None, help="fixed target objective")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y = load_problem(args.data, args.n)
    rows = compare(x, y, target_loss=args.target, max_iters=args.max_iters, seed=args.seed)
    write_csv(rows, args.out)
    for row in rows:
        print(
            f"{row['method']:>9}: reached={row['reached']!s:5} iterations={row['iterations']:5d} "
            f"evaluations={row['evaluations']:5d} seconds={row['seconds']:.3f} "
            f"s/iter={row['s_per_iter']:.2e} loss={row['final_loss']:.5f}"
        )


if __name__ == "__main__":
    main()
