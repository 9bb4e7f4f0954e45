"""Reading the study's YAML input files: safe loading that refuses duplicate keys, and one-line
errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path

import yaml


class YamlFileError(ValueError):
    """A YAML file that cannot be read or parsed; the message names the file."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loading that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise YamlFileError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path):
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise YamlFileError(f"{path}: cannot read ({err.strerror})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except YamlFileError as err:
        raise YamlFileError(f"{path}: {err}; keep one") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise YamlFileError(f"{path}: YAML does not parse{where}: {problem}") from None
