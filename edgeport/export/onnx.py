"""ONNX targets: float32 via tf2onnx, float16 internals, static QDQ int8, embedded metadata.

The float32 model is converted as Keras' own ONNX export does it (a
``tf.function`` of the inference call, frozen, then tf2onnx), but with the
image as the only graph input (:func:`export_float32` says why), an explicit
float32 NHWC signature and a dynamic batch dimension. The float16 model
keeps float32 inputs/outputs; the int8 model is quantized statically (QDQ,
per-channel weights, reduce_range) with onnxruntime on the calibration
images, by one of its calibrators (:data:`CALIBRATORS`).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import io
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from edgeport._lazy import require
from edgeport.errors import ConfigError, MissingDependencyError, ModelError
from edgeport.files import atomic_path
from edgeport.progress import Progress

log = logging.getLogger(__name__)

INPUT_NAME = "image"


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise the level of third-party loggers (tf2onnx, tensorflow) for a while."""
    loggers = [logging.getLogger(n) for n in names]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, before):
            lg.setLevel(lv)
BATCH_DIM = "batch"


#: the graph's output name (what Keras' own ONNX export called it too)
OUTPUT_NAME = "Identity:0"


def export_float32(model, path: str | Path, opset: int = 17) -> Path:
    """Convert a Keras 3 model to a float32 ONNX file with one input and a dynamic batch dimension.

    This is what ``model.export(format="onnx")`` does (a ``tf.function`` of the
    inference call, frozen, then tf2onnx), except for which tensors become
    graph inputs: Keras/tf2onnx list every tensor the function captures, so
    a layer holding an eager constant (Normalization's mean and variance, e.g.
    in EfficientNet) became an extra input with no value. Here only the image
    is an input; the captured constants are frozen into initializers.
    """
    tf = require("tensorflow", "ONNX export")
    tf2onnx = require("tf2onnx", "ONNX export")
    onnx = require("onnx", "ONNX export")
    from tf2onnx import tf_loader

    try:  # numpy 2 compatibility patch that Keras applies before calling tf2onnx
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # pragma: no cover - a Keras without it has no need of it
        patch_tf2onnx = None  # type: ignore[assignment]
    shape = (None,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    spec = tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)
    fn = tf.function(lambda image: model(image, training=False), autograph=False)
    concrete = fn.get_concrete_function(spec)
    inputs = [concrete.inputs[0].name]  # the captured tensors come after the arguments
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    if len(outputs) != 1:
        raise ModelError(f"expected a classifier with one output, received {len(outputs)} outputs")
    # (tf2onnx's freezing logs TF1 deprecation warnings through the tensorflow logger)
    with warnings.catch_warnings(), quiet_loggers("tf2onnx", "tensorflow", level=logging.ERROR):
        warnings.simplefilter("ignore")
        if patch_tf2onnx is not None:
            patch_tf2onnx()
        with tf.device("/cpu:0"):
            graph_def = tf_loader.from_function(concrete, inputs, outputs)
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, name=concrete.name, input_names=inputs, output_names=outputs, opset=int(opset),
            tensors_to_rename={inputs[0]: INPUT_NAME, outputs[0]: OUTPUT_NAME})
    # tf2onnx leaves its graph (copies of every weight) in reference cycles: ~4 GB for ResNet50V2 that
    # would otherwise stay allocated through the remaining schemes
    gc.collect()
    _name_batch_dims(proto)
    extra = [i.name for i in proto.graph.input if i.name != INPUT_NAME]
    if extra:
        raise ModelError(f"expected one ONNX graph input '{INPUT_NAME}', tf2onnx also made {extra} inputs")
    onnx.save(proto, str(path))
    return Path(path)


def _name_batch_dims(proto) -> None:
    """Call the dynamic first dimension of every graph input/output 'batch'."""
    for v in list(proto.graph.input) + list(proto.graph.output):
        dims = v.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_param = BATCH_DIM


