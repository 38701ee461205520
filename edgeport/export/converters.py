"""One converter per scheme of the catalogue (:mod:`edgeport.schemes`): name -> how to make the file.

    CONVERTERS.get("int8")(ctx, path)

Each converter writes one artifact at ``path`` from a
:class:`ConversionContext`, which builds the shared intermediates (the
SavedModel, the calibrated float model, the float32 ONNX graph) once, on
first use. What a scheme *is* (file, format, precision) lives in the
catalogue; adding a scheme is a catalogue entry plus a converter here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgeport.registry import Registry


@dataclass
class ConversionContext:
    """What converters share: the Keras model, calibration images, a scratch folder."""

    model: object
    workdir: Path
    calibration: np.ndarray | None
    io_dtype: str = "uint8"
    opset: int = 17
    progress: bool = True
    calibration_method: str = "auto"  #: int8/onnx-int8 activation ranges (``--calibration-method``)
    shared_seconds: dict[str, float] = field(default_factory=dict)
    graphs: dict[str, dict] = field(default_factory=dict)
    _saved_model: Path | None = None
    _onnx_base: Path | None = None
    _calibrated: bytes | BaseException | None = None
    _candidates: dict = field(default_factory=dict)

    def saved_model(self) -> Path:
        """The model as a SavedModel (exported on first call)."""
        if self._saved_model is None:
            from edgeport.export.tflite import export_saved_model

            t0 = time.perf_counter()
            self._saved_model = export_saved_model(self.model, self.workdir / "saved_model")
            self.shared_seconds["saved_model"] = time.perf_counter() - t0
        return self._saved_model

    def calibrated_tflite(self) -> bytes:
        """The float .tflite with calibration min/max, shared by int8 and int16x8 (made on first call).

        A failure is remembered, so the second integer scheme fails at once
        with the same reason instead of calibrating again.
        """
        if self._calibrated is None:
            from edgeport.export.tflite import calibrate

            t0 = time.perf_counter()
            try:
                self._calibrated = calibrate(self.saved_model(), self.calibration, self.progress)
            except Exception as exc:  # noqa: BLE001 - re-raised now and for the next scheme
                self._calibrated = exc
            self.shared_seconds["tflite_calibration"] = time.perf_counter() - t0
        if isinstance(self._calibrated, BaseException):
            raise self._calibrated
        return self._calibrated

    def layer_names(self) -> list[str]:
        """Every Keras layer name of the model (nested ones too): what converter op names are mapped back to."""
        from edgeport.export.fallback import keras_layer_names

        return keras_layer_names(self.model)

    def tflite_candidates(self):
        """int8 TFLite models with any ops kept float, from the one calibration (made on first call)."""
        if "int8" not in self._candidates:
            from edgeport.export.fallback import TFLiteCandidates

            cands = TFLiteCandidates(self.calibrated_tflite(), self.io_dtype, self.layer_names(),
                                     images=self.calibration, progress=self.progress)
            cands.use(self.range_rules("int8")[0])
            self._candidates["int8"] = cands
        return self._candidates["int8"]

    def onnx_candidates(self):
        """QDQ int8 ONNX models with any nodes kept float; calibrates once on first use."""
        if "onnx-int8" not in self._candidates:
            from edgeport.export.fallback import OnnxCandidates

            t0 = time.perf_counter()
            self._candidates["onnx-int8"] = OnnxCandidates(
                self.onnx_base(), self.calibration, self.workdir / "onnx-int8", self.range_rules("onnx-int8")[0],
                self.layer_names(), progress=self.progress)
            self.shared_seconds["onnx_preprocess"] = time.perf_counter() - t0
        return self._candidates["onnx-int8"]

    def range_rules(self, scheme: str) -> tuple[str, ...]:
        """The activation-range rules ``scheme`` may use (the first is its full-integer model's)."""
        from edgeport.export.config import range_rules

        return range_rules(scheme, self.calibration_method)

    def onnx_base(self) -> Path:
        """The float32 ONNX model without metadata (converted on first call)."""
        if self._onnx_base is None:
            from edgeport.export.onnx import export_float32

            t0 = time.perf_counter()
            self._onnx_base = export_float32(self.model, self.workdir / "base.onnx", self.opset)
            self.shared_seconds["onnx_base"] = time.perf_counter() - t0
        return self._onnx_base


Converter = Callable[[ConversionContext, Path], None]


def _tflite(name: str) -> Converter:
    def convert(ctx: ConversionContext, path: Path) -> None:
        from edgeport.export.tflite import check_integer, convert_saved_model, graph_summary, quantize_calibrated

        if name == "int8":  # on the first range rule; the float-fallback search may try the others
            data = ctx.tflite_candidates().quantize(())
            ctx.graphs[name] = check_integer(data, name)
        elif name == "int16x8":
            data = quantize_calibrated(ctx.calibrated_tflite(), name, ctx.io_dtype)
            ctx.graphs[name] = check_integer(data, name)
        else:
            data = convert_saved_model(ctx.saved_model(), name, progress=ctx.progress)
            ctx.graphs[name] = graph_summary(data)
        path.write_bytes(data)

    return convert


def _onnx_fp32(ctx: ConversionContext, path: Path) -> None:
    import shutil

    shutil.copyfile(ctx.onnx_base(), path)


def _onnx_fp16(ctx: ConversionContext, path: Path) -> None:
    from edgeport.export.onnx import convert_float16

    convert_float16(ctx.onnx_base(), path)


def _onnx_int8(ctx: ConversionContext, path: Path) -> None:
    ctx.onnx_candidates().write((), path)  # full int8; its calibrated ranges serve the float-fallback search too


#: scheme name -> converter(ctx, path); every catalogue scheme has one (tested)
CONVERTERS: Registry[Converter] = Registry("converter")
for _name, _convert in {
    "fp32": _tflite("fp32"), "fp16": _tflite("fp16"), "dynamic": _tflite("dynamic"), "int8": _tflite("int8"),
    "int16x8": _tflite("int16x8"), "onnx": _onnx_fp32, "onnx-fp16": _onnx_fp16, "onnx-int8": _onnx_int8,
}.items():
    CONVERTERS.register(_name)(_convert)
