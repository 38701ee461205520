"""``tf.lite.Interpreter`` from full TensorFlow: only when a user names it (never a fallback on a device)."""

from __future__ import annotations

from typing import Any

from edgeport.runtime.engines._tflite import TFLiteEngine
from edgeport.runtime.engines.base import ENGINES


@ENGINES.register("tensorflow")
class TensorFlowEngine(TFLiteEngine):
    """``tf.lite.Interpreter`` from full TensorFlow: only when asked for by name."""

    name = "tensorflow"
    module = "tensorflow"
    distributions = ("tensorflow", "tensorflow-cpu", "tf-nightly")
    install = "pip install tensorflow"
    note = "used only with --engine tensorflow"

    def _interpreter_class(self) -> Any:
        return self.import_module("tensorflow").lite.Interpreter
