"""Every config file composes, validates and trains one tiny epoch: no config can rot unseen."""

from __future__ import annotations

import json

import pytest

from study.config import CONF_DIR, GROUPS, ConfigError, compose, config_hash, options_of, validate
from study.training.run import train_run

OPTIONS = [(group, option) for group in GROUPS for option in options_of(group)]


def chosen(group: str, option: str) -> list[str]:
    """The overrides that choose ``option``, with the constant schedule an optimizer requires."""
    from study.components.optimizers import OPTIMIZERS

    needs_constant = group == "optim" and OPTIMIZERS.get(option).constant_schedule
    return [f"{group}={option}", *(["schedule=constant"] if needs_constant else [])]


TINY = [
    "data.n_train=64",
    "data.n_val=32",
    "data.n_test=32",
    "train.batch_size=16",
    "train.epochs=1",
    "train.eval_train_max=32",
    "model.width=16",
]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_config_option_composes_and_validates(group, option):
    cfg = compose(chosen(group, option))
    validate(cfg)
    if group != "scale":
        assert cfg[group].name == option


TRAINABLE = [(g, o) for g, o in OPTIONS if g in ("model", "optim", "schedule")]


@pytest.mark.parametrize(("group", "option"), TRAINABLE, ids=[f"{g}={o}" for g, o in TRAINABLE])
def test_every_model_optimizer_and_schedule_trains_one_tiny_epoch(
    group, option, tmp_path, fashion_cache
):
    overrides = [*chosen(group, option), *TINY, f"run.out={tmp_path}", f"run.cache={fashion_cache}"]
    cfg = compose(overrides)
    metrics = train_run(cfg)
    assert metrics["status"] in ("ok", "diverged")
    assert metrics["epochs_run"] <= 1
    assert json.loads((tmp_path / "metrics.json").read_text())["config"][group]["name"] == option


def test_every_norm_trains(tmp_path, fashion_cache):
    for norm in ("none", "batchnorm", "batchrenorm", "groupnorm", "layernorm"):
        out = tmp_path / norm
        cfg = compose([f"model.norm={norm}", *TINY, f"run.out={out}", f"run.cache={fashion_cache}"])
        assert train_run(cfg)["status"] == "ok"


def test_the_conf_tree_matches_the_groups_the_code_reads():
    assert sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir()) == sorted([*GROUPS, "ablation"])


def test_config_hash_ignores_where_a_run_writes_but_not_what_it_computes():
    a = compose(["run.out=/a"])
    b = compose(["run.out=/b"])
    c = compose(["run.out=/a", "optim.lr=0.002"])
    assert config_hash(a) == config_hash(b) != config_hash(c)


def test_a_tuned_runs_hash_follows_its_learning_rate_not_its_selection_file():
    here = compose(["train.lr_from=/results/a/selection/x.json", "optim.lr=0.01"])
    moved = compose(["train.lr_from=/elsewhere/selection/x.json", "optim.lr=0.01"])
    untuned = compose(["optim.lr=0.01"])
    other_lr = compose(["train.lr_from=/results/a/selection/x.json", "optim.lr=0.02"])
    assert config_hash(here) == config_hash(moved) == config_hash(untuned) != config_hash(other_lr)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batches=shuffled", "train.batches='shuffled' is invalid"),
        ("train.epochs=0", "train.epochs=0 is invalid"),
        ("regularization.l2=-1", "regularization.l2=-1 is invalid"),
        ("augment.flip=maybe", "augment.flip='maybe' is invalid"),
        ("model.renorm.r_max=0.5", "model.renorm.r_max=0.5 is invalid"),
        ("device=tpu", "device='tpu' is invalid"),
        ("data.name=imagenet", "data.name='imagenet' is unknown"),
    ],
)
def test_invalid_values_name_the_key_and_the_rule(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(compose([override]))
