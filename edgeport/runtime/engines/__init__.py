"""Inference engines behind one small interface, chosen by name or by file type.

Each engine is one module of this package that registers an :class:`Engine` subclass in
:data:`ENGINES` and describes itself there (file types, install hint, doctor's probe, preference
order); every module here is imported when the package is, so adding an engine is adding its module
(and its pyproject extra). Nothing imports an engine package at import time; TensorFlow is imported
only inside the ``tensorflow`` engine, used only when named.
"""

from __future__ import annotations

from edgeport.registry import import_entries
from edgeport.runtime.engines.base import (
    ENGINES,
    Engine,
    TensorInfo,
    auto_order,
    available_engines,
    by_preference,
    create_engine,
    engines_for,
    install_hint,
    installed,
    model_suffixes,
)

import_entries(__name__, __path__)

__all__ = ["ENGINES", "Engine", "TensorInfo", "auto_order", "available_engines", "by_preference", "create_engine",
           "engines_for", "install_hint", "installed", "model_suffixes"]
