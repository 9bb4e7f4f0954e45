"""Minibatch gradient noise against the batch size B on a real problem.

Multinomial logistic regression on ``n`` Fashion-MNIST images (64 features: the second-order
experiment's fixed random projection), at the weights after a few full-batch gradient steps. The
per-example gradients are exact (closed form, (p_i - y_i) ⊗ x̃_i), so the population variance
σ² = (1/n) Σ‖g_i - ḡ‖² is known and a minibatch drawn without replacement has
E‖g_B - ḡ‖² = σ²/B · (n - B)/(n - 1) exactly (the finite-population correction). Each seed draws
``draws`` minibatches per B; the measured variance and the cosine of g_B to ḡ are its rows.
"""

from __future__ import annotations

import numpy as np
import torch

from study.experiments.second_order.problems import project

FEATURES = 64
WARM_STEPS = 20


def per_example_gradients(x: torch.Tensor, y: torch.Tensor, steps: int = WARM_STEPS):
    """(n, N) per-example gradients of the cross-entropy at the weights after ``steps`` steps of
    full-batch gradient descent (step 1) from zero; N = 10·(features + 1)."""
    xt = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    onehot = torch.nn.functional.one_hot(y, 10).to(x.dtype)
    w = torch.zeros(xt.shape[1], 10, dtype=x.dtype)
    for _ in range(steps + 1):
        residual = torch.softmax(xt @ w, dim=1) - onehot
        grads = (residual.unsqueeze(2) * xt.unsqueeze(1)).reshape(len(x), -1)
        w = w - grads.mean(0).view(10, -1).T
    return grads.numpy()


def exact_variance(grads: np.ndarray, batch: int) -> float:
    """E‖g_B - ḡ‖² for B drawn without replacement from the n rows."""
    n = len(grads)
    sigma2 = float(((grads - grads.mean(0)) ** 2).sum(1).mean())
    return sigma2 / batch * (n - batch) / (n - 1)


def measure(grads: np.ndarray, batches, seed: int, draws: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    n, full = len(grads), grads.mean(0)
    rows = []
    for b in batches:
        picks = np.stack([rng.permutation(n)[:b] for _ in range(draws)])
        estimates = grads[picks].mean(1)
        variance = float(((estimates - full) ** 2).sum(1).mean())
        cosine = float(
            np.mean(estimates @ full / (np.linalg.norm(estimates, axis=1) * np.linalg.norm(full)))
        )
        exact = exact_variance(grads, b)
        for quantity, value in (
            ("variance", variance),
            ("exact_variance", exact),
            ("cosine", cosine),
        ):
            rows.append({
                "experiment": "gradient_noise", "method": "sgd", "geometry": f"n{n}", "x": b,
                "seed": seed, "quantity": quantity, "value": value, "reached": True,
                "parameter": (n - b) / (n - 1),
            })  # fmt: skip
    return rows


def run(x: torch.Tensor, y: torch.Tensor, batches, seeds, draws: int) -> list[dict]:
    grads = per_example_gradients(project(x, FEATURES, 0), y)
    return [row for s in seeds for row in measure(grads, batches, s, draws)]
