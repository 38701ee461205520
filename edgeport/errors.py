"""Errors edgeport raises on bad input.

Every message says what was expected, what was received and how to fix it.
The CLI prints these as one clean line (no traceback) and exits non-zero.
"""

from __future__ import annotations


class EdgeportError(Exception):
    """Base class of the errors a user can fix (bad data, config, files)."""


class DataError(EdgeportError):
    """The data set is missing, malformed, empty or has an unusable layout."""


class ConfigError(EdgeportError, ValueError):
    """A config value or a flag is out of range or inconsistent."""


class ModelError(EdgeportError):
    """A model or artifact cannot be built, loaded or run as asked."""


class MissingDependencyError(EdgeportError, ImportError):
    """An optional dependency (TensorFlow, an engine, ...) is not installed."""


class SourceError(EdgeportError):
    """A camera/video/image source cannot be opened or has died."""


def short_message(exc: BaseException, limit: int = 600) -> str:
    """'ValueError: first words...': an exception's type and message on one line, cut at ``limit`` characters
    (converter errors repeat MLIR location dumps; the head names the problem)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"
