"""The study's input files checked against their JSON Schemas (``schemas/*.schema.yaml``).

A schema says what a file may contain; this module turns the first violation into one line that
names the file, the key and the fix. Each schema node may carry an ``x-fix`` phrase ("must be a
list of Hydra overrides such as [model.dropout=0.5]") that becomes the end of that line; without
one the line falls back on jsonschema's own wording. What a schema cannot say (a baseline that is
a variant, overrides that compose with Hydra, unique claim ids) stays with the file's loader.
"""

from __future__ import annotations

import difflib
import functools
import math
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from study.errors import ConfigError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# YAML reads 3.0 as a float and .inf/.nan as numbers; JSON Schema would accept 3.0 as an integer
# and infinities as numbers. Neither is ever meant in these files, so both are refused.
_TYPES = Draft202012Validator.TYPE_CHECKER.redefine_many(
    {
        "integer": lambda _, v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda _, v: (
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ),
    }
)
StrictValidator = validators.extend(Draft202012Validator, type_checker=_TYPES)


class DocumentError(ConfigError):
    """A file that breaks its schema; the message is one line: file, key, fix."""


@functools.cache
def validator(schema_name: str) -> Draft202012Validator:
    """The compiled validator of ``schemas/<schema_name>.schema.yaml``, built once per process
    (planning validates every ablation file at each ``snakemake -n``)."""
    schema = yaml.safe_load((SCHEMA_DIR / f"{schema_name}.schema.yaml").read_text())
    return StrictValidator(schema)


def first_error(data, schema_name: str) -> ValidationError | None:
    return next(iter(validator(schema_name).iter_errors(data)), None)


def key_path(path) -> str:
    """``variants.drop``, ``tune.factors[1]``: the key as a reader finds it in the file."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _subject(error: ValidationError, path) -> str:
    """The key at fault and, for a plain value, the value: ``seeds='three'``."""
    key = key_path(path)
    if isinstance(error.instance, dict | list) or not key:
        return key
    return f"{key}={error.instance!r}"


def _unknown_keys(error: ValidationError) -> str:
    known = list(error.schema.get("properties", {}))
    extra = [k for k in error.instance if k not in known]
    key = extra[0]
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r}{hint} (known: {', '.join(map(str, known))})"


def _missing_keys(error: ValidationError) -> str:
    missing = [k for k in error.validator_value if k not in error.instance]
    if len(missing) > 1:
        return "missing keys " + ", ".join(repr(k) for k in missing) + "; add them"
    about = error.schema.get("properties", {}).get(missing[0], {}).get("description")
    return f"missing key {missing[0]!r}" + (f" ({about.strip()})" if about else "") + "; add it"


def describe(error: ValidationError, path=None) -> str:
    """One line for ``error``, relative to ``path`` (default: its full key path)."""
    path = list(error.absolute_path if path is None else path)
    prefix = f"{key_path(path)}: " if path else ""
    if error.validator == "additionalProperties":
        return prefix + _unknown_keys(error)
    if error.validator == "required":
        return prefix + _missing_keys(error)
    if "propertyNames" in error.schema_path:
        # The offending key is the instance; the path stops at the mapping that holds it.
        return f"{prefix}name {error.instance!r} {error.schema.get('x-fix', error.message)}"
    fix = error.schema.get("x-fix")
    if fix is None:
        return f"{prefix}{error.message}"
    subject = _subject(error, path)
    return f"{subject} {fix}" if subject else fix


def _where(data, path: list, document: str) -> tuple[str, list]:
    """The part of the file at fault (a variant, a claim) and the key path inside it."""
    if document == "ablation" and len(path) >= 2 and path[0] == "variants":
        return f" (variant {path[1]!r})", path
    if document == "claims" and len(path) >= 2 and path[0] == "claims":
        claim = data["claims"][path[1]]
        cid = claim.get("id") if isinstance(claim, dict) else None
        if isinstance(cid, str) and path[2:] != ["id"]:
            return f": claim {cid}", path[2:]
        return f": claim #{path[1] + 1}", path[2:]
    return "", path


def validate_document(data, schema_name: str, path) -> None:
    """Raise DocumentError (one line naming ``path``, the key and the fix) if ``data`` breaks
    ``schemas/<schema_name>.schema.yaml``."""
    error = first_error(data, schema_name)
    if error is None:
        return
    where, inner = _where(data, list(error.absolute_path), schema_name)
    raise DocumentError(f"{path}{where}: {describe(error, inner)}")


def config_error(err: Exception) -> str:
    """One line for a workflow config that ``snakemake.utils.validate`` refused (it wraps the
    jsonschema error in a WorkflowError of several lines)."""
    cause = err.__context__
    if not isinstance(cause, ValidationError):
        return str(err).splitlines()[0]
    return (
        f"config {describe(cause)} (set in conf/workflow.yaml or with --config; "
        "see schemas/workflow.schema.yaml)"
    )
