"""The regularizer registry and its config checks (study/components/regularizers.py).

The penalties themselves (weights, penalty) are specified in tests/test_optim.py next to the
optimizers' weight decay they are compared with.
"""

import pytest
from omegaconf import OmegaConf

from study.components.regularizers import REGULARIZERS, model_regularizers, validate_config
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
