"""A small decorator registry, one per extension point (timm-style).

    BACKBONES = Registry("backbone")

    @BACKBONES.register("tiny")
    def tiny(...): ...

    BACKBONES.get("tiny")      # -> the function
    BACKBONES.names()          # -> sorted names
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from edgeport.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; unknown names list the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ConfigError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def canonical(self, name: str) -> str | None:
        """The registered spelling of ``name`` ('mobilenet-v2' finds 'mobilenet_v2'), or None."""
        if name in self._items:
            return name
        if not isinstance(name, str):
            return None
        for candidate in (name.replace("-", "_"), name.replace("_", "-"), name.lower(),
                          name.lower().replace("-", "_"), name.lower().replace("_", "-")):
            if candidate in self._items:
                return candidate
        return None

    def get(self, name: str) -> T:
        """The entry called ``name`` (either spelling of - and _); unknown names list the known ones."""
        key = self.canonical(name)
        if key is None:
            close = difflib.get_close_matches(str(name).lower().replace("-", "_"),
                                              [n.replace("-", "_") for n in self.names()], n=1, cutoff=0.6)
            hint = ""
            if close:
                hint = f"; did you mean '{self.canonical(close[0])}'?"
            raise ConfigError(f"unknown {self.kind} '{name}'; expected one of: {', '.join(self.names())}{hint}")
        return self._items[key]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def in_order(self) -> tuple[str, ...]:
        """Registered names in registration order."""
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def import_entries(package: str, path: Iterable[str], skip: tuple[str, ...] = ("base",)) -> None:
    """Import every module of a package whose modules register themselves (one module per entry), so that
    adding an entry is adding its file: ``import_entries(__name__, __path__)`` in the package's ``__init__``."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(path):
        if module.name not in skip:
            importlib.import_module(f"{package}.{module.name}")
