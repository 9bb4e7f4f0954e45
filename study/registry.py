"""Name → component registries: how a config string becomes a model, an optimizer, a schedule.

Every kind of component (models, norms, optimizers, schedules, regularizers, augmentations,
corruptions, datasets, figures) keeps one :class:`Registry`. A component module registers its
entries where it defines them, so adding one is one module (plus its YAML file in ``conf/``), and
no other module ever branches on a component's name: the training loop asks the entry what it
needs (an optimizer's ``needs_closure``, a model's ``channels_last``) instead.

The lookup error is the one line a user sees for a typo, so it lists the valid names.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from study.errors import ConfigError

T = TypeVar("T")


class UnknownName(ConfigError):
    """A config names a component that no module registered."""


class Registry(Generic[T]):
    """A mapping from config names to entries of one kind of component.

    ``kind`` is the component in the study's words ("optimizer"); ``key`` is the config key that
    names it ("optim.name"), so the error for an unknown name can say what to change. ``spec`` is
    the entry type that :meth:`builder` wraps a decorated function in.
    """

    def __init__(self, kind: str, key: str, spec: Callable[..., T] | None = None):
        self.kind, self.key, self.spec = kind, key, spec
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; registering a name twice is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def builder(self, name: str, **fields: Any) -> Callable[[Callable], Callable]:
        """Decorator: register ``spec(build=function, **fields)`` under ``name``."""
        if self.spec is None:
            raise TypeError(f"the {self.kind} registry has no spec type; use register()")

        def decorate(function: Callable) -> Callable:
            self.register(name, self.spec(build=function, **fields))
            return function

        return decorate

    def get(self, name: Any) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(
                f"{self.key}={name!r} is an unknown {self.kind}; "
                f"use one of {', '.join(self.names())}"
            ) from None

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def import_component_modules(package: str, path: list[str], skip: str = "base") -> tuple[str, ...]:
    """Import every module of a component package but ``skip`` (the one that defines the entry
    type), so that each registers its entries; returns their names, sorted.

    This is what makes adding a component one module: the package never lists its members.
    """
    names = tuple(sorted(m.name for m in pkgutil.iter_modules(path) if m.name != skip))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
