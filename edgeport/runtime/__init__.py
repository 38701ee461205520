"""The TensorFlow-free device runtime: engines, Classifier, camera loop, doctor.

Names are loaded lazily so ``import edgeport.runtime`` (and the CLI) stays light::

    from edgeport.runtime import Classifier, create_engine, available_engines
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ENGINES": "engines",
    "Engine": "engines",
    "TensorInfo": "engines",
    "create_engine": "engines",
    "available_engines": "engines",
    "engines_for": "engines",
    "Classifier": "classifier",
    "select_artifact": "classifier",
    "list_artifacts": "classifier",
    "SOURCES": "sources",
    "Source": "sources",
    "Frame": "sources",
    "open_source": "sources",
    "LoopConfig": "loop",
    "run_loop": "loop",
    "summarize": "stats",
    "draw_overlay": "overlay",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'edgeport.runtime' has no attribute '{name}'") from None
    value = getattr(importlib.import_module(f"edgeport.runtime.{module}"), name)
    globals()[name] = value
    return value
