"""The two networks of the study, built from ``cfg.model`` (conf/model/*.yaml).

- ``resmlp``: a residual MLP for 28×28 images on CPU.
- ``resnet``: a small pre-activation ResNet for GPU runs.

Both use pre-activation residual blocks (He et al. 2016, "Identity Mappings in Deep Residual
Networks"): the branch is norm → ReLU → layer → norm → ReLU → (regularizer) → layer and the sum
is not followed by a nonlinearity, so each regularizer and normalization sits at the same place in
both models. The networks name no regularizer: they ask the registry (:class:`InNetwork`, study/
components/regularizers/base.py) for the layer on the branch's hidden activations (dropout), for
the branch's weight layers (DropConnect) and for the layer on each branch's output (stochastic
depth), so a new in-network regularizer is its own module there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from study.components.checks import check_name, check_rules, int_at_least
from study.components.layers import ResidualBlock
from study.components.norms import make_norm, norm_options
from study.components.regularizers import InNetwork, in_network
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
        regularizers: InNetwork,
    ):
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(in_features, width))
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(
                    nn.Sequential(
                        make_norm(norm, width, 1, **norm_options),
                        nn.ReLU(),
                        regularizers.weight_layer(nn.Linear, width, width),
                        make_norm(norm, width, 1, **norm_options),
                        nn.ReLU(),
                        regularizers.activations(),
                        regularizers.weight_layer(nn.Linear, width, width),
                    ),
                    drop_path=regularizers.branch(block, blocks),
                )
                for block in range(blocks)
            )
        )
        self.head = nn.Sequential(
            make_norm(norm, width, 1, **norm_options), nn.ReLU(), nn.Linear(width, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def _conv3x3(regularizers: InNetwork, cin: int, cout: int, stride: int, bias: bool) -> nn.Module:
    return regularizers.weight_layer(nn.Conv2d, cin, cout, 3, stride=stride, padding=1, bias=bias)


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
        regularizers: InNetwork,
    ):
        super().__init__()
        # A bias right before a normalization that subtracts a mean is redundant.
        bias = norm == "none"
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=bias)
        layers = []
        cin = width
        for stage in range(3):
            cout = width * 2**stage
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                branch = nn.Sequential(
                    make_norm(norm, cin, 2, **norm_options),
                    nn.ReLU(),
                    _conv3x3(regularizers, cin, cout, stride, bias),
                    make_norm(norm, cout, 2, **norm_options),
                    nn.ReLU(),
                    regularizers.activations(),
                    _conv3x3(regularizers, cout, cout, 1, bias),
                )
                shortcut = None
                if stride != 1 or cin != cout:
                    # Projection shortcut where the shape changes (He et al. 2016 CVPR, option B).
                    shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
                drop_path = regularizers.branch(len(layers), 3 * blocks)
                layers.append(ResidualBlock(branch, shortcut, drop_path))
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
        regularizers=in_network(cfg_model),
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
