"""Lazy imports of heavy optional dependencies, with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgeport.errors import MissingDependencyError

_HINTS = {
    "tensorflow": "pip install 'edgeport[train]'",
    "keras": "pip install 'edgeport[train]'",
    "tf2onnx": "pip install 'edgeport[train]'",
    "onnx": "pip install 'edgeport[train]'",
    "tensorflow_datasets": "pip install tensorflow-datasets",
    "onnxruntime": "pip install 'edgeport[onnx]' (on a Jetson: NVIDIA's onnxruntime-gpu wheel)",
    "matplotlib": "pip install matplotlib",
    "yaml": "pip install pyyaml",
    "picamera2": "sudo apt install python3-picamera2 (Raspberry Pi OS)",
}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise MissingDependencyError with an install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # includes sys.modules[name] = None
        top = module.split(".")[0]
        hint = _HINTS.get(top, f"pip install {top}")
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"expected the '{top}' package{what}, but it could not be imported ({exc}); "
            f"install it with: {hint}"
        ) from exc


def available(module: str) -> bool:
    """True when ``module`` imports cleanly (never raises)."""
    try:
        importlib.import_module(module)
        return True
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
