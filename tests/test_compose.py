"""Planning composes configs from the files directly; it must give Hydra's config exactly."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from study.config import (
    CONF_DIR,
    GROUPS,
    ConfigError,
    _file_compose,
    _hydra_compose,
    compose,
    options_of,
)

CHOICES = [
    (f"{group}={option}", f"scale={scale}")
    for group in GROUPS
    if group != "scale"
    for option in options_of(group)
    for scale in ("smoke", "default")
] + [("optim=lbfgs", "schedule=step", "model=resnet", "scale=smoke"), ()]


@pytest.mark.parametrize("choices", CHOICES, ids=" ".join)
def test_composing_from_the_files_gives_hydras_config(choices):
    fast, hydra = _file_compose(choices, CONF_DIR), _hydra_compose(choices, CONF_DIR)
    assert repr(fast) == repr(hydra)  # values and their types, in Hydra's key order
    assert OmegaConf.is_struct(fast) and OmegaConf.is_struct(hydra)


def test_a_file_with_its_own_defaults_list_is_left_to_hydra():
    # The full scale swaps the model group (defaults: override /model): Hydra composes it.
    assert _file_compose(("scale=full",), CONF_DIR) is None


def test_each_composed_config_is_its_own_copy_of_the_cached_base():
    first = compose(["optim=adamw", "train.epochs=3"])
    first.train.epochs = 99
    again = compose(["optim=adamw"])
    assert again.train.epochs != 99 and OmegaConf.is_struct(again)
    assert compose(["optim=adamw", "train.epochs=3"]).train.epochs == 3


def test_a_cached_override_parse_still_reports_a_bad_line():
    compose(["optim=adamw"])  # parsed and cached
    with pytest.raises(ConfigError, match="does not parse"):
        compose(["optim=adamw", "train.epochs=[1,"])
