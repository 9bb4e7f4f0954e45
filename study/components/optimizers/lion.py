"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), from
``pytorch_optimizer``.

The update is the sign of an interpolation between the momentum and the gradient, so every
coordinate moves by exactly ``lr``; the momentum is updated with a second, slower rate:

    u = sign(β1·m + (1 − β1)·g),   w ← w − lr·(u + wd·w),   m ← β2·m + (1 − β2)·g

Because the sign has a larger norm than Adam's update, the paper uses a learning rate 3–10× smaller
than AdamW's and a weight decay 3–10× larger (same ``lr·wd``); conf/optim/lion.yaml starts at
``lr=1e-4`` with the paper's betas (0.9, 0.99). The decay is decoupled, on the weights only.
"""

from __future__ import annotations

from study.components.optimizers.base import OPTIMIZERS, betas_of, option, param_groups


@OPTIMIZERS.builder("lion")
def _build_lion(cfg, model):
    from pytorch_optimizer import Lion  # imported here: only Lion runs pay for the package

    return Lion(
        param_groups(model, option(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        betas=betas_of(cfg, (0.9, 0.99)),
        weight_decouple=True,
    )
