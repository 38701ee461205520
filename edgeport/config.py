"""Frozen config dataclasses from a YAML/JSON file plus command-line flags.

Each stage has one frozen dataclass (``BuildConfig``, ``ExportConfig``, ...).
:func:`load_config` merges, in order: the dataclass defaults, a config file,
then the flags a user actually typed. Unknown keys are an error that lists
the known ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

from edgeport.errors import ConfigError

C = TypeVar("C")


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A mapping from a .yaml/.yml/.json file (keys may use - or _)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"expected a config file, but {p} does not exist")
    text = p.read_text()
    if p.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        try:
            import yaml
        except ImportError as exc:
            raise ConfigError("reading a YAML config needs pyyaml: pip install pyyaml") from exc
        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of keys to values in {p}, received {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _coerce(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, list):
        return tuple(value)
    return value


def from_dict(cls: type[C], values: dict[str, Any], where: str = "config") -> C:
    """Build ``cls`` from a mapping, rejecting unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {where}; expected keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(v, hints.get(k)) for k, v in values.items()})  # type: ignore[call-arg]


def load_config(cls: type[C], file: str | os.PathLike[str] | None, overrides: dict[str, Any]) -> C:
    """Defaults < config file < overrides (None values in overrides are ignored)."""
    values: dict[str, Any] = read_config_file(file) if file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, values, str(file) if file else "flags")


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-ready dict of a config dataclass."""
    d = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