def convert_float16(src: str | Path, dst: str | Path) -> Path:
    """float16 weights and activations inside, float32 input/output (keep_io_types)."""
    onnx = require("onnx", "ONNX float16 conversion")
    require("onnxruntime", "ONNX float16 conversion")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(proto, keep_io_types=True)
    onnx.save(half, str(dst))
    return Path(dst)


def _calibration_reader(images: np.ndarray, name: str, progress: bool):
    """An onnxruntime CalibrationDataReader over raw 0..255 RGB images, one at a time.

    (Batches of 8 were measured no faster: calibration is bound by inference, 73 ms per
    ResNet50V2 224 px image on 2 cores either way.)
    """
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0
            self.bar = Progress(len(images), "onnx-int8 calibration", enabled=progress)

        def get_next(self) -> dict | None:
            if self.i >= len(images):
                self.bar.close()
                return None
            x = images[self.i].astype(np.float32)[None]
            self.i += 1
            self.bar.update()
            return {name: x}

        def rewind(self) -> None:
            self.i = 0

    return Reader()




class _BelowWarning(logging.Filter):
    """Drops records below WARNING logged on the logger it is added to (not those propagated to it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


#: edgeport's range-rule name -> onnxruntime's ``CalibrationMethod`` member
CALIBRATORS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


def check_calibration_method(method: str) -> str:
    """``method`` lower-cased, or ConfigError when it is not one of onnxruntime's calibrators."""
    m = str(method).strip().lower()
    if m not in CALIBRATORS:
        raise ConfigError(f"expected --calibration-method for onnx-int8 one of {', '.join(CALIBRATORS)}, "
                          f"received '{method}'")
    return m


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    return getattr(CalibrationMethod, CALIBRATORS[check_calibration_method(method)])


