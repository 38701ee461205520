"""LiteRT (``ai-edge-litert``): Google's maintained TFLite interpreter, the first choice for .tflite."""

from __future__ import annotations

from typing import Any

from edgeport.runtime.engines._tflite import TFLiteEngine
from edgeport.runtime.engines.base import ENGINES


@ENGINES.register("litert")
class LiteRTEngine(TFLiteEngine):
    """Google's LiteRT (``ai-edge-litert``), the maintained TFLite interpreter (numpy 1 and 2)."""

    name = "litert"
    module = "ai_edge_litert"
    distributions = ("ai-edge-litert",)
    install = "pip install ai-edge-litert"
    preference = 10
    probe_module = "ai_edge_litert.interpreter"

    def _interpreter_class(self) -> Any:
        return self.import_module("ai_edge_litert.interpreter").Interpreter
