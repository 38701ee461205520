"""TFLite targets: SavedModel -> .tflite for each scheme, one shared calibration, embedded metadata.

Keras 3 models are exported once as a SavedModel (``model.export``) and
converted with ``TFLiteConverter.from_saved_model``; the edgeport
:class:`~edgeport.contract.ModelInfo` JSON is then written into the file as
a ``Model.metadata`` entry named ``edgeport``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Collection, Iterator, Sequence

import numpy as np

from edgeport._lazy import require
from edgeport.contract import METADATA_KEY
from edgeport.errors import ModelError
from edgeport.export.config import IO_DTYPES
from edgeport.progress import Progress
from edgeport.schemes import Precision, SchemeSpec, get_scheme

if TYPE_CHECKING:
    from edgeport.export.int8.ranges import Histogram

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TFLiteSettings:
    """How ``TFLiteConverter`` makes one kind of model: its settings as data (:func:`convert_saved_model`)."""

    optimize: bool = False  #: ``tf.lite.Optimize.DEFAULT`` (quantize what the rest allows)
    supported_types: tuple[str, ...] = ()  #: e.g. ``("float16",)``: float16 weights
    #: ``float``; ``int8`` (full integer, builtin int8 ops only, integer I/O per ``io_dtype``) or ``int16``
    #: (16-bit activations, float builtins beside them): both calibrated on representative images
    activations: str = "float"
    #: Dense weights quantized per channel. Per-channel hybrid FULLY_CONNECTED is op version 12, which
    #: tflite-runtime 2.14 (the newest Raspberry Pi wheel) cannot register; per-tensor keeps version 9.
    per_channel_dense: bool = True

    @property
    def calibrated(self) -> bool:
        return self.activations != "float"


#: the converter's settings for each TFLite precision
PRESETS: dict[Precision, TFLiteSettings] = {
    Precision.FP32: TFLiteSettings(),
    Precision.FP16: TFLiteSettings(optimize=True, supported_types=("float16",)),
    Precision.DYNAMIC: TFLiteSettings(optimize=True, per_channel_dense=False),
    Precision.INT8: TFLiteSettings(optimize=True, activations="int8"),
    Precision.INT16X8: TFLiteSettings(optimize=True, activations="int16"),
}


class UnsupportedOpsError(ModelError):
    """A scheme cannot represent some ops of this model and has no float fallback (e.g. full-integer int8)."""

    def __init__(self, scheme: str, ops: list[str]) -> None:
        self.scheme, self.ops = scheme, list(ops)
        super().__init__(
            f"{scheme} is not supported for this model: {', '.join(self.ops)} has no {scheme} kernel in TFLite "
            f"and a full-integer model cannot keep it float; use int16x8 (which keeps such ops float), "
            f"dynamic or fp16 for this model, or replace that layer"
        )


def export_saved_model(model, path: str | Path) -> Path:
    """Write ``model`` (a Keras 3 model) as a SavedModel with a float32 NHWC signature."""
    tf = require("tensorflow", "exporting a SavedModel")
    shape = (None,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    spec = tf.TensorSpec(shape, tf.float32, name="image")
    from edgeport.export.onnx import quiet_loggers

    with quiet_loggers("tensorflow", "absl"):
        model.export(str(path), format="tf_saved_model", verbose=False, input_signature=[spec])
    return Path(path)


def representative_dataset(images: np.ndarray, desc: str, progress: bool = True) -> Callable[[], Iterator[list]]:
    """A TFLite representative-dataset callable over raw 0..255 RGB images.

    The first image's first two pixels are set to 0 and 255 so that the
    calibrated input range is exactly the contract's [0, 255]: a uint8 input
    then has scale 1 and zero point 0, and camera pixels go in unchanged.
    """

    def gen() -> Iterator[list]:
        with Progress(len(images), desc, enabled=progress) as bar:
            for i, img in enumerate(images):
                x = img.astype(np.float32)[None]
                if i == 0 and x.shape[2] >= 2:
                    x[0, 0, 0, :] = 0.0
                    x[0, 0, 1, :] = 255.0
                yield [x]
                bar.update()

    return gen


def convert_saved_model(
    saved_model: str | Path,
    settings: TFLiteSettings | str,
    calibration: np.ndarray | None = None,
    io_dtype: str = "uint8",
    progress: bool = True,
) -> bytes:
    """Convert a SavedModel to TFLite flatbuffer bytes with ``settings`` (or a precision's :data:`PRESETS`:
    fp32, fp16, dynamic, int8 with ``io_dtype`` input/output, int16x8 with float I/O).

    The export calibrates int8 and int16x8 once instead (:func:`calibrate`,
    :func:`quantize_calibrated`); the one-converter-run-per-scheme path here is
    the reference that shortcut is tested against.
    """
    tf = require("tensorflow", "TFLite conversion")
    if isinstance(settings, str):
        if settings not in {p.value for p in PRESETS}:
            raise ModelError(f"expected a TFLite precision, one of {', '.join(p.value for p in PRESETS)}, "
                             f"received '{settings}'")
        settings = PRESETS[Precision(settings)]
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if settings.optimize:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if settings.supported_types:
        conv.target_spec.supported_types = [getattr(tf, t) for t in settings.supported_types]
    if not settings.per_channel_dense:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True  # noqa: SLF001 - see TFLiteSettings
    if settings.calibrated:
        if calibration is None or len(calibration) == 0:
            raise ModelError(f"expected calibration images for {settings.activations} activations, received none")
        conv.representative_dataset = representative_dataset(calibration, f"{settings.activations} calibration",
                                                              progress)
    if settings.activations == "int8":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = _io_type(tf, io_dtype)
    elif settings.activations == "int16":
        # the builtin float kernels beside the 16x8 set: an op without a 16x8 kernel (MobileNetV3's
        # HARD_SWISH) stays float instead of failing the conversion
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                                          tf.lite.OpsSet.TFLITE_BUILTINS]
        # int16 activations always go through the older calibrate-and-quantize path; with the
        # MLIR quantizer on, TF first runs a calibration pass whose result it then discards.
        conv.experimental_new_quantizer = False
    return bytes(conv.convert())


def _io_type(tf, io_dtype: str):
    """The TF dtype of an int8 model's input/output for ``--io-dtype``."""
    if io_dtype not in IO_DTYPES:
        raise ModelError(f"expected --io-dtype one of {', '.join(IO_DTYPES)}, received '{io_dtype}'")
    return getattr(tf, io_dtype)


