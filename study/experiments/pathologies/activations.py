"""Activations: saturating gradients through depth, and dead ReLU units after a high rate.

Vanishing: a plain MLP (``width`` units per hidden layer, no normalization, no skips) on a batch
of images at each activation's standard initialization (Glorot normal for sigmoid and tanh, He
normal for ReLU; zero biases); the norm of the cross-entropy's gradient with respect to the first
layer's weights is measured as the depth grows. The sigmoid's derivative is at most 1/4, so each
sigmoid layer scales the backpropagated signal by at most ‖W‖₂/4.

Dead units: one hidden ReLU layer trained by full-batch gradient descent for ``steps`` steps at a
normal and at a high learning rate; a unit is dead when its pre-activation is ≤ 0 on every image
of a held-out batch (it then gets no gradient from any of them, and never recovers).
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
DTYPE = torch.float64


def network(inputs: int, width: int, depth: int, activation: str, seed: int) -> nn.Sequential:
    """``depth`` hidden layers of ``activation`` at its standard initialization, then 10 logits."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(depth):
        linear = nn.Linear(inputs if i == 0 else width, width).to(DTYPE)
        if activation == "relu":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        else:
            nn.init.xavier_normal_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers += [linear, ACTIVATIONS[activation]()]
    head = nn.Linear(width, 10).to(DTYPE)
    nn.init.xavier_normal_(head.weight), nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


def first_layer_gradient(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> float:
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return float(model[0].weight.grad.norm())


def vanishing(x, y, depths, seeds, width: int = 64, activations=("sigmoid", "relu")) -> list[dict]:
    rows = []
    for activation in activations:
        for depth in depths:
            for s in seeds:
                model = network(x.shape[1], width, depth, activation, s)
                rows.append({
                    "experiment": "vanishing", "method": activation, "geometry": f"w{width}",
                    "x": depth, "seed": s, "quantity": "first_layer_grad_norm",
                    "value": first_layer_gradient(model, x, y), "reached": True, "parameter": 0.0,
                })  # fmt: skip
    return rows


def dead_fraction(model: nn.Sequential, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model[0](x) <= 0).all(dim=0).to(DTYPE).mean())


def train(model: nn.Sequential, x, y, lr: float, steps: int) -> nn.Sequential:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def dead_units(x_train, y_train, x_held, rates, seeds, width: int = 128, steps: int = 20):
    """Fraction of dead hidden ReLU units after ``steps`` steps at each rate, per seed."""
    rows = []
    for lr in rates:
        for s in seeds:
            model = train(
                network(x_train.shape[1], width, 1, "relu", s), x_train, y_train, lr, steps
            )
            rows.append({
                "experiment": "dead_relu", "method": f"lr{lr:g}", "geometry": f"w{width}", "x": lr,
                "seed": s, "quantity": "dead_fraction", "value": dead_fraction(model, x_held),
                "reached": True, "parameter": float(steps),
            })  # fmt: skip
    return rows
