"""tflite-runtime: the standalone TFLite wheel of Raspberry Pi OS (numpy<2, Python<=3.11 only)."""

from __future__ import annotations

import sys
from typing import Any

from edgeport.runtime.engines._tflite import TFLiteEngine
from edgeport.runtime.engines.base import ENGINES

NUMPY_FIX = (
    "tflite-runtime wheels are built against numpy 1.x and exist only for Python<=3.11; "
    "fix: make a venv with numpy<2 (python3.11 -m venv ~/tfl && ~/tfl/bin/pip install "
    "'numpy<2' tflite-runtime opencv-python-headless && ~/tfl/bin/pip install --no-deps edgeport), "
    "or use another TFLite engine ({other}), which supports numpy 2"
)


def tflite_runtime_problem() -> str | None:
    """Why tflite-runtime cannot work in this environment, or None when it can."""
    import numpy as np

    from edgeport.runtime.engines.base import install_hint

    fix = NUMPY_FIX.format(other=install_hint(".tflite").split(" (or")[0])
    py = sys.version_info
    if int(np.__version__.split(".")[0]) >= 2:
        return f"tflite-runtime needs numpy<2, but numpy {np.__version__} is installed; {fix}"
    if (py.major, py.minor) > (3, 11):
        return f"tflite-runtime needs Python<=3.11, but this is Python {py.major}.{py.minor}; {fix}"
    return None


@ENGINES.register("tflite-runtime")
class TFLiteRuntimeEngine(TFLiteEngine):
    """The standalone ``tflite-runtime`` wheel (Raspberry Pi OS, numpy<2 only)."""

    name = "tflite-runtime"
    module = "tflite_runtime"
    install = "pip install 'numpy<2' tflite-runtime"
    preference = 20
    probe_module = "tflite_runtime.interpreter"

    @classmethod
    def problem(cls) -> str | None:
        return tflite_runtime_problem()

    def _interpreter_class(self) -> Any:
        return self.import_module("tflite_runtime.interpreter").Interpreter