def calibrate(saved_model: str | Path, calibration: np.ndarray, progress: bool = True) -> bytes:
    """A float .tflite holding every tensor's min/max over ``calibration`` (one pass for int8 and int16x8).

    This is the converter's own calibration step run alone (as TF's
    QuantizationDebugger does); :func:`quantize_calibrated` then turns the
    result into each integer scheme without running the images again, which
    halves the calibration time of exporting both.
    """
    tf = require("tensorflow", "TFLite calibration")
    if calibration is None or len(calibration) == 0:
        raise ModelError("expected calibration images for the int8/int16x8 schemes, received none")
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset(calibration, "TFLite calibration (int8, int16x8)", progress)
    conv._experimental_calibrate_only = True  # noqa: SLF001 - the documented debugger path
    return bytes(conv.convert())


def quantize_calibrated(calibrated: bytes, precision: str, io_dtype: str = "uint8",
                        float_nodes: Sequence[str] = ()) -> bytes:
    """The int8 or int16x8 model (``precision``) from a :func:`calibrate` result, as the converter would
    write it.

    int8 goes through the MLIR quantizer with ``io_dtype`` input/output; int16x8
    through the older quantizer (the only one TF uses for 16-bit activations)
    on the min/max already in the model, with ``allow_float`` so that an op
    without a 16x8 kernel stays float (as the converter does when
    ``TFLITE_BUILTINS`` is allowed beside the 16x8 op set). Both give the same
    tensors as a full ``TFLiteConverter`` run with the same images (tested),
    except that int16x8 first widens activation ranges below
    :data:`INT16_MIN_RANGE` (:func:`widen_tiny_ranges`), with which the
    converter's own model would not load.

    ``float_nodes`` (int8 only): ops to keep in float, named by their output
    tensor in ``calibrated`` (``denylisted_nodes``); each runs on float
    kernels between a DEQUANTIZE and a QUANTIZE, everything else stays int8.
    """
    tf = require("tensorflow", "TFLite quantization")
    if precision == Precision.INT8:
        from tensorflow.lite.python import convert as tf_convert

        io = _io_type(tf, io_dtype)
        return bytes(tf_convert.mlir_quantize(calibrated, input_data_type=io, output_data_type=io,
                                              denylisted_nodes=list(float_nodes) or None))
    if float_nodes:
        raise ModelError(f"expected float_nodes only for int8, received {len(float_nodes)} for '{precision}'")
    if precision == Precision.INT16X8:
        from tensorflow.lite.python import conversion_metadata_schema_py_generated as conversion
        from tensorflow.lite.python.optimize import calibrator

        f32, i16, i64 = (np.dtype(t).num for t in (np.float32, np.int16, np.int64))
        calibrated, widened = widen_tiny_ranges(calibrated, INT16_MIN_RANGE)
        if widened:
            log.info("int16x8: %d activation range(s) below %g widened to it (a RELU6 output scale that small "
                     "overflows LiteRT's int32 bound): %s", len(widened), INT16_MIN_RANGE, ", ".join(widened[:5]))
        # (input_type, output_type, allow_float, activations_type, bias_type, disable_per_channel,
        #  disable_per_channel_for_dense)
        # the 16x8 quantizer is reachable only through the calibrator's wrapped C++ object (TF 2.21)
        model = calibrator.Calibrator(calibrated)._calibrator.QuantizeModel(  # noqa: SLF001 - see above
            f32, f32, True, i16, i64, False, False)
        return _set_optimization_mode(bytes(model), conversion.ModelOptimizationMode.PTQ_INT16)
    raise ModelError(f"expected a calibrated TFLite precision (int8, int16x8), received '{precision}'")


