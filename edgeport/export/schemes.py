"""The export schemes, as a registry: name -> file, format and converter.

    SCHEMES.get("int8").convert(ctx, path)

Each converter writes one artifact at ``path`` from a
:class:`ConversionContext`, which builds the shared intermediates (the
SavedModel, the float32 ONNX graph) once, on first use.
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
    shared_seconds: dict[str, float] = field(default_factory=dict)
    graphs: dict[str, dict] = field(default_factory=dict)
    _saved_model: Path | None = None
    _onnx_base: Path | None = None
    _calibrated: bytes | BaseException | None = None

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

    def onnx_base(self) -> Path:
        """The float32 ONNX model without metadata (converted on first call)."""
        if self._onnx_base is None:
            from edgeport.export.onnx import export_float32

            t0 = time.perf_counter()
            self._onnx_base = export_float32(self.model, self.workdir / "base.onnx", self.opset)
            self.shared_seconds["onnx_base"] = time.perf_counter() - t0
        return self._onnx_base


@dataclass(frozen=True)
class Scheme:
    """One export target; ``reference`` ones must match Keras to the tolerance."""

    name: str
    file: str
    format: str
    description: str
    convert: Callable[[ConversionContext, Path], None]
    calibrated: bool = False
    reference: bool = False


SCHEMES: Registry[Scheme] = Registry("export scheme")


def _register(scheme: Scheme) -> Scheme:
    return SCHEMES.register(scheme.name)(scheme)


def _tflite(name: str) -> Callable[[ConversionContext, Path], None]:
    def convert(ctx: ConversionContext, path: Path) -> None:
        from edgeport.export.tflite import check_integer, convert_saved_model, graph_summary, quantize_calibrated

        if name in ("int8", "int16x8"):
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
    from edgeport.export.onnx import quantize_int8

    quantize_int8(ctx.onnx_base(), path, ctx.calibration, ctx.progress)  # type: ignore[arg-type]


_register(Scheme("fp32", "model_fp32.tflite", "tflite", "float32 reference", _tflite("fp32"), reference=True))
_register(Scheme("fp16", "model_fp16.tflite", "tflite", "float16 weights, float32 compute/I/O", _tflite("fp16")))
_register(Scheme("dynamic", "model_dynamic.tflite", "tflite",
                 "dynamic range: int8 weights, float activations and I/O", _tflite("dynamic")))
_register(Scheme("int8", "model_int8.tflite", "tflite",
                 "full integer int8 (calibrated), integer I/O per --io-dtype", _tflite("int8"), calibrated=True))
_register(Scheme("int16x8", "model_int16x8.tflite", "tflite",
                 "int16 activations, int8 weights (calibrated), float32 I/O", _tflite("int16x8"), calibrated=True))
_register(Scheme("onnx", "model.onnx", "onnx", "float32 ONNX (tf2onnx), dynamic batch", _onnx_fp32, reference=True))
_register(Scheme("onnx-fp16", "model_fp16.onnx", "onnx", "float16 internals, float32 I/O", _onnx_fp16))
_register(Scheme("onnx-int8", "model_int8.onnx", "onnx",
                 "static QDQ int8 (calibrated, per-channel 7-bit-range weights), float32 I/O", _onnx_int8, calibrated=True))


def create_scheme(name: str) -> Scheme:
    """The registered :class:`Scheme` called ``name`` (unknown -> ConfigError)."""
    return SCHEMES.get(name)