def preprocess(src: str | Path, dst: str | Path) -> Path:
    """onnxruntime's quantization pre-processing (graph optimization, ONNX shape inference) of ``src``."""
    require("onnxruntime", "ONNX int8 quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    return Path(dst)


def quantize_int8(src: str | Path, dst: str | Path, calibration: np.ndarray, progress: bool = True,
                  calibration_method: str = "minmax") -> Path:
    """Static QDQ int8 (per-channel weights in a 7-bit range), float32 I/O, calibrated by
    ``calibration_method`` (minmax, entropy or percentile: onnxruntime's calibrators)."""
    if calibration is None or len(calibration) == 0:
        raise ModelError("expected calibration images for the onnx-int8 scheme, received none")
    with tempfile.TemporaryDirectory(prefix="edgeport-ort-") as tmp:
        pre = preprocess(src, Path(tmp) / "preprocessed.onnx")
        quantize_qdq(pre, dst, calibration, progress, calibration_method)
    return Path(dst)


def quantize_qdq(
    preprocessed: str | Path,
    dst: str | Path,
    calibration: np.ndarray | None,
    progress: bool = True,
    calibration_method: str = "minmax",
    nodes_to_exclude: Sequence[str] = (),
    ranges_cache: str | Path | None = None,
) -> Path:
    """QDQ int8 of a :func:`preprocess`-ed graph: edgeport's settings, optionally with float nodes.

    ``nodes_to_exclude``: node names kept float (no QDQ of their own, float
    weights). ``ranges_cache``: a JSON file of calibrated tensor ranges; when
    it exists, ``calibration`` is not run again (one calibration pass for many
    candidates), else the ranges are computed from ``calibration`` and written
    there. Needs an onnxruntime whose ``quantize_static`` has
    ``calibration_cache_path``. A freshly calibrated Softmax input (the
    logits) keeps only what a probability in steps of 1/256 shows
    (:func:`floor_softmax_inputs`), as int8 TFLite's does.
    """
    ort = require("onnxruntime", "ONNX int8 quantization")
    from onnxruntime.quantization import quantize_static

    cached = ranges_cache is not None and Path(ranges_cache).is_file()
    if not cached and (calibration is None or len(calibration) == 0):
        raise ModelError("expected calibration images for the onnx-int8 scheme, received none")
    can_cache = "calibration_cache_path" in inspect.signature(quantize_static).parameters
    if ranges_cache is not None and not can_cache:
        raise MissingDependencyError(
            f"expected an onnxruntime whose quantize_static takes calibration_cache_path (to calibrate "
            f"once for the float-fallback search), received onnxruntime {ort.__version__}; "
            "upgrade it with: pip install -U onnxruntime"
        )
    if cached:
        _quantize_static(preprocessed, dst, None, progress, calibration_method, nodes_to_exclude, Path(ranges_cache))
    elif not can_cache:  # an onnxruntime without a range cache: its calibrated logits' range as it is
        log.warning("onnx-int8: onnxruntime %s cannot keep calibrated ranges; the logits' range is not floored "
                    "(pip install -U onnxruntime)", ort.__version__)
        _quantize_static(preprocessed, dst, calibration, progress, calibration_method, nodes_to_exclude, None)
    else:
        # calibrate into a scratch cache, floor the logits' range there, and only then keep it (a cache left
        # unfloored would be read as done by every later candidate)
        with tempfile.TemporaryDirectory(prefix="edgeport-ranges-") as tmp:
            fresh = Path(tmp) / "ranges.json"
            _quantize_static(preprocessed, dst, calibration, progress, calibration_method, nodes_to_exclude, fresh)
            if floor_softmax_inputs(preprocessed, fresh, calibration, progress):
                _quantize_static(preprocessed, dst, None, progress, calibration_method, nodes_to_exclude, fresh)
            if ranges_cache is not None:
                with atomic_path(ranges_cache) as part:
                    shutil.copyfile(fresh, part)
    _drop_unused_opsets(dst)
    return Path(dst)


def _quantize_static(preprocessed: str | Path, dst: str | Path, calibration: np.ndarray | None, progress: bool,
                     calibration_method: str, nodes_to_exclude: Sequence[str], cache: Path | None) -> None:
    """One ``quantize_static`` call with edgeport's settings (``calibration`` None: the ranges in ``cache``)."""
    ort = require("onnxruntime", "ONNX int8 quantization")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    extra: dict = {} if cache is None else {"calibration_cache_path": str(cache)}
    reader = None
    if calibration is not None:
        name = ort.InferenceSession(str(preprocessed), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        reader = _calibration_reader(calibration, name, progress)
    chatter = io.StringIO()  # the histogram calibrators print() their progress
    quiet = _BelowWarning()  # the QDQ quantizer logs on the root logger ("Created a copy of bias input ...")
    logging.getLogger().addFilter(quiet)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            quantize_static(
                str(preprocessed), str(dst), reader,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                # 7-bit weights: x86 CPUs without VNNI multiply u8*s8 pairs into saturating int16,
                # which cost ~3 points of agreement on ResNet50V2/flowers; ARM is unaffected.
                reduce_range=True,
                nodes_to_exclude=list(nodes_to_exclude),
                calibrate_method=_ort_method(calibration_method),
                **extra,
            )
    finally:
        logging.getLogger().removeFilter(quiet)
    if chatter.getvalue().strip():
        log.debug("onnxruntime calibration: %s", " ".join(chatter.getvalue().split()))


def floor_softmax_inputs(preprocessed: str | Path, cache: str | Path, calibration: np.ndarray,
                         progress: bool = False) -> list[str]:
    """Raise the low end of each Softmax input's range in ``cache`` (an onnxruntime calibration cache) to
    :func:`edgeport.export.int8.ranges.softmax_input_range`'s floor, from each calibration image's top logit
    (one float pass). Returns the tensors changed."""
    onnx = require("onnx", "ONNX int8 quantization")
    ort = require("onnxruntime", "ONNX int8 quantization")
    from onnxruntime.quantization.calibrate import load_tensors_data, save_tensors_data

    from edgeport.export.int8.graph import onnx_ops, sole_inputs
    from edgeport.export.int8.ranges import RowPeak

    proto = onnx.load(str(preprocessed))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 13)
    softmax_inputs = sole_inputs(onnx_ops(proto), "Softmax", {o.name for o in proto.graph.output})
    axes = {name: next((a.i for a in proto.graph.node[op.index].attribute if a.name == "axis"),
                       -1 if opset >= 13 else 1) for name, op in softmax_inputs.items()}
    ranges = load_tensors_data(cache)
    names = [n for n in axes if n in ranges]
    if not names or calibration is None or not len(calibration):
        return []
    proto.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = sess.get_inputs()[0].name
    rows = {n: RowPeak() for n in names}
    ranks: dict[str, int] = {}
    with Progress(len(calibration), "onnx-int8 logits range", enabled=progress) as bar:
        for img in calibration:
            for n, v in zip(names, sess.run(names, {feed: img.astype(np.float32)[None]})):
                rows[n].add(v)
                ranks[n] = np.ndim(v)
            bar.update()
    changed = []
    for n in names:
        if ranks[n] < 2 or axes[n] % ranks[n] != ranks[n] - 1:
            continue  # a softmax over another axis (or of one row): not what the floor reads, as in int8 TFLite
        td = ranges[n]
        if any(np.asarray(x).size != 1 for x in td.range_value):
            continue  # a per-channel range: not the per-tensor activation the floor is for
        lo, hi = (float(np.asarray(x).reshape(-1)[0]) for x in td.range_value)
        new_lo, _ = rows[n].range(lo, hi)
        if new_lo > lo:  # raised (not merely 0 put inside a range above it)
            td.lowest = np.asarray(new_lo, dtype=np.asarray(td.lowest).dtype).reshape(np.shape(td.lowest))
            changed.append(n)
    if changed:
        smooth = bool(json.loads(Path(cache).read_text()).get("smooth_quant", False))
        save_tensors_data(ranges, cache, smooth_quant=smooth)
        log.debug("onnx-int8: the logits' range floored for %s", ", ".join(changed))
    return changed


def _drop_unused_opsets(path: str | Path) -> None:
    """Remove opset imports no node uses (onnxruntime's optimizer adds every domain it knows)."""
    onnx = require("onnx", "ONNX int8 quantization")
    proto = onnx.load(str(path))
    used = {n.domain or "" for n in proto.graph.node} | {""}
    keep = [o for o in proto.opset_import if (o.domain or "") in used]
    if len(keep) != len(proto.opset_import):
        del proto.opset_import[:]
        proto.opset_import.extend(keep)
        onnx.save(proto, str(path))


def embed_metadata(path: str | Path, props: dict[str, str]) -> None:
    """Set ``metadata_props`` entries of an .onnx file in place (replacing same keys)."""
    onnx = require("onnx", "writing ONNX metadata")
    proto = onnx.load(str(path))
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for k, v in keep + list(props.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(path))


def graph_summary(path: str | Path) -> dict:
    """Op counts, initializer (weight) types, opsets and input/output dims ('batch' = dynamic)."""
    onnx = require("onnx", "reading an ONNX graph")
    proto = onnx.load(str(path))
    ops: dict[str, int] = {}
    for n in proto.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    weights: dict[str, int] = {}
    for t in proto.graph.initializer:
        k = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name
        weights[k] = weights.get(k, 0) + 1
    opset = {o.domain or "ai.onnx": int(o.version) for o in proto.opset_import}
    dims = {v.name: [d.dim_param or int(d.dim_value) for d in v.type.tensor_type.shape.dim]
            for v in list(proto.graph.input) + list(proto.graph.output)}
    return {"ops": dict(sorted(ops.items())), "weight_dtypes": weights, "opset": opset, "dims": dims}
