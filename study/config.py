"""Compose and validate one run's configuration.

Hydra composes the config (``conf/``); this module checks every value the study reads, so a typo or
an impossible value stops the study at plan time with one line that names the key and the fix,
instead of failing (or worse, silently training something else) hours later. The same check runs
again at the start of every training job.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from study.components.checks import (
    BOOLEAN,
    Rule,
    check_rules,
    int_at_least,
    one_of,
    optional_int_at_least,
    real_above,
)
from study.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


# ---------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------


def check_override_syntax(override: str) -> None:
    """Ablations may only set keys the study reads: adding (+) or deleting (~) keys is refused."""
    if not isinstance(override, str) or "=" not in override:
        raise ConfigError(f"override {override!r} is not of the form key=value")
    if override.startswith(("+", "~")):
        raise ConfigError(
            f"override {override!r} adds or deletes a key; set an existing key (key=value) instead"
        )


GROUPS = ("data", "model", "optim", "schedule", "scale")


def _hydra_compose(group_choices: tuple[str, ...], conf_dir: Path) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(group_choices))


def _file_compose(group_choices: tuple[str, ...], conf_dir: Path) -> DictConfig | None:
    """What Hydra composes for ``group_choices``, by merging the files in the root config's
    defaults order; None where a file uses more of Hydra than that (a ``defaults`` list of its
    own, a package other than its group or ``_global_``). Hydra's composition took 0.1-0.5 s per
    distinct group choice and was most of the planning time; tests/test_compose.py checks that
    both give the same config for every option of every group."""
    root = _yaml_file(conf_dir / "config.yaml")[0]
    choices = dict(choice.split("=", 1) for choice in group_choices)
    merged: dict = {}
    for entry in root.get("defaults", []):
        if entry == "_self_":
            _merge_into(merged, {k: v for k, v in root.items() if k not in ("defaults", "hydra")})
            continue
        if not isinstance(entry, dict) or len(entry) != 1:
            return None
        ((group, option),) = entry.items()
        node, package = _yaml_file(conf_dir / group / f"{choices.get(group, option)}.yaml")
        if "defaults" in node or package not in (None, "_global_"):
            return None
        _merge_into(merged, node if package == "_global_" else {group: node})
    cfg = OmegaConf.create(merged)
    OmegaConf.set_struct(cfg, True)
    return cfg


def _merge_into(target: dict, source: dict) -> None:
    """OmegaConf.merge's rule on plain data: mappings merge key by key, anything else replaces."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


_YAML: dict[tuple, tuple[dict, str | None]] = {}


def _yaml_file(path: Path) -> tuple[dict, str | None]:
    """A config file's content and its ``# @package`` (None without one), read once per version
    of the file."""
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _YAML:
        import yaml
        from omegaconf._utils import get_yaml_loader  # OmegaConf's YAML rules (1e-3 is a float)

        text = path.read_text()
        package = next(
            (
                ln.split("@package", 1)[1].strip()
                for ln in text.splitlines()
                if ln.startswith("# @package")
            ),
            None,
        )
        _YAML[key] = (yaml.load(text, Loader=get_yaml_loader()) or {}, package)
    return _YAML[key]


# The composed base config of each distinct choice of config groups, pickled: unpickling a copy
# took a fifth of the time of DictConfig.copy (0.24 against 1.1 ms), once per planned variant.
_BASES: dict[tuple, bytes] = {}
_MISSING = object()
# Hydra's parse of each override line (its grammar parser took 1 ms a line; a study's variants
# repeat the same few lines hundreds of times).
_PARSED: dict[str, object] = {}


