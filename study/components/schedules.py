"""Learning-rate schedules as pure functions of the optimizer step.

The learning rate at step ``t`` (0-based, ``0 <= t < total_steps``) is ``optim.lr · lr_factor(t,
...)``. Nothing is stored between calls, so resuming from a checkpoint only needs the step count.
``t = total_steps`` is also accepted (the end point of a curve, after the last update).

Conventions (shared by every schedule):

* Warmup: ``warmup`` is a fraction of all steps; ``W = round(warmup · total_steps)`` steps (at
  least 1 when ``warmup > 0``). During warmup the factor rises linearly as ``(t + 1) / W``, so the
  first update already moves the weights (a factor of exactly 0 would waste a step) and the last
  warmup step reaches 1 (Goyal et al. 2017, gradual warmup).
* After warmup, schedules driven by elapsed time or progress (cosine, linear, exponential,
  inverse_sqrt) start their clock at the end of warmup: ``s = t − W`` and progress
  ``p = s / (total_steps − W)``. The peak is then exactly the base LR and the curve is
  continuous.
* Schedules with milestones (step, piecewise) place them at fractions of *all* steps, as their
  configs say: with warmup 0.1 and boundaries [0.5, 0.75], the base LR holds from 10% to 50%.
  A milestone falls at step ``round(m · total_steps)``, the first step with the lower factor.
  Milestones must lie after the warmup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from study.errors import ConfigError
from study.registry import Registry, UnknownName

__all__ = [
    "SCHEDULES",
    "Parameter",
    "ScheduleSpec",
    "lr_curve",
    "lr_factor",
    "schedule_fn",
    "validate_schedule",
    "warmup_steps",
]


# Each decay maps (step t, steps since warmup s, progress p in [0, 1], resolved parameters) to a
# factor. They only do arithmetic: the parameters are read from the config once, in schedule_fn.
Decay = Callable[[int, int, float, dict[str, Any]], float]


@dataclass(frozen=True)
class Parameter:
    """One config key a schedule reads: ``check(cfg, warmup)`` raises a ConfigError naming it,
    ``resolve(cfg, total_steps)`` turns it into the value the decay reads under the same key."""

    key: str
    check: Callable[[Mapping[str, Any], float], None]
    resolve: Callable[[Mapping[str, Any], int], Any]


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule: its decay after warmup and the parameters it reads, in checking order."""

    decay: Decay
    parameters: tuple[Parameter, ...] = ()


