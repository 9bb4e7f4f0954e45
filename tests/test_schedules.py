"""Learning-rate schedules (study/components/schedules.py)."""

import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from study.components.schedules import (
    SCHEDULES,
    lr_curve,
    lr_factor,
    schedule_fn,
    validate_schedule,
)

CONF = Path(__file__).resolve().parents[1] / "conf" / "schedule"
T, EPOCH = 1000, 100  # total steps, steps per epoch


def cfg(name: str, **overrides):
    return OmegaConf.merge(OmegaConf.load(CONF / f"{name}.yaml"), overrides)


def f(step: int, config, total: int = T, epoch: int = EPOCH) -> float:
    return lr_factor(step, total, epoch, config)


def test_config_files_name_their_registry_entry_and_validate():
    files = sorted(CONF.glob("*.yaml"))
    assert {p.stem for p in files} == set(SCHEDULES)
    for path in files:
        config = OmegaConf.load(path)
        assert config.name == path.stem
        validate_schedule(config)


def test_constant():
    assert [f(t, cfg("constant")) for t in (0, 1, 500, 999, 1000)] == [1.0] * 5


def test_piecewise_at_fractions_of_the_run():
    config = cfg("piecewise")  # warmup 0.1, boundaries [0.5, 0.75], factors [1, 0.1, 0.01]
    assert f(0, config) == pytest.approx(1 / 100)  # (step + 1) / warmup_steps
    assert f(49, config) == pytest.approx(0.5)
    assert f(99, config) == 1.0  # the last warmup step reaches the base LR
    assert f(100, config) == 1.0  # 10%
    assert f(499, config) == 1.0
    assert f(500, config) == pytest.approx(0.1)  # 50%
    assert f(749, config) == pytest.approx(0.1)
    assert f(750, config) == pytest.approx(0.01)  # 75%
    assert f(999, config) == pytest.approx(0.01)
    assert f(1000, config) == pytest.approx(0.01)  # 100% (end point)


def test_step_decay_drops_at_milestones():
    config = cfg("step")  # milestones [0.5, 0.75], gamma 0.1
    assert f(0, config) == 1.0 and f(499, config) == 1.0
    assert f(500, config) == pytest.approx(0.1) and f(749, config) == pytest.approx(0.1)
    assert f(750, config) == pytest.approx(0.01) and f(999, config) == pytest.approx(0.01)