def _parse_overrides(overrides: list[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    missing = [line for line in overrides if line not in _PARSED]
    if missing:
        # All at once, so a line that does not parse raises as Hydra words it for the list.
        _PARSED.update(zip(missing, OverridesParser.create().parse_overrides(missing), strict=True))
    return [_PARSED[line] for line in overrides]


def options_of(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


# The scales of the study: one file each in conf/scale/, which holds every setting of the scale.
SCALES = tuple(options_of("scale"))


def unknown_key_message(cfg: DictConfig, key: str) -> str:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    known = list(parent.keys()) if isinstance(parent, DictConfig) else []
    close = difflib.get_close_matches(leaf, known, n=1)
    hint = (
        f"did you mean {parent_key + '.' if parent_key else ''}{close[0]}?"
        if close
        else (
            f"known keys there: {', '.join(map(str, known))}" if known else "check conf/config.yaml"
        )
    )
    return f"{key}: no such config key; {hint}"


def compose(overrides: list[str], conf_dir: Path = CONF_DIR) -> DictConfig:
    """The composed run config for ``overrides``, as ``python -m study.train`` would see it.

    Planning composes every variant of every ablation, so Hydra's full composition (about 0.1 s)
    runs once per distinct choice of config groups; value overrides are then applied to a copy
    with OmegaConf in struct mode, which refuses unknown keys just as Hydra does.
    """
    import pickle

    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    for override in overrides:
        check_override_syntax(override)
    try:
        parsed = _parse_overrides(list(overrides))
        groups = tuple(o.input_line for o in parsed if o.key_or_group in GROUPS)
        for o in parsed:
            if o.key_or_group in GROUPS:
                options = options_of(o.key_or_group, conf_dir)
                if o.value() not in options:
                    raise ConfigError(
                        f"{o.input_line}: no such {o.key_or_group} option; "
                        f"use one of {', '.join(options)}"
                    )
        key = (str(conf_dir), groups)
        if key not in _BASES:
            base = _file_compose(groups, conf_dir)
            base = base if base is not None else _hydra_compose(groups, conf_dir)
            _BASES[key] = pickle.dumps(base)
        cfg = pickle.loads(_BASES[key])
        for o in parsed:
            if o.key_or_group in GROUPS:
                continue
            if o.key_or_group.split(".")[0] == "hydra":
                raise ConfigError(f"override {o.input_line!r} changes Hydra itself; remove it")
            if OmegaConf.select(cfg, o.key_or_group, default=_MISSING) is _MISSING:
                raise ConfigError(unknown_key_message(cfg, o.key_or_group))
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
        return cfg
    except OverrideParseException as err:
        bad = ", ".join(repr(o) for o in overrides)
        raise ConfigError(f"override {bad} does not parse: {str(err).splitlines()[0]}") from None
    except (HydraException, OmegaConfBaseException) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(first) from None


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


# The run's own keys; every component module checks the keys it reads (validate_components).
RULES: dict[str, Rule] = {
    "seed": int_at_least(0),
    "device": one_of("auto", "cpu", "cuda"),
    "threads": int_at_least(1),
    "train.epochs": int_at_least(1),
    "train.max_epochs": optional_int_at_least(1),
    "train.batch_size": int_at_least(2),
    "train.batches": one_of("iid", "non_iid"),
    "train.classes_per_batch": int_at_least(1),
    "train.eval_batch_size": int_at_least(1),
    "train.eval_train_max": int_at_least(1),
    "train.early_stopping": BOOLEAN,
    "train.patience": int_at_least(1),
    "train.diverge_factor": real_above(1.0),
    "train.checkpoint": BOOLEAN,
    "train.precision": one_of("fp32", "bf16"),
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first invalid key, what it must be, and the value it has."""
    from study.components import validate_components

    check_rules(cfg, RULES)
    validate_components(cfg)
    if cfg.train.batches == "non_iid" and cfg.train.batch_size % cfg.train.classes_per_batch:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} is not a multiple of "
            f"train.classes_per_batch={cfg.train.classes_per_batch}; make it one"
        )


def config_hash(cfg: DictConfig) -> str:
    """A short content hash of what determines the run's numbers (not where it writes)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("run", None)
    resolved.pop("hydra", None)
    # The scale's seed policy decides which runs exist, not what any one run computes.
    resolved.pop("plan", None)
    # A tuned run's learning rate is already in optim.lr; the selection file it came from is a
    # location, and a study moved to another results folder must keep its hashes.
    if isinstance(resolved.get("train"), dict) and resolved["train"].get("lr_from") is not None:
        resolved["train"]["lr_from"] = None
    blob = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