def _recorded_ranges(obj) -> dict[int, tuple[float, float]]:
    """Tensor index -> the calibrated (min, max) of every activation of the main subgraph (constants skipped)."""
    out = {}
    for i, t in enumerate(obj.subgraphs[0].tensors):
        q = t.quantization
        if q is None or q.min is None or q.max is None or len(q.min) != 1 or len(q.max) != 1:
            continue
        buf = obj.buffers[t.buffer] if t.buffer < len(obj.buffers) else None
        if buf is not None and buf.data is not None and len(buf.data):
            continue
        out[i] = (float(q.min[0]), float(q.max[0]))
    return out


def activation_histograms(calibrated: bytes, images: np.ndarray, progress: bool = True,
                          rows: Collection[int] = ()) -> dict[int, Histogram]:
    """One :class:`~edgeport.export.int8.ranges.Histogram` per calibrated activation of ``calibrated`` (a
    :func:`calibrate` result), over its recorded [min, max], from running ``images`` through it in float.

    The model's input keeps its recorded range (the contract's [0, 255]: scale 1 for a uint8 input), and
    the images go in as they are, without the two pixels :func:`representative_dataset` sets to 0 and
    255 for that range: in a tensor's histogram they would be outliers of their own.
    ``rows``: the tensors whose histograms also read their rows (softmax inputs: ranges.RowPeak).
    """
    tf = require("tensorflow", "TFLite calibration")
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from edgeport.export.int8.ranges import Histogram, RowPeak

    obj = fu.convert_bytearray_to_object(bytearray(calibrated))
    inputs = {int(i) for i in obj.subgraphs[0].inputs}
    hists = {i: Histogram(lo, hi, rows=RowPeak() if i in rows else None)
             for i, (lo, hi) in _recorded_ranges(obj).items() if i not in inputs}
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation and "debugging only" notes
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    with Progress(len(images), "activation histograms", enabled=progress) as bar:
        for img in images:
            interp.set_tensor(inp, img.astype(np.float32)[None])
            interp.invoke()
            for i, h in hists.items():
                h.add(interp.get_tensor(i))
            bar.update()
    return hists