SCHEDULES: Registry[ScheduleSpec] = Registry("schedule", "schedule.name", ScheduleSpec)
"""Config name (``schedule.name``) → :class:`ScheduleSpec`."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def _gamma(example: float) -> Parameter:
    def check(cfg: Mapping[str, Any], warmup: float) -> None:
        gamma = cfg.get("gamma")
        if not (_is_number(gamma) and 0 < gamma <= 1):
            raise ConfigError(
                f"schedule.gamma must be in (0, 1], got {gamma!r}: e.g. schedule.gamma={example}"
            )

    return Parameter("gamma", check, lambda cfg, total: float(cfg["gamma"]))


def _fractions(cfg: Mapping[str, Any], key: str, warmup: float) -> list[float]:
    value = cfg.get(key)
    try:
        values = list(value)
    except TypeError:
        values = None
    ok = values is not None and all(_is_number(v) and 0 < v < 1 for v in values)
    ok = ok and all(a < b for a, b in zip(values, values[1:], strict=False))
    if not ok:
        raise ConfigError(
            f"schedule.{key} must be increasing fractions of all steps in (0, 1), got {value!r}: "
            f"e.g. schedule.{key}=[0.5,0.75]"
        )
    if values and values[0] <= warmup:
        raise ConfigError(
            f"schedule.{key} must lie after the warmup ({warmup:g} of all steps), got {value!r}: "
            f"lower schedule.warmup or move the first of schedule.{key} later"
        )
    return [float(v) for v in values]


def _milestones(key: str) -> Parameter:
    """Fractions of all steps, resolved to the step numbers where the factor changes."""

    def check(cfg: Mapping[str, Any], warmup: float) -> None:
        _fractions(cfg, key, warmup)

    return Parameter(key, check, lambda cfg, total: [round(m * total) for m in cfg[key]])


def _check_final(cfg: Mapping[str, Any], warmup: float) -> None:
    final = cfg.get("final", 0.0)
    if not (_is_number(final) and 0 <= final <= 1):
        raise ConfigError(
            f"schedule.final must be a fraction of the base LR in [0, 1], got {final!r}: "
            "e.g. schedule.final=0"
        )


FINAL = Parameter("final", _check_final, lambda cfg, total: float(cfg.get("final", 0.0)))


def _check_final_above_zero(cfg: Mapping[str, Any], warmup: float) -> None:
    final = cfg.get("final")
    if not (_is_number(final) and 0 < final <= 1):
        raise ConfigError(
            f"schedule.final must be a fraction of the base LR in (0, 1] (a geometric decay "
            f"never reaches 0), got {final!r}: e.g. schedule.final=0.01"
        )


FINAL_ABOVE_ZERO = Parameter(
    "final", _check_final_above_zero, lambda cfg, total: float(cfg["final"])
)


def _check_timescale(cfg: Mapping[str, Any], warmup: float) -> None:
    timescale = cfg.get("timescale")
    if not (_is_number(timescale) and timescale >= 1):
        raise ConfigError(
            f"schedule.timescale must be a number of steps >= 1, got {timescale!r}: "
            "e.g. schedule.timescale=100"
        )


TIMESCALE = Parameter("timescale", _check_timescale, lambda cfg, total: float(cfg["timescale"]))


def _check_factors(cfg: Mapping[str, Any], warmup: float) -> None:
    boundaries = _fractions(cfg, "boundaries", warmup)
    factors = cfg.get("factors")
    try:
        factors = list(factors)
    except TypeError:
        factors = None
    if (
        factors is None
        or len(factors) != len(boundaries) + 1
        or not all(_is_number(f) and f > 0 for f in factors)
    ):
        raise ConfigError(
            f"schedule.factors must be {len(boundaries) + 1} positive numbers (one more than "
            f"schedule.boundaries), got {cfg.get('factors')!r}: e.g. [1.0,0.1,0.01]"
        )


FACTORS = Parameter(
    "factors", _check_factors, lambda cfg, total: [float(f) for f in cfg["factors"]]
)


# --------------------------------------------------------------------------------------------
# Decays
# --------------------------------------------------------------------------------------------


def _constant(t: int, s: int, p: float, q: dict[str, Any]) -> float:
    return 1.0


def _passed(t: int, steps: list[int]) -> int:
    """How many of the milestone ``steps`` step ``t`` has reached."""
    k = 0
    for m in steps:
        if t >= m:
            k += 1
    return k


def _step(t: int, s: int, p: float, q: dict[str, Any]) -> float:
    # Step decay (He et al. 2016): multiply by gamma at each milestone passed.
    return q["gamma"] ** _passed(t, q["milestones"])


def _exponential(t: int, s: int, p: float, q: dict[str, Any]) -> float:
    # A rate per run, not per epoch: the factor falls geometrically from 1 to `final` over the
    # steps after warmup, whatever the run's length (0.99 per epoch would end a 12-epoch run at
    # 0.886, i.e. nearly constant). Applied every step, so there are no jumps.
    return q["final"] ** p


def _cosine(t: int, s: int, p: float, q: dict[str, Any]) -> float:
    # Cosine annealing without restarts (Loshchilov & Hutter 2017), from 1 down to `final`.
    final = q["final"]
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * p))


def _linear(t: int, s: int, p: float, q: dict[str, Any]) -> float:
    final = q["final"]
    return 1.0 + (final - 1.0) * p


def _inverse_sqrt(t: int, s: int, p: float, q: dict[str, Any]) -> float:
    # Vaswani et al. (2017): flat for `timescale` steps, then ∝ 1/sqrt(step).
    timescale = q["timescale"]
    return math.sqrt(timescale / max(s, timescale))


def _piecewise(t: int, s: int, p: float, q: dict[str, Any]) -> float:
    return q["factors"][_passed(t, q["boundaries"])]


SCHEDULES.register("constant", ScheduleSpec(_constant))
SCHEDULES.register("step", ScheduleSpec(_step, (_gamma(0.1), _milestones("milestones"))))
SCHEDULES.register("exponential", ScheduleSpec(_exponential, (FINAL_ABOVE_ZERO,)))
SCHEDULES.register("cosine", ScheduleSpec(_cosine, (FINAL,)))
SCHEDULES.register("linear", ScheduleSpec(_linear, (FINAL,)))
SCHEDULES.register("inverse_sqrt", ScheduleSpec(_inverse_sqrt, (TIMESCALE,)))
SCHEDULES.register("piecewise", ScheduleSpec(_piecewise, (_milestones("boundaries"), FACTORS)))


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _spec(name: Any) -> ScheduleSpec:
    if name not in SCHEDULES:
        raise UnknownName(
            f"unknown schedule schedule.name={name!r}; valid names: {', '.join(SCHEDULES)}"
        )
    return SCHEDULES.get(name)


def _warmup(cfg: Mapping[str, Any]) -> float:
    warmup = cfg.get("warmup", 0.0)
    warmup = 0.0 if warmup is None else warmup
    if not (_is_number(warmup) and 0 <= warmup < 1):
        raise ConfigError(
            f"schedule.warmup must be a fraction of all steps in [0, 1), got {warmup!r}: "
            "e.g. schedule.warmup=0.1, or 0 for no warmup"
        )
    return warmup


def validate_schedule(cfg: Mapping[str, Any]) -> None:
    """Check a ``schedule`` config; raises ``ConfigError`` with one clear message."""
    spec = _spec(cfg.get("name"))
    warmup = _warmup(cfg)
    for parameter in spec.parameters:
        parameter.check(cfg, warmup)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def warmup_steps(total_steps: int, warmup: float) -> int:
    """Number of warmup steps: ``round(warmup · total_steps)``, at least 1 if ``warmup > 0``."""
    if warmup <= 0 or total_steps <= 1:
        return 0
    return min(max(1, round(warmup * total_steps)), total_steps - 1)


def schedule_fn(
    total_steps: int, steps_per_epoch: int, cfg: Mapping[str, Any]
) -> Callable[[int], float]:
    """Validate ``cfg`` once and return ``step -> factor`` (same values as :func:`lr_factor`).

    Use it where the factor is needed at many steps: it reads the config only once.
    """
    if not (isinstance(total_steps, int) and total_steps >= 1):
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if not (isinstance(steps_per_epoch, int) and steps_per_epoch >= 1):
        raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
    validate_schedule(cfg)
    spec = SCHEDULES.get(cfg["name"])
    decay = spec.decay
    warmup = float(cfg.get("warmup", 0.0) or 0.0)
    n_warm = warmup_steps(total_steps, warmup)
    q: dict[str, Any] = {"steps_per_epoch": steps_per_epoch}
    for parameter in spec.parameters:
        q[parameter.key] = parameter.resolve(cfg, total_steps)
    decay_steps = total_steps - n_warm

    def factor(step: int) -> float:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        t = min(step, total_steps)
        if t < n_warm:
            return (t + 1) / n_warm
        s = t - n_warm
        return decay(t, s, s / decay_steps, q)

    return factor


# Resolved schedules keyed by the config's *content* (its repr), so lr_factor stays a pure function
# of its arguments while the training loop, which calls it once per step, does not re-read and
# re-validate an OmegaConf config every step (~10 µs instead of ~70 µs per call).
_RESOLVED: dict[tuple[str, int, int], Callable[[int], float]] = {}
_RESOLVED_MAX = 64


def lr_factor(
    step: int, total_steps: int, steps_per_epoch: int, cfg_schedule: Mapping[str, Any]
) -> float:
    """LR multiplier at ``step`` (0-based); the LR is ``optim.lr · lr_factor(...)``. Pure."""
    content = repr(cfg_schedule)
    if "${" in content:  # unresolved interpolations: the repr does not determine the values
        return schedule_fn(total_steps, steps_per_epoch, cfg_schedule)(step)
    key = (content, total_steps, steps_per_epoch)
    factor = _RESOLVED.get(key)
    if factor is None:
        factor = schedule_fn(total_steps, steps_per_epoch, cfg_schedule)
        if len(_RESOLVED) >= _RESOLVED_MAX:
            _RESOLVED.clear()
        _RESOLVED[key] = factor
    return factor(step)


def lr_curve(total_steps: int, steps_per_epoch: int, cfg: Mapping[str, Any]) -> list[float]:
    """Factors at steps ``0 .. total_steps − 1`` (for plots)."""
    factor = schedule_fn(total_steps, steps_per_epoch, cfg)
    return [factor(t) for t in range(total_steps)]


def validate_config(cfg) -> None:
    """Check the run config's ``schedule`` group; any failure becomes one ConfigError line."""
    try:
        validate_schedule(cfg["schedule"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(str(err).strip().splitlines()[0]) from None
