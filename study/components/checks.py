"""Config-value rules shared by the run config and every component module.

A rule is ``(check, wanted)``: ``check(value)`` says whether a value is valid and ``wanted`` says,
in the error line, what it must be. Component modules declare the rules for the keys they read, so
study/config.py validates a run by asking them rather than keeping one table of every key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import OmegaConf

from study.errors import ConfigError
from study.registry import Registry

Rule = tuple[Callable[[Any], bool], str]

__all__ = [
    "BOOLEAN",
    "Rule",
    "check_name",
    "check_rules",
    "int_at_least",
    "one_of",
    "optional_int_at_least",
    "real_above",
    "real_at_least",
    "real_in",
]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def int_at_least(low: int) -> Rule:
    return lambda v: _is_int(v) and v >= low, f"an integer >= {low}"


def optional_int_at_least(low: int) -> Rule:
    return lambda v: v is None or (_is_int(v) and v >= low), f"null or an integer >= {low}"


def real_in(low: float, high: float, high_open: bool = True) -> Rule:
    bracket = ")" if high_open else "]"
    if high_open:
        return lambda v: _is_real(v) and low <= v < high, f"a number in [{low}, {high}{bracket}"
    return lambda v: _is_real(v) and low <= v <= high, f"a number in [{low}, {high}{bracket}"


def real_at_least(low: float) -> Rule:
    return lambda v: _is_real(v) and v >= low, f"a finite number >= {low}"


def real_above(low: float) -> Rule:
    return lambda v: _is_real(v) and v > low, f"a finite number > {low}"


def one_of(*options) -> Rule:
    return lambda v: v in options, "one of " + ", ".join(map(str, options))


BOOLEAN: Rule = (lambda v: isinstance(v, bool), "true or false")


def check_rules(cfg, rules: Mapping[str, Rule]) -> None:
    """Raise ConfigError naming the first key of ``rules`` that is missing or invalid in ``cfg``."""
    for key, (check, wanted) in rules.items():
        value = OmegaConf.select(cfg, key, default="<missing>")
        if value == "<missing>":
            raise ConfigError(f"{key} is missing from the config; restore it in conf/")
        if not check(value):
            raise ConfigError(f"{key}={value!r} is invalid; it must be {wanted}")


def check_name(cfg, registry: Registry) -> None:
    """Raise ConfigError when the config key that names an entry of ``registry`` names none."""
    value = OmegaConf.select(cfg, registry.key)
    if value not in registry:
        raise ConfigError(
            f"{registry.key}={value!r} is unknown; use one of {', '.join(registry.names())}"
        )
