"""One converter per scheme of the catalogue (:mod:`edgeport.schemes`): how each file is made.

    graph = CONVERTERS.get("int8")(ctx, path)   # writes the artifact; its graph summary (or None)

Each entry writes one artifact at ``path`` from a
:class:`~edgeport.export.context.ConversionContext`, which builds the shared
intermediates (the SavedModel, the calibrated float model, the float32 ONNX
graph, the int8 candidates) once, on first use. What a scheme *is* (file,
format, precision, I/O, whether it is searchable) lives in the catalogue; a
plain TFLite scheme is a catalogue entry plus one :class:`TFLiteConvert` line
here with its converter settings as data.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from edgeport.registry import Registry
from edgeport.schemes import Precision, get_scheme

if TYPE_CHECKING:
    from edgeport.export.context import ConversionContext
    from edgeport.export.tflite import TFLiteSettings

#: ``converter(ctx, path)`` writes the artifact and returns its graph summary, or None for the format's own
Converter = Callable[["ConversionContext", Path], "dict | None"]


@dataclass(frozen=True)
class TFLiteConvert:
    """The SavedModel through ``TFLiteConverter`` with ``settings`` (a preset of
    :data:`edgeport.export.tflite.PRESETS` when None: the scheme's precision's)."""

    scheme: str
    settings: "TFLiteSettings | None" = None

    def __call__(self, ctx: "ConversionContext", path: Path) -> dict:
        from edgeport.export.tflite import PRESETS, convert_saved_model, graph_summary

        settings = self.settings or PRESETS[Precision(get_scheme(self.scheme).precision)]
        data = convert_saved_model(ctx.saved_model(), settings, progress=ctx.progress)
        path.write_bytes(data)
        return graph_summary(data)


@dataclass(frozen=True)
class TFLiteInt8:
    """Full-integer int8 from the context's one calibration, on the scheme's first activation-range rule
    (the budget search may try the others)."""

    scheme: str

    def __call__(self, ctx: "ConversionContext", path: Path) -> dict:
        from edgeport.export.tflite import check_integer

        spec = get_scheme(self.scheme)
        data = ctx.candidates(spec).quantize(())
        summary = check_integer(data, spec)
        path.write_bytes(data)
        return summary


@dataclass(frozen=True)
class TFLiteInt16x8:
    """int16 activations, int8 weights, from the context's one calibration (ops without a 16x8 kernel float)."""

    scheme: str

    def __call__(self, ctx: "ConversionContext", path: Path) -> dict:
        from edgeport.export.tflite import check_integer, quantize_calibrated

        spec = get_scheme(self.scheme)
        data = quantize_calibrated(ctx.calibrated_tflite(), spec.precision, ctx.io_dtype)
        summary = check_integer(data, spec)
        path.write_bytes(data)
        return summary


@dataclass(frozen=True)
class OnnxFloat32:
    """The float32 ONNX graph (tf2onnx), as converted once for every ONNX scheme."""

    scheme: str

    def __call__(self, ctx: "ConversionContext", path: Path) -> None:
        shutil.copyfile(ctx.onnx_base(), path)


@dataclass(frozen=True)
class OnnxFloat16:
    """The float32 ONNX graph with float16 internals and float32 I/O."""

    scheme: str

    def __call__(self, ctx: "ConversionContext", path: Path) -> None:
        from edgeport.export.onnx import convert_float16

        convert_float16(ctx.onnx_base(), path)


@dataclass(frozen=True)
class OnnxInt8:
    """Static QDQ int8 by onnxruntime's quantizer; its calibrated ranges serve the budget search too."""

    scheme: str

    def __call__(self, ctx: "ConversionContext", path: Path) -> None:
        ctx.candidates(get_scheme(self.scheme)).write((), path)


#: scheme name -> converter(ctx, path); every catalogue scheme has one (tested)
CONVERTERS: Registry[Converter] = Registry("converter")
for _entry in (
    TFLiteConvert("fp32"), TFLiteConvert("fp16"), TFLiteConvert("dynamic"), TFLiteInt8("int8"),
    TFLiteInt16x8("int16x8"), OnnxFloat32("onnx"), OnnxFloat16("onnx-fp16"), OnnxInt8("onnx-int8"),
):
    CONVERTERS.register(_entry.scheme)(_entry)
