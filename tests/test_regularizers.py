"""The regularizer registry, its config checks and how the networks and the loss ask it
(study/components/regularizers/).

The penalties themselves (weights, penalty) are specified in tests/test_optim.py next to the
optimizers' weight decay they are compared with.
"""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from study.components.checks import real_at_least
from study.components.layers import DropConnectLinear, StochasticDepth
from study.components.regularizers import (
    REGULARIZERS,
    RegularizerSpec,
    in_network,
    loss_penalties,
    model_regularizers,
    penalty,
    validate_config,
)
from study.errors import ConfigError


def config(**values):
    cfg = OmegaConf.create(
        {
            "model": {"dropout": 0.1, "dropconnect": 0.0, "stochastic_depth": 0.2},
            "regularization": {"l1": 0.0, "l2": 5e-4},
        }
    )
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def test_in_network_regularizers_are_read_from_the_model_config():
    assert model_regularizers(config().model) == {
        "dropconnect": 0.0,
        "dropout": 0.1,
        "stochastic_depth": 0.2,
    }


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("model.dropout", 1.0, "model.dropout=1.0 is invalid; it must be a number in [0.0, 1.0)"),
        ("model.stochastic_depth", -0.1, "model.stochastic_depth=-0.1 is invalid"),
        ("regularization.l1", -1, "regularization.l1=-1 is invalid; it must be a finite number"),
    ],
)
def test_each_regularizer_checks_its_own_key(key, value, message):
    validate_config(config())
    with pytest.raises(ConfigError) as error:
        validate_config(config(**{key: value}))
    assert str(error.value).startswith(message)


def test_unknown_regularizer_is_one_line_listing_the_valid_names():
    with pytest.raises(ConfigError) as error:
        REGULARIZERS.get("mixup")
    assert str(error.value) == (
        "regularizer='mixup' is an unknown regularizer; "
        "use one of dropconnect, dropout, l1, l2, stochastic_depth"
    )


def test_a_run_adds_only_the_loss_penalties_it_switches_on():
    assert loss_penalties(config()) == {"l2": 5e-4}
    assert loss_penalties(config(**{"regularization.l2": 0.0})) == {}


def test_penalty_refuses_a_regularizer_that_acts_inside_the_network():
    with pytest.raises(ValueError, match="dropout: not a loss penalty"):
        penalty(nn.Linear(2, 2), dropout=0.5)


def test_an_entry_acts_in_exactly_one_place_and_in_network_keys_are_model_keys():
    with pytest.raises(ValueError, match="exactly one"):
        RegularizerSpec("model.x", real_at_least(0.0))
    with pytest.raises(ValueError, match="exactly one"):
        RegularizerSpec("model.x", real_at_least(0.0), activations=nn.Dropout, branch=print)
    with pytest.raises(ValueError, match=r"model config key \(model\.\*\)"):
        RegularizerSpec("regularization.x", real_at_least(0.0), activations=nn.Dropout)


def test_the_networks_get_each_in_network_regularizer_at_its_place():
    regularizers = in_network(config(**{"model.dropconnect": 0.25}).model)
    dropout = regularizers.activations()
    assert isinstance(dropout, nn.Dropout) and dropout.p == 0.1
    layer = regularizers.weight_layer(nn.Linear, 3, 2, bias=False)
    assert isinstance(layer, DropConnectLinear) and layer.p == 0.25 and layer.bias is None
    # Stochastic depth: block l of L (from 0) drops with (l + 1) / L of model.stochastic_depth.
    last = regularizers.branch(3, 4)
    assert isinstance(last, StochasticDepth) and last.p == pytest.approx(0.2)
    assert regularizers.branch(0, 4).p == pytest.approx(0.05)


def test_regularizers_at_the_same_place_are_chained_in_name_order(monkeypatch):
    class Scale(nn.Module):
        def __init__(self, factor: float):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    entries = dict(REGULARIZERS._entries)
    entries["zz_scale"] = RegularizerSpec("model.zz_scale", real_at_least(0.0), activations=Scale)
    monkeypatch.setattr(REGULARIZERS, "_entries", entries)
    cfg = config(**{"model.dropout": 0.0})
    cfg.model.zz_scale = 3.0
    chained = in_network(cfg.model).activations().train()
    assert [type(m) for m in chained] == [nn.Dropout, Scale]
    assert torch.equal(chained(torch.ones(2, 2)), torch.full((2, 2), 3.0))
