"""One generic registry of named things: the harness's models, runtimes and size encodings.

An entry is registered where it is defined (`@MODELS.register("lenet5")`), or declared as
"module:attr" beside the registry and imported the first time it is asked for
(`ENCODINGS.lazy("lowbit", "bench.lowbit:packed_bytes")`), as lm-evaluation-harness's
api/registry.py does: what a registry holds is then written in one place and never depends on
what a process happened to import before. A name is registered once; an unknown name is refused
with the closest registered ones. Method plugins have their own registry (bench.registry), which
adds discovery, import failures kept as failed rows, and the rule for a plugin replacing a
built-in method.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from bench.bounds import brief

T = TypeVar("T")


class UnknownName(KeyError):
    """A name no entry of a registry has."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class _Lazy:
    target: str  # "module:attr"


def resolve(target: str) -> Any:
    """The attribute a "module:attr" string names, its module imported."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry(Generic[T]):
    """Names to entries of one kind, in the order they were registered."""

    def __init__(self, kind: str, entries: Iterable[tuple[str, T]] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T | _Lazy] = {}
        for name, entry in entries:
            self._add(name, entry)

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers what it decorates under `name`, and returns it unchanged."""

        def add(entry: T) -> T:
            self._add(name, entry)
            return entry

        return add

    def lazy(self, name: str, target: str) -> None:
        """Register `name` as the attribute "module:attr", imported when first asked for."""
        module, sep, attr = target.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"{self.kind} '{name}': expected 'module:attr', got {target!r}")
        self._add(name, _Lazy(target))

    def _add(self, name: str, entry: T | _Lazy) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.75)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UnknownName(f"unknown {self.kind} {brief(name)}; {hint}registered: {', '.join(self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, _Lazy):
            entry = self._entries[name] = resolve(entry.target)
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """Every entry, imported where it is lazy, in registration order."""
        return [(name, self[name]) for name in self]
