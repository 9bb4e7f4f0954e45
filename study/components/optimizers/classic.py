"""The optimizers of the course: SGD, heavy-ball and Nesterov momentum, AdaGrad, RMSProp, Adam,
AdamW and L-BFGS, all from ``torch.optim``.

``optim.weight_decay`` is torch's coupled form for all of them (``wd·w`` added to the gradient,
i.e. an L2 penalty of ``wd/2·Σw²``) except AdamW, whose decay is decoupled (Loshchilov & Hutter
2019), ``w ← w − lr·wd·w``, and is not rescaled by the per-coordinate step size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from study.components.optimizers.base import (
    OPTIMIZERS,
    betas_of,
    option,
    param_groups,
)
from study.components.regularizers import weights
from study.errors import ConfigError


def _sgd(cfg: Mapping[str, Any], model: nn.Module, defaults: Mapping[str, Any]):
    momentum = float(option(cfg, "momentum", defaults.get("momentum", 0.0)))
    nesterov = bool(option(cfg, "nesterov", defaults.get("nesterov", False)))
    return torch.optim.SGD(
        param_groups(model, option(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        momentum=momentum,
        nesterov=nesterov,
    )


@OPTIMIZERS.builder("sgd")
def _build_sgd(cfg, model):
    return _sgd(cfg, model, {"momentum": 0.0, "nesterov": False})


@OPTIMIZERS.builder("momentum")
def _build_momentum(cfg, model):
    # Heavy-ball momentum (Polyak 1964) as implemented by torch: v ← μv + g, w ← w − lr·v.
    return _sgd(cfg, model, {"momentum": 0.9, "nesterov": False})


@OPTIMIZERS.builder("nesterov")
def _build_nesterov(cfg, model):
    # Nesterov's accelerated gradient in the form of Sutskever et al. (2013).
    return _sgd(cfg, model, {"momentum": 0.9, "nesterov": True})


@OPTIMIZERS.builder("adagrad")
def _build_adagrad(cfg, model):
    # Duchi et al. (2011): per-coordinate step lr / sqrt(Σ g²).
    return torch.optim.Adagrad(
        param_groups(model, option(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        eps=float(option(cfg, "eps", 1e-10)),
    )


@OPTIMIZERS.builder("rmsprop")
def _build_rmsprop(cfg, model):
    # Tieleman & Hinton (2012): divide by a running average of g² (decay alpha) instead of the sum.
    return torch.optim.RMSprop(
        param_groups(model, option(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        alpha=float(option(cfg, "alpha", 0.99)),
        eps=float(option(cfg, "eps", 1e-8)),
        momentum=float(option(cfg, "momentum", 0.0)),
    )


@OPTIMIZERS.builder("adam")
def _build_adam(cfg, model):
    # Kingma & Ba (2015). weight_decay here is coupled: wd·w joins the gradient before the
    # division by sqrt(v), so weights with large gradients are barely decayed.
    return torch.optim.Adam(
        param_groups(model, option(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        betas=betas_of(cfg),
        eps=float(option(cfg, "eps", 1e-8)),
    )


@OPTIMIZERS.builder("adamw")
def _build_adamw(cfg, model):
    # Loshchilov & Hutter (2019): decoupled decay w ← w − lr·wd·w, applied outside Adam's
    # normalization. torch's AdamW defaults to weight_decay=0.01, so the value is always explicit.
    return torch.optim.AdamW(
        param_groups(model, option(cfg, "weight_decay", 0.0)),
        lr=float(cfg["lr"]),
        betas=betas_of(cfg),
        eps=float(option(cfg, "eps", 1e-8)),
        weight_decay=0.0,
    )


class DecayedLBFGS(torch.optim.LBFGS):
    """L-BFGS (Liu & Nocedal 1989) with coupled weight decay on the weights only.

    torch's LBFGS supports a single parameter group and has no ``weight_decay``. The decay is
    therefore added inside the closure, to the loss *and* the gradient, so that the line search
    sees the same objective whose gradient it follows: ``f(w) + wd/2·Σ_weights w²``.
    """

    def __init__(self, params, decayed: Iterable[torch.Tensor], weight_decay: float, **kwargs):
        super().__init__(params, **kwargs)
        self.decayed = list(decayed)
        self.weight_decay = float(weight_decay)

    def step(self, closure: Callable[[], torch.Tensor]):  # type: ignore[override]
        if self.weight_decay == 0 or not self.decayed:
            return super().step(closure)
        wd, decayed = self.weight_decay, self.decayed

        def decayed_closure():
            loss = closure()
            with torch.no_grad():
                extra = (wd / 2) * sum(w.pow(2).sum() for w in decayed)
                for w in decayed:
                    if w.grad is None:
                        w.grad = wd * w.detach().clone()
                    else:
                        w.grad.add_(w, alpha=wd)
            return loss.detach() + extra

        return super().step(decayed_closure)


def _validate_lbfgs(cfg: Mapping[str, Any]) -> None:
    line_search = cfg.get("line_search")
    if line_search not in (None, "none", "strong_wolfe"):
        raise ConfigError(
            f"optim.line_search must be strong_wolfe or none, got {line_search!r}: "
            "set optim.line_search=strong_wolfe"
        )


# L-BFGS re-evaluates the loss during its line search, so its step takes a closure.
@OPTIMIZERS.builder("lbfgs", validate=_validate_lbfgs, needs_closure=True)
def _build_lbfgs(cfg, model):
    params = [p for p in model.parameters() if p.requires_grad]
    line_search = option(cfg, "line_search", "strong_wolfe")
    decayed_ids = {id(p) for p in weights(model)}
    return DecayedLBFGS(
        params,
        decayed=[p for p in params if id(p) in decayed_ids],
        weight_decay=option(cfg, "weight_decay", 0.0),
        lr=float(cfg["lr"]),
        history_size=int(option(cfg, "history_size", 10)),
        max_iter=int(option(cfg, "max_iter", 20)),
        # torch's default max_eval (max_iter·5/4) caps line-search evaluations per step().
        max_eval=cfg.get("max_eval"),
        line_search_fn=None if line_search == "none" else line_search,
    )
