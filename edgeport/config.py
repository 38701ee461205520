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
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from edgeport.errors import ConfigError

C = TypeVar("C")


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A mapping from a .yaml/.yml/.json file (keys may use - or _); ConfigError for anything else."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"expected a config file, but {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"expected a UTF-8 YAML/JSON config file in {p}, could not read it ({exc})") from exc
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"expected valid JSON in {p}, received a syntax error: {exc}; fix the file") from exc
    else:
        try:
            import yaml
        except ImportError as exc:
            raise ConfigError("reading a YAML config needs pyyaml: pip install pyyaml") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"expected valid YAML in {p}, received a syntax error{at}: {problem}; fix the file") from exc
        data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of keys to values in {p}, received {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is tuple:
        plural = {str: "names", int: "integers", float: "numbers", bool: "true/false values"}
        return f"a list of {plural.get(args[0], _type_name(args[0]))}" if args else "a list"
    return {str: "text", int: "an integer", float: "a number", bool: "true or false",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


class _Mismatch(Exception):
    """Internal: a value does not fit a type hint."""


def _check(value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` names (a few lossless conversions), else _Mismatch."""
    if hint is Any or hint is None:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(value, a)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is tuple:
        item = args[0] if args else Any
        if isinstance(value, str):  # "1,2,4" or "int8,onnx", as the flags take them
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif not isinstance(value, (list, tuple)):
            value = [value]  # one value for a list of them
        if item is int:
            value = [int(v) if isinstance(v, str) and v.strip().lstrip("+-").isdigit() else v for v in value]
        return tuple(_check(v, item) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(hint, type) and not isinstance(value, hint):
        raise _Mismatch
    return value


def check_value(cls: type, key: str, value: Any, where: str = "config") -> Any:
    """``value`` as the type of field ``key`` of the dataclass ``cls`` (see :func:`from_dict`); ConfigError else."""
    hint = typing.get_type_hints(cls).get(key, Any)
    try:
        return _check(value, hint)
    except _Mismatch:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise ConfigError(
            f"expected '{key}' in {where} to be {_type_name(hint)}, received {shown} "
            f"({type(value).__name__}); fix the value"
        ) from None


def from_dict(cls: type[C], values: dict[str, Any], where: str = "config") -> C:
    """Build ``cls`` from a mapping, rejecting unknown keys and values of the wrong type.

    Every value is checked against the dataclass's type hints (ConfigError
    names the key, the type expected and the value received). Accepted
    conversions: an int for a float, a numeric string for a float (YAML reads
    ``1e-3`` as text), a comma-separated string or a single value for a tuple.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {where}; expected keys: {', '.join(sorted(fields))}"
        )
    checked = {key: check_value(cls, key, value, where) for key, value in values.items()}
    try:
        return cls(**checked)  # type: ignore[call-arg]
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"expected valid settings in {where}, received {exc}") from exc


def load_config(cls: type[C], file: str | os.PathLike[str] | None, overrides: dict[str, Any]) -> C:
    """Defaults < config file < overrides (None values in overrides are ignored)."""
    values: dict[str, Any] = read_config_file(file) if file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, values, str(file) if file else "flags")


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-ready dict of a config dataclass."""
    d = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def make_config(cls: type[C], given: Any, first: str, options: dict[str, Any]) -> C:
    """A stage function's config: ``given`` when it is a ``cls`` already (``options`` replace fields), else
    ``cls(first=given, **options)``, checked like a config file (unknown keys, types)."""
    if isinstance(given, cls):
        return dataclasses.replace(given, **options) if options else given  # type: ignore[type-var]
    values = dict(options)
    if given is not None:
        values[first] = os.fspath(given) if isinstance(given, os.PathLike) else given
    return from_dict(cls, values, "arguments")
