"""The problems of the second-order comparison: full-batch, L2-regularized classification
objectives on Fashion-MNIST whose parameter count N grows (see study.experiments.second_order).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from study.errors import ConfigError

L2 = 1e-3
CLASSES = 10
MLP_INPUTS = 16
DTYPE = torch.float64


@dataclass
class Problem:
    """A full-batch objective ``loss(theta)`` on a flat float64 parameter vector."""

    name: str
    family: str
    size: int
    loss: Callable[[torch.Tensor], torch.Tensor]
    theta0: torch.Tensor
    lr: float  # 1/L for gradient descent and momentum
    n_samples: int
    # The exact Hessian in closed form where the family has one (logistic regression); None:
    # Newton builds it by automatic differentiation (study.experiments.second_order.hessian).
    hessian: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def n_params(self) -> int:
        return self.theta0.numel()


def load_images(path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training images of a data cache, flattened and standardized per pixel set."""
    cache = torch.load(path, map_location="cpu", weights_only=True)
    if "train_x" not in cache or "train_y" not in cache:
        raise ConfigError(f"{path}: lacks train_x/train_y; rebuild the data cache")
    x = cache["train_x"][:n].to(DTYPE).div_(255).reshape(min(n, len(cache["train_x"])), -1)
    x = (x - x.mean()) / x.std().clamp_min(1e-8)
    return x, cache["train_y"][:n].long()


def project(x: torch.Tensor, d: int, seed: int) -> torch.Tensor:
    """``d`` standardized features: a fixed Gaussian random projection of the pixels."""
    generator = torch.Generator().manual_seed(seed)
    z = x @ torch.randn(x.shape[1], d, generator=generator, dtype=x.dtype) / math.sqrt(x.shape[1])
    return (z - z.mean(0)) / z.std(0).clamp_min(1e-8)


def flat_objective(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, l2: float
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """``CE(model(x), y) + l2/2 · ||θ||²`` as a function of the flat vector θ; θ at ``model``."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]

    def loss(theta: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(theta, sizes)
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        logits = functional_call(model, params, (x,))
        return F.cross_entropy(logits, y) + (l2 / 2) * theta.pow(2).sum()

    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()
    return loss, theta0


def logreg_problem(x: torch.Tensor, y: torch.Tensor, d: int, l2: float = L2, seed: int = 0):
    """Multinomial logistic regression on ``d`` projected features, from zero weights."""
    features = project(x, d, seed)
    model = nn.Linear(d, CLASSES).to(DTYPE)
    nn.init.zeros_(model.weight), nn.init.zeros_(model.bias)
    loss, theta0 = flat_objective(model, features, y, l2)
    xt = torch.cat([features, torch.ones(len(features), 1, dtype=DTYPE)], dim=1)
    smoothness = float(torch.linalg.eigvalsh(xt.T @ xt / len(xt))[-1]) / 2 + l2
    hessian = logreg_hessian(features, l2)
    return Problem(f"logreg-d{d}", "logreg", d, loss, theta0, 1 / smoothness, len(x), hessian)


def logreg_hessian(features: torch.Tensor, l2: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exact Hessian of ``logreg_problem``'s loss in closed form, in θ's layout (weight rows,
    then bias), with M = [W | b] acting on x̃ = [x, 1]:

        ∂²/∂M_cj ∂M_c'j' = (1/n) Σ_i (p_ic δ_cc' - p_ic p_ic') x̃_ij x̃_ij' + l2 δ,

    i.e. block-diagonal X̃ᵀ diag(p_c) X̃ minus ZᵀZ with Z_i = p_i ⊗ x̃_i: two matrix products,
    O(n N²), where automatic differentiation runs one vectorized backward pass per row.
    """
    n, d = features.shape
    xt = torch.cat([features, torch.ones(n, 1, dtype=features.dtype)], dim=1)
    weight = torch.arange(CLASSES * d)
    layout = torch.cat([weight // d * (d + 1) + weight % d, torch.arange(CLASSES) * (d + 1) + d])
    ridge = l2 * torch.eye(CLASSES * (d + 1), dtype=features.dtype)

    def hessian(theta: torch.Tensor) -> torch.Tensor:
        w, b = theta[: CLASSES * d].view(CLASSES, d), theta[CLASSES * d :]
        p = torch.softmax(features @ w.T + b, dim=1)
        blocks = torch.einsum("ic,ij,ik->cjk", p, xt, xt)
        z = (p.unsqueeze(2) * xt.unsqueeze(1)).reshape(n, -1)
        h = (torch.block_diag(*blocks) - z.T @ z) / n + ridge
        return h[layout][:, layout]

    return hessian


def mlp_problem(x: torch.Tensor, y: torch.Tensor, width: int, l2: float = L2, seed: int = 0):
    """One tanh hidden layer of ``width`` units on 16 projected features, seeded initialization."""
    features = project(x, MLP_INPUTS, seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(MLP_INPUTS, width), nn.Tanh(), nn.Linear(width, CLASSES))
    loss, theta0 = flat_objective(model.to(DTYPE), features, y, l2)
    curvature = top_eigenvalue(loss, theta0)
    return Problem(f"mlp-h{width}", "mlp", width, loss, theta0, 1 / (2 * curvature), len(x))


def top_eigenvalue(loss, theta: torch.Tensor, steps: int = 30) -> float:
    """Largest Hessian eigenvalue at ``theta`` by power iteration on Hessian-vector products."""
    grad = torch.func.grad(loss)
    v = torch.ones_like(theta) / math.sqrt(theta.numel())
    value = 0.0
    for _ in range(steps):
        hv = torch.func.jvp(grad, (theta,), (v,))[1]
        value = float(v @ hv)
        v = hv / hv.norm().clamp_min(1e-30)
    return abs(value)