def with_ranges(calibrated: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """``calibrated`` with the recorded (min, max) of the given tensors replaced (what mlir_quantize reads)."""
    require("tensorflow", "TFLite quantization")
    from tensorflow.lite.tools import flatbuffer_utils as fu

    obj = fu.convert_bytearray_to_object(bytearray(calibrated))
    tensors = obj.subgraphs[0].tensors
    for i, (lo, hi) in ranges.items():
        q = tensors[i].quantization
        q.min = np.array([lo], np.float32)
        q.max = np.array([hi], np.float32)
    return bytes(fu.convert_object_to_bytearray(obj))


#: the smallest calibrated |range| an int16 activation gets (scale = range / 32767). LiteRT computes a fused
#: RELU6's upper bound as round(6 / scale) in int32 and refuses the model ("no_integer_overflow_from_
#: quantization") when range < 6 * 32767 / 2**31 = 9.2e-5: the lower blocks of a MobileNetV2 trained from
#: scratch with --unfreeze 1 keep their random weights and initial BatchNorm statistics, whose activations
#: shrink to ~1e-5. Widened to 2e-4, such a tensor still has a step of 6e-9.
INT16_MIN_RANGE = 2e-4


def widen_tiny_ranges(calibrated: bytes, min_range: float) -> tuple[bytes, list[str]]:
    """``calibrated`` with every recorded activation range whose largest |value| is below ``min_range``
    widened to ``[min, min_range]`` (symmetric int16 quantization uses the largest |value|), and the names
    of those tensors."""
    require("tensorflow", "TFLite quantization")
    from tensorflow.lite.tools import flatbuffer_utils as fu

    obj = fu.convert_bytearray_to_object(bytearray(calibrated))
    tiny = {i: (min(lo, 0.0), min_range) for i, (lo, hi) in _recorded_ranges(obj).items()
            if max(abs(lo), abs(hi)) < min_range}
    if not tiny:
        return calibrated, []
    return with_ranges(calibrated, tiny), [_name(obj.subgraphs[0].tensors[i].name) for i in tiny]


def _set_optimization_mode(model: bytes, mode: int) -> bytes:
    """Rewrite the CONVERSION_METADATA optimization mode (the calibration pass records int8's)."""
    from tensorflow.lite.python import conversion_metadata_schema_py_generated as conversion
    from tensorflow.lite.python.util import populate_conversion_metadata
    from tensorflow.lite.tools import flatbuffer_utils as fu

    obj = fu.convert_bytearray_to_object(bytearray(model))
    entry = next((m for m in (obj.metadata or []) if _name(m.name) == "CONVERSION_METADATA"), None)
    if entry is None:
        return model
    meta = conversion.ConversionMetadataT.InitFromPackedBuf(bytes(obj.buffers[entry.buffer].data), 0)
    if meta.options is not None:
        meta.options.modelOptimizationModes = [mode]
    return bytes(fu.convert_object_to_bytearray(populate_conversion_metadata(obj, meta)))


def embed_metadata(model: bytes, value: str, name: str = METADATA_KEY) -> bytes:
    """``model`` with a ``Model.metadata`` entry ``name`` whose buffer holds ``value`` (UTF-8).

    An existing entry of that name is replaced.
    """
    require("tensorflow", "writing TFLite metadata")
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    obj = fu.convert_bytearray_to_object(bytearray(model))
    obj.metadata = [m for m in (obj.metadata or []) if _name(m.name) != name]
    buf = schema.BufferT()
    buf.data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
    obj.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(obj.buffers) - 1
    obj.metadata.append(entry)
    return bytes(fu.convert_object_to_bytearray(obj))


def graph_summary(model: bytes) -> dict:
    """Ops and tensor types of a .tflite flatbuffer (main subgraph).

    ``float_ops``: ops other than QUANTIZE/DEQUANTIZE that read or write a
    float32 tensor (an integer scheme must have none); ``weight_dtypes``:
    counts of constant tensors (with a data buffer) per type.
    """
    require("tensorflow", "reading a TFLite graph")
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    obj = fu.convert_bytearray_to_object(bytearray(model))
    g = obj.subgraphs[0]
    ops: dict[str, int] = {}
    float_ops: set[str] = set()
    for op in g.operators:
        code = obj.operatorCodes[op.opcodeIndex]
        name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        if name == "CUSTOM" and code.customCode:
            name = _name(code.customCode)
        ops[name] = ops.get(name, 0) + 1
        tensors = [g.tensors[i] for i in list(op.inputs) + list(op.outputs) if i >= 0]
        if name not in ("QUANTIZE", "DEQUANTIZE") and any(t.type == schema.TensorType.FLOAT32 for t in tensors):
            float_ops.add(name)
    weights: dict[str, int] = {}
    for t in g.tensors:
        buf = obj.buffers[t.buffer] if t.buffer < len(obj.buffers) else None
        if buf is not None and buf.data is not None and len(buf.data):
            key = type_names.get(t.type, str(t.type))
            weights[key] = weights.get(key, 0) + 1
    return {"ops": dict(sorted(ops.items())), "float_ops": sorted(float_ops), "weight_dtypes": weights}


def check_integer(model: bytes, scheme: SchemeSpec | str) -> dict:
    """:func:`graph_summary` of an integer scheme's model.

    Ops that stayed float are listed under ``float_fallback`` for a scheme
    with a float fallback (:attr:`~edgeport.schemes.SchemeSpec.float_fallback`: int16x8); for
    full-integer int8 they make the scheme unsupported for this model (:class:`UnsupportedOpsError`).
    """
    spec = get_scheme(scheme) if isinstance(scheme, str) else scheme
    summary = graph_summary(model)
    if summary["float_ops"]:
        if not spec.float_fallback:
            raise UnsupportedOpsError(spec.name, summary["float_ops"])
        summary["float_fallback"] = list(summary["float_ops"])
    return summary


def _name(raw: bytes | str | None) -> str:
    return raw.decode() if isinstance(raw, bytes) else (raw or "")
