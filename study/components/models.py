"""The two networks of the study, built from ``cfg.model`` (conf/model/*.yaml).

- ``resmlp``: a residual MLP for 28×28 images on CPU.
- ``resnet``: a small pre-activation ResNet for GPU runs.

Both use pre-activation residual blocks (He et al. 2016, "Identity Mappings in Deep Residual
Networks"): the branch is norm → ReLU → layer → norm → ReLU → dropout → layer and the sum is not
followed by a nonlinearity, so each regularizer and normalization sits at the same place in both
models. In a branch, dropout sits between the two layers as in Wide ResNets (Zagoruyko & Komodakis
2016), DropConnect replaces the branch's layers, and stochastic depth drops the whole branch with
the linearly decaying rates of Huang et al. 2016 counted over all blocks of the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from study.components.checks import check_name, check_rules, int_at_least
from study.components.layers import (
    DropConnectConv2d,
    DropConnectLinear,
    ResidualBlock,
    stochastic_depth_rates,
)
from study.components.norms import make_norm, norm_options
from study.components.regularizers import model_regularizers
from study.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """One network: ``build(cfg_model, in_shape, n_classes)``, and whether its activations should
    be kept channels-last on a GPU (convolutions, where cuDNN's fastest kernels want NHWC)."""

    build: Callable[..., nn.Module]
    channels_last: bool = False


MODELS: Registry[ModelSpec] = Registry("model", "model.name", ModelSpec)
"""Config name (``model.name``) → :class:`ModelSpec`."""


class ResMLP(nn.Module):
    """flatten → Linear(in, width) → ``blocks`` pre-activation residual blocks → norm → ReLU →
    Linear(width, n_classes)."""

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        width: int,
        blocks: int,
        norm: str,
        norm_options: dict,
        dropout: float,
        dropconnect: float,
        stochastic_depth: float,
    ):
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(in_features, width))
        rates = stochastic_depth_rates(stochastic_depth, blocks)
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(
                    nn.Sequential(
                        make_norm(norm, width, 1, **norm_options),
                        nn.ReLU(),
                        DropConnectLinear(width, width, p=dropconnect),
                        make_norm(norm, width, 1, **norm_options),
                        nn.ReLU(),
                        nn.Dropout(dropout),
                        DropConnectLinear(width, width, p=dropconnect),
                    ),
                    drop_prob=rate,
                )
                for rate in rates
            )
        )
        self.head = nn.Sequential(
            make_norm(norm, width, 1, **norm_options), nn.ReLU(), nn.Linear(width, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def _conv3x3(cin: int, cout: int, stride: int, bias: bool, dropconnect: float) -> nn.Conv2d:
    return DropConnectConv2d(cin, cout, 3, stride=stride, padding=1, bias=bias, p=dropconnect)


class ResNet(nn.Module):
    """Pre-activation ResNet (He et al. 2016) for small images: a 3×3 stem convolution, three
    stages of ``blocks`` basic blocks with width, 2·width and 4·width channels (stride 2 at the
    start of the second and third), then norm → ReLU → global average pool → Linear."""

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        width: int,
        blocks: int,
        norm: str,
        norm_options: dict,
        dropout: float,
        dropconnect: float,
        stochastic_depth: float,
    ):
        super().__init__()
        # A bias right before a normalization that subtracts a mean is redundant.
        bias = norm == "none"
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=bias)
        rates = iter(stochastic_depth_rates(stochastic_depth, 3 * blocks))
        layers = []
        cin = width
        for stage in range(3):
            cout = width * 2**stage
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                branch = nn.Sequential(
                    make_norm(norm, cin, 2, **norm_options),
                    nn.ReLU(),
                    _conv3x3(cin, cout, stride, bias, dropconnect),
                    make_norm(norm, cout, 2, **norm_options),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                    _conv3x3(cout, cout, 1, bias, dropconnect),
                )
                shortcut = None
                if stride != 1 or cin != cout:
                    # Projection shortcut where the shape changes (He et al. 2016 CVPR, option B).
                    shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
                layers.append(ResidualBlock(branch, shortcut, drop_prob=next(rates)))
                cin = cout
        self.blocks = nn.Sequential(*layers)
        self.head_norm = make_norm(norm, cin, 2, **norm_options)
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        x = torch.relu(self.head_norm(x))
        return self.fc(x.mean(dim=(2, 3)))


def _shared_options(cfg_model, n_classes: int) -> dict:
    """The keys both networks read: size, normalization and the model-side regularizers."""
    return dict(
        n_classes=int(n_classes),
        width=int(cfg_model["width"]),
        blocks=int(cfg_model["blocks"]),
        norm=cfg_model["norm"],
        norm_options=norm_options(cfg_model),
        **model_regularizers(cfg_model),
    )


@MODELS.builder("resmlp")
def _build_resmlp(cfg_model, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    channels, height, width = (int(v) for v in in_shape)
    return ResMLP(in_features=channels * height * width, **_shared_options(cfg_model, n_classes))


@MODELS.builder("resnet", channels_last=True)
def _build_resnet(cfg_model, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    return ResNet(in_channels=int(in_shape[0]), **_shared_options(cfg_model, n_classes))


def build_model(cfg_model, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """Build ``cfg_model.name`` for normalized float inputs of shape (N, *in_shape).

    ``cfg_model`` is the ``model`` group of the run config (a DictConfig or any mapping) with the
    keys of conf/model/resmlp.yaml; ``renorm`` is read only when ``norm`` is batchrenorm.
    """
    return MODELS.get(cfg_model["name"]).build(cfg_model, in_shape, n_classes)


CONFIG_RULES = {"model.width": int_at_least(1), "model.blocks": int_at_least(0)}


def validate_config(cfg) -> None:
    """Check ``model.name`` and the size keys every model reads (norms and regularizers check
    their own keys)."""
    check_name(cfg, MODELS)
    check_rules(cfg, CONFIG_RULES)


__all__ = ["MODELS", "ModelSpec", "ResMLP", "ResNet", "build_model", "validate_config"]