def test_exponential_decays_to_final_over_the_run_whatever_its_length():
    config = cfg("exponential")  # final 0.01 of the base rate
    assert f(0, config) == 1.0
    assert f(T // 2, config) == pytest.approx(0.1)  # geometric: halfway is sqrt(0.01)
    assert f(T, config) == pytest.approx(0.01)
    assert f(1, config) < 1.0  # continuous, no jumps at epoch boundaries
    short = lr_curve(100, 10, config)  # a tenth of the steps still ends near 1%
    assert short[-1] == pytest.approx(0.01 ** (99 / 100))


def test_cosine_endpoints_and_midpoint():
    config = cfg("cosine")
    assert f(0, config) == 1.0
    assert f(T // 2, config) == pytest.approx(0.5)
    assert f(T, config) == pytest.approx(0.0, abs=1e-12)
    assert f(T - 1, config) == pytest.approx(0.5 * (1 + math.cos(math.pi * 999 / 1000)))
    final = cfg("cosine", final=0.1)
    assert f(T // 2, final) == pytest.approx(0.55)
    assert f(T, final) == pytest.approx(0.1)


def test_linear():
    config = cfg("linear", final=0.2)
    assert f(0, config) == 1.0
    assert f(250, config) == pytest.approx(0.8)
    assert f(500, config) == pytest.approx(0.6)
    assert f(T, config) == pytest.approx(0.2)


def test_inverse_sqrt():
    config = cfg("inverse_sqrt")  # timescale 100
    assert f(0, config) == 1.0 and f(100, config) == 1.0
    assert f(400, config) == pytest.approx(0.5)
    assert f(900, config) == pytest.approx(1 / 3)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_warmup_rises_linearly_then_hands_over(name):
    overrides = {"warmup": 0.2}
    if name == "piecewise":
        overrides["boundaries"] = [0.5, 0.75]
    config = cfg(name, **overrides)  # 200 warmup steps
    assert f(0, config) == pytest.approx(1 / 200)
    assert f(99, config) == pytest.approx(0.5)
    assert f(199, config) == pytest.approx(1.0)
    assert f(200, config) == pytest.approx(1.0)  # decay starts at the base LR
    curve = lr_curve(T, EPOCH, config)
    assert all(a < b for a, b in zip(curve[:199], curve[1:200], strict=True))
    assert max(curve) == pytest.approx(1.0)


def test_decays_start_their_clock_after_warmup():
    config = cfg("cosine", warmup=0.2)  # cosine over the remaining 800 steps
    assert f(200 + 400, config) == pytest.approx(0.5)
    assert f(T, config) == pytest.approx(0.0, abs=1e-12)
    exponential = cfg("exponential", warmup=0.2)  # 0.01 over the remaining 800 steps
    assert f(200 + 400, exponential) == pytest.approx(0.1)


def test_warmup_steps_round_and_keep_at_least_one():
    config = cfg("constant", warmup=0.1)
    assert lr_curve(30, 1, config)[:4] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert lr_curve(5, 1, config) == [1.0] * 5  # max(1, round(0.5)) = 1 step: (0 + 1) / 1
    assert lr_curve(1, 1, config) == [1.0]  # a single step cannot warm up


def test_purity_same_inputs_same_output():
    config = cfg("piecewise")
    first = [f(t, config) for t in (0, 123, 600, 999)]
    lr_curve(T, EPOCH, cfg("cosine"))  # other calls in between leave no state behind
    f(5, cfg("step"), total=10, epoch=2)
    assert [f(t, config) for t in (0, 123, 600, 999)] == first
    # Changing the config changes the result (nothing is cached by identity).
    config.factors = [1.0, 0.5, 0.25]
    assert f(600, config) == pytest.approx(0.5)
    assert schedule_fn(T, EPOCH, config)(600) == f(600, config)


def test_plain_dicts_are_accepted():
    assert lr_factor(500, 1000, 100, {"name": "cosine", "warmup": 0.0, "final": 0.0}) == (
        pytest.approx(0.5)
    )


def test_unknown_name():
    with pytest.raises(ValueError, match=r"'triangle'.*valid names: constant, cosine"):
        lr_factor(0, T, EPOCH, {"name": "triangle"})


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        (
            "cosine",
            {"warmup": 1.0},
            r"schedule\.warmup must be a fraction of all steps in \[0, 1\)",
        ),
        ("cosine", {"warmup": -0.1}, r"schedule\.warmup"),
        ("step", {"milestones": [0.75, 0.5]}, r"schedule\.milestones must be increasing"),
        ("step", {"milestones": [0.5, 1.0]}, r"schedule\.milestones must be increasing"),
        ("step", {"gamma": 0.0}, r"schedule\.gamma must be in \(0, 1\]"),
        ("exponential", {"final": 0.0}, r"schedule\.final must be a fraction .* \(0, 1\]"),
        ("cosine", {"final": 2.0}, r"schedule\.final"),
        ("inverse_sqrt", {"timescale": 0}, r"schedule\.timescale"),
        ("piecewise", {"factors": [1.0, 0.1]}, r"schedule\.factors must be 3 positive numbers"),
        ("piecewise", {"warmup": 0.6}, r"schedule\.boundaries must lie after the warmup"),
    ],
)
def test_validation_messages(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        validate_schedule(cfg(name, **overrides))


def test_bad_step_arguments():
    with pytest.raises(ValueError, match="step must be >= 0"):
        f(-1, cfg("constant"))
    with pytest.raises(ValueError, match="total_steps"):
        lr_factor(0, 0, 1, cfg("constant"))


def test_unknown_schedule_is_one_line_listing_the_valid_names():
    with pytest.raises(ValueError) as error:
        validate_schedule({"name": "triangle"})
    assert str(error.value) == (
        "unknown schedule schedule.name='triangle'; valid names: "
        "constant, cosine, exponential, inverse_sqrt, linear, piecewise, step"
    )


def test_every_schedule_declares_the_keys_it_reads():
    keys = {name: [p.key for p in SCHEDULES.get(name).parameters] for name in SCHEDULES}
    assert keys == {
        "constant": [],
        "cosine": ["final"],
        "exponential": ["final"],
        "inverse_sqrt": ["timescale"],
        "linear": ["final"],
        "piecewise": ["boundaries", "factors"],
        "step": ["gamma", "milestones"],
    }
