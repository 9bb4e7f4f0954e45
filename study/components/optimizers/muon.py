"""Muon (Jordan et al. 2024; Liu et al. 2025, "Muon is Scalable for LLM Training") for the hidden
weight matrices, with AdamW for every other parameter, as its authors use it.

Muon keeps a (Nesterov) momentum of each matrix's gradient and steps along its orthogonalized
version ``≈ U·Vᵀ`` of ``M = U·S·Vᵀ``, computed by five quintic Newton–Schulz iterations, so every
singular direction of the update has about the same size. That suits matrices that map one hidden
representation to another, not the first layer (whose input is pixels), the classifier head (whose
rows are per-class scores) or vectors (biases, normalization parameters).

Which matrices are hidden (:func:`hidden_matrices`): every weight between the first layer and the
classifier, in the order the network registers them.

* resmlp: the two width×width Linear weights of every residual block; the stem Linear(784→width)
  and the head Linear(width→classes) go to AdamW.
* resnet: every conv filter of the residual stages, the 1×1 shortcut projections included, each
  orthogonalized as an ``(out, in·kh·kw)`` matrix as in Jordan's CIFAR-10 speed runs (torch's Muon
  takes 2-D parameters only; :class:`MatrixMuon` views the filters as matrices); the stem conv and
  the final Linear go to AdamW.

One learning rate serves both parts: ``adjust_lr=match_rms_adamw`` scales Muon's step by
``0.2·sqrt(max(rows, cols))`` so that its RMS matches AdamW's (Liu et al. 2025). The study tunes
``optim.lr`` and sets it on every parameter group each step, so a second, separate Muon rate (the
``original`` adjustment of Jordan, which wants about 0.02) would not survive the schedule. Both
parts decay decoupled, ``w ← w − lr·wd·w``, on the weights only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from study.components.optimizers.base import (
    OPTIMIZERS,
    betas_of,
    check_choice,
    check_positive,
    option,
    param_groups,
)
from study.components.regularizers import weights

ADJUST_LR = ("match_rms_adamw", "original", "spectral_unclamped")


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The trainable weights strictly between the first layer and the classifier head."""
    trainable = [w for w in weights(model) if w.requires_grad]
    return trainable[1:-1]


def as_matrix(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor`` (shaped as the parameter ``like``) as an ``(out, rest)`` matrix, a view when
    ``tensor`` has ``like``'s layout. A channels-last filter is flattened as ``(out, kh·kw·in)``:
    a column permutation of ``(out, in·kh·kw)``, which leaves the orthogonalized update the same
    up to that permutation."""
    if tensor.ndim == 2:
        return tensor
    if like.ndim == 4 and not like.is_contiguous():
        return tensor.permute(0, 2, 3, 1).reshape(len(tensor), -1)
    return tensor.reshape(len(tensor), -1)


class MatrixMuon(torch.optim.Muon):
    """torch's Muon, also for conv filters, which it orthogonalizes as matrices."""

    def __init__(self, params, **options):
        # torch's constructor refuses parameters that are not 2-D; its checks and defaults are
        # taken from a probe built on one 2-D tensor, then the real parameters are registered.
        probe = torch.optim.Muon([torch.zeros(1, 1, requires_grad=True)], **options)
        torch.optim.Optimizer.__init__(self, params, probe.defaults)

    def _init_group(self, group, params_with_grad, grads, muon_momentum_bufs):
        for p in group["params"]:
            if p.grad is not None and "momentum_buffer" not in self.state[p]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p)  # in the parameter's layout
        has_complex = super()._init_group(group, params_with_grad, grads, muon_momentum_bufs)
        for i, p in enumerate(params_with_grad):
            # The parameter and its buffer are updated in place, so they must stay views.
            params_with_grad[i] = as_matrix(p, p)
            muon_momentum_bufs[i] = as_matrix(muon_momentum_bufs[i], p)
            grads[i] = as_matrix(grads[i], p)
            assert params_with_grad[i].data_ptr() == p.data_ptr()
        return has_complex


class MuonWithAdamW(torch.optim.Optimizer):
    """One optimizer over two: Muon for the hidden matrices, AdamW for the rest.

    Its ``param_groups`` are both optimizers' groups (each marked ``muon``) and its ``state`` is
    shared with them, so the loop's per-step learning rate and the checkpoint's state dict reach
    both parts.
    """

    def __init__(self, muon_groups, adamw_groups, muon_options, adamw_options):
        self._muon = MatrixMuon(muon_groups, **muon_options) if muon_groups else None
        self._adamw = torch.optim.AdamW(adamw_groups, **adamw_options) if adamw_groups else None
        groups = [
            dict(group, muon=inner is self._muon)
            for inner in (self._muon, self._adamw)
            if inner is not None
            for group in inner.param_groups
        ]
        super().__init__(groups, {})
        self._bind()

    def _bind(self) -> None:
        """Point both parts at this optimizer's groups and state; load_state_dict replaces them,
        so every step binds again."""
        for inner, is_muon in ((self._muon, True), (self._adamw, False)):
            if inner is not None:
                inner.param_groups = [g for g in self.param_groups if g["muon"] == is_muon]
                inner.state = self.state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._bind()
        for inner in (self._muon, self._adamw):
            if inner is not None:
                inner.step()
        return loss


def _validate_muon(cfg: Mapping[str, Any]) -> None:
    check_positive(cfg, "ns_steps", integer=True)
    check_choice(cfg, "adjust_lr", ADJUST_LR)


@OPTIMIZERS.builder("muon", validate=_validate_muon)
def _build_muon(cfg, model):
    weight_decay = float(option(cfg, "weight_decay", 0.0))
    hidden = hidden_matrices(model)
    hidden_ids = {id(p) for p in hidden}
    rest = param_groups(model, weight_decay)
    for group in rest:
        group["params"] = [p for p in group["params"] if id(p) not in hidden_ids]
    lr = float(cfg["lr"])
    muon_options = {
        "lr": lr,
        "weight_decay": weight_decay,
        "momentum": float(option(cfg, "momentum", 0.95)),
        "nesterov": bool(option(cfg, "nesterov", True)),
        "ns_steps": int(option(cfg, "ns_steps", 5)),
        "adjust_lr_fn": option(cfg, "adjust_lr", "match_rms_adamw"),
    }
    adamw_options = {
        "lr": lr,
        "betas": betas_of(cfg, (0.9, 0.95)),
        "eps": float(option(cfg, "eps", 1e-8)),
        "weight_decay": 0.0,  # set per group: the first and last weights only
    }
    return MuonWithAdamW(
        [{"params": hidden}] if hidden else [],
        [g for g in rest if g["params"]],
        muon_options,
        adamw_options,
    )
