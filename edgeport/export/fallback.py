"""Int8 candidates with some ops kept in float, from one calibration pass.

A :class:`Candidates` object holds one calibrated model and its op graph
(:class:`OpNode`: type, the name the quantizer knows it by, activation
tensors in and out, MACs, Keras layers it came from) and writes the int8
model for any set of ops to keep in float:

    TFLite  the calibrated float model of :func:`edgeport.export.tflite.calibrate`,
            quantized by the MLIR quantizer with ``denylisted_nodes`` (the
            ops' output tensor names); a kept op runs on float kernels with
            DEQUANTIZE before it and QUANTIZE after it
    ONNX    the pre-processed float32 graph, calibrated once into a range cache,
            quantized by onnxruntime's QDQ quantizer with ``nodes_to_exclude``;
            a kept node gets no QDQ pair of its own and keeps float weights
            (a neighbour's QDQ still rounds the tensors it shares with it)

Either one quantizes on any of its engine's activation-range rules
(:meth:`Candidates.use`: TFLite's ranges re-set from histograms,
:mod:`edgeport.export.ranges`; ONNX's from onnxruntime's calibrators).

:func:`segments` cuts the graph where one activation tensor is live (the
residual blocks of a ResNet, the inverted-residual blocks of a MobileNet)
and :func:`block_groups` names them after their Keras layers: the units a
model-level search keeps float or quantizes.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterable, Sequence

import numpy as np

from edgeport._lazy import require
from edgeport.errors import ConfigError, ModelError
from edgeport.export.config import SCHEME_RANGE_RULES

log = logging.getLogger(__name__)

#: op types counted as multiply-accumulates per weight (everything else: one per output element, or 0)
_MAC_TFLITE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}
_MAC_ONNX = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
#: ops that move or reshape data without arithmetic (0 MACs)
_LAYOUT = {"PAD", "PADV2", "RESHAPE", "SHAPE", "STRIDED_SLICE", "PACK", "SQUEEZE", "CONCATENATION",
           "TRANSPOSE", "QUANTIZE", "DEQUANTIZE", "MAX_POOL_2D", "MaxPool", "Pad", "Reshape", "Shape", "Squeeze", "Unsqueeze",
           "Concat", "Transpose", "Flatten", "Gather", "Slice", "Identity", "Cast"}


@dataclass(frozen=True)
class OpNode:
    """One op of the graph a quantizer sees.

    ``name``: what the quantizer's deny/exclude list takes (TFLite: the op's
    first output tensor name; ONNX: the node name). ``inputs``/``outputs``:
    activation tensor ids (constants left out). ``macs``: multiply-accumulates
    for one image (conv/dense: per weight; elementwise: one per output
    element; layout ops: 0). ``layers``: the Keras layers named in it.
    """

    index: int
    name: str
    type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    macs: int = 0
    layers: tuple[str, ...] = ()

    def label(self) -> str:
        """'CONV_2D conv2_block1_1_conv' (type and first Keras layer, else the raw name)."""
        return f"{self.type} {self.layers[0] if self.layers else self.name}"


@dataclass(frozen=True)
class Group:
    """A unit of the search: ops kept in float or quantized together."""

    name: str
    ops: tuple[int, ...]
    macs: int = 0
    kind: str = "block"  # block (contiguous ops) or type (every op of one type)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "ops": list(self.ops), "macs": int(self.macs)}


def keras_layer_names(model) -> list[str]:
    """Every layer name of a Keras model, nested models included (outer first)."""
    names: list[str] = []

    def walk(layer) -> None:
        names.append(layer.name)
        for sub in getattr(layer, "layers", None) or []:
            walk(sub)

    walk(model)
    return names


def layers_in(name: str, known: Collection[str]) -> tuple[str, ...]:
    """The Keras layers a converter's op/tensor name comes from, innermost per fused part.

    ``'m_1/resnet50v2_1/conv2_block1_out_1/Add;m_1/.../conv2_block1_preact_bn_1/mul'``
    -> ``('conv2_block1_out', 'conv2_block1_preact_bn')``: each ';'-separated
    part is a path of name scopes; Keras 3 adds '_<n>' to a scope when it
    traces a layer again, so a segment matches a layer with or without it.
    """
    found: list[str] = []
    for part in name.split(";"):
        deepest = None
        for seg in part.split("/"):
            for cand in (seg, seg.rsplit("_", 1)[0]):
                if cand in known:
                    deepest = cand
                    break
        if deepest and deepest not in found:
            found.append(deepest)
    return tuple(found)


def segments(ops: Sequence[OpNode]) -> list[list[int]]:
    """Op indices (topological order) cut after each op where at most one activation tensor is live.

    A residual block is one segment (its shortcut keeps two tensors live
    until the ADD); a plain chain gives one op per segment.
    """
    produced_at = {t: i for i, op in enumerate(ops) for t in op.outputs}
    last_use: dict[str, int] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            if t in produced_at:
                last_use[t] = i
    out: list[list[int]] = []
    cur: list[int] = []
    live: set[str] = set()
    for i, op in enumerate(ops):
        cur.append(op.index)
        live |= {t for t in op.outputs if last_use.get(t, -1) > i}
        live = {t for t in live if last_use.get(t, -1) > i}
        if len(live) <= 1:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


_BLOCK = re.compile(r"^(.*?block_?\d+)")


def _block_name(ops: Sequence[OpNode]) -> str:
    """A segment's name: the Keras block prefix ('conv2_block1', 'block_3'), its first layer, or its
    first arithmetic op's type (an op no Keras layer is named in, e.g. the final SOFTMAX)."""
    for op in ops:
        for layer in op.layers:
            m = _BLOCK.match(layer)
            return m.group(1) if m else layer
    typed = [op for op in ops if op.type not in _LAYOUT] or list(ops)
    return typed[0].type if typed else ""


def block_groups(ops: Sequence[OpNode], max_groups: int | None = None) -> list[Group]:
    """:func:`segments` named by Keras block, neighbours of one block merged.

    Segments without arithmetic (pads, reshapes, shape ops) join the next
    segment (the last ones the previous). With ``max_groups``, the
    neighbouring pair with the fewest MACs is merged until that many remain.
    """
    by_index = {op.index: op for op in ops}
    raw: list[tuple[str, list[int]]] = []
    pending: list[int] = []
    for seg in segments(ops):
        nodes = [by_index[i] for i in seg]
        if all(n.type in _LAYOUT or n.macs == 0 for n in nodes):
            pending.extend(seg)
            continue
        name = _block_name(nodes)
        if raw and raw[-1][0] == name:
            raw[-1][1].extend(pending + seg)
        else:
            raw.append((name, pending + seg))
        pending = []
    if pending:
        if raw:
            raw[-1][1].extend(pending)
        else:
            raw.append((_block_name([by_index[i] for i in pending]), pending))
    groups = [Group(n, tuple(ix), sum(by_index[i].macs for i in ix)) for n, ix in raw]
    while max_groups and len(groups) > max(1, max_groups):
        k = min(range(len(groups) - 1), key=lambda j: groups[j].macs + groups[j + 1].macs)
        a, b = groups[k], groups[k + 1]
        groups[k:k + 2] = [Group(f"{a.name}..{b.name.split('..')[-1]}", a.ops + b.ops, a.macs + b.macs)]
    return groups


def type_groups(ops: Sequence[OpNode]) -> list[Group]:
    """One group per arithmetic op type ('ADD', 'MUL', 'CONV_2D', ...), in order of first use."""
    order: dict[str, list[int]] = {}
    for op in ops:
        if op.type not in _LAYOUT:
            order.setdefault(op.type, []).append(op.index)
    by_index = {op.index: op for op in ops}
    return [Group(f"all {t}", tuple(ix), sum(by_index[i].macs for i in ix), kind="type") for t, ix in order.items()]


def search_groups(ops: Sequence[OpNode], max_groups: int) -> list[Group]:
    """The units a search ranks: every op type (:func:`type_groups`), then blocks
    (:func:`block_groups`) merged to fill ``max_groups`` in all; a type whose ops are
    exactly one block (a model's only MUL, say) goes by the block's name."""
    types = type_groups(ops)
    blocks = block_groups(ops, max_groups=max(1, max_groups - len(types)))
    block_keys = {tuple(sorted(g.ops)) for g in blocks}
    return [g for g in types if tuple(sorted(g.ops)) not in block_keys] + blocks


class Candidates:
    """One calibrated model; :meth:`write` makes its int8 model with ``float_ops`` kept float."""

    scheme: str = ""
    suffix: str = ""
    #: activation-range rules this engine offers (:mod:`edgeport.export.ranges`), the first the default
    rules: tuple[str, ...] = ("minmax",)

    def __init__(self, ops: Sequence[OpNode]) -> None:
        self.ops: tuple[OpNode, ...] = tuple(ops)
        self.by_index = {op.index: op for op in self.ops}
        self.rule = self.rules[0]

    def use(self, rule: str) -> None:
        """Quantize every later candidate on ``rule``'s activation ranges."""
        if rule not in self.rules:
            raise ConfigError(f"expected a range rule of {self.scheme}, one of {', '.join(self.rules)}, "
                              f"received '{rule}'")
        self.rule = rule

    @property
    def total_macs(self) -> int:
        return int(sum(op.macs for op in self.ops))

    def names(self, float_ops: Iterable[int]) -> list[str]:
        return [self.by_index[i].name for i in sorted(set(float_ops))]

    def describe(self, float_ops: Iterable[int]) -> dict:
        """The float set as recorded in a manifest: ops, Keras layers, MAC share."""
        idx = sorted(set(float_ops))
        nodes = [self.by_index[i] for i in idx]
        layers: list[str] = []
        for n in nodes:
            layers.extend(x for x in n.layers if x not in layers)
        macs = int(sum(n.macs for n in nodes))
        types: dict[str, int] = {}
        for n in nodes:
            types[n.type] = types.get(n.type, 0) + 1
        return {
            "ops": len(nodes), "total_ops": len(self.ops), "op_types": dict(sorted(types.items())),
            "macs": macs, "total_macs": self.total_macs,
            "macs_share": round(macs / self.total_macs, 6) if self.total_macs else 0.0,
            "layers": layers, "nodes": [{"name": n.name, "type": n.type, "layers": list(n.layers), "macs": n.macs}
                                        for n in nodes],
        }

    def write(self, float_ops: Collection[int], path: Path) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError


# --------------------------------------------------------------------------- TFLite


def tflite_ops(model: bytes, layer_names: Collection[str] = ()) -> list[OpNode]:
    """The ops of a .tflite flatbuffer's main subgraph as :class:`OpNode` (names = output tensors)."""
    require("tensorflow", "reading a TFLite graph")
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    obj = fu.convert_bytearray_to_object(bytearray(model))
    g = obj.subgraphs[0]
    known = set(layer_names)

    def const(i: int) -> bool:
        buf = obj.buffers[g.tensors[i].buffer] if g.tensors[i].buffer < len(obj.buffers) else None
        return buf is not None and buf.data is not None and len(buf.data) > 0

    def shape(i: int) -> list[int]:
        s = g.tensors[i].shape
        return [int(d) for d in s] if s is not None else []

    out = []
    for k, op in enumerate(g.operators):
        code = obj.operatorCodes[op.opcodeIndex]
        kind = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        ins = [i for i in op.inputs if i >= 0]
        outs = [i for i in op.outputs if i >= 0]
        n_out = int(np.prod(shape(outs[0]))) if outs and shape(outs[0]) else 0
        if kind in _MAC_TFLITE and len(ins) > 1:
            w = shape(ins[1])
            per_out = {"CONV_2D": int(np.prod(w[1:])), "DEPTHWISE_CONV_2D": int(np.prod(w[1:3])),
                       "FULLY_CONNECTED": w[-1] if w else 0, "TRANSPOSE_CONV": int(np.prod(w[1:]))}.get(kind, 0)
            if kind == "BATCH_MATMUL":
                per_out = shape(ins[0])[-1] if shape(ins[0]) else 0
            macs = n_out * per_out
        else:
            macs = 0 if kind in _LAYOUT else n_out
        name = g.tensors[outs[0]].name
        name = name.decode() if isinstance(name, bytes) else str(name)
        out.append(OpNode(index=k, name=name, type=kind,
                          inputs=tuple(str(i) for i in ins if not const(i)), outputs=tuple(str(i) for i in outs),
                          macs=int(macs), layers=layers_in(name, known)))
    return out


class TFLiteCandidates(Candidates):
    """int8 TFLite models from one :func:`~edgeport.export.tflite.calibrate` result."""

    scheme = "int8"
    suffix = ".tflite"
    rules = SCHEME_RANGE_RULES["int8"]

    def __init__(self, calibrated: bytes, io_dtype: str = "uint8", layer_names: Collection[str] = (),
                 images: np.ndarray | None = None, progress: bool = False) -> None:
        """``images``: the calibration images, run again (once, in float) for the histograms of the rules
        other than min/max."""
        super().__init__(tflite_ops(calibrated, layer_names))
        self.calibrated = calibrated
        self.io_dtype = io_dtype
        self.images, self.progress = images, progress
        self._hists: dict | None = None
        self._ranged: dict[str, bytes] = {"minmax": calibrated}

    def ranged(self, rule: str) -> bytes:
        """The calibrated model with ``rule``'s activation ranges (histograms made on first need)."""
        if rule not in self._ranged:
            from edgeport.export.ranges import clip_range
            from edgeport.export.tflite import activation_histograms, with_ranges

            if self.images is None or len(self.images) == 0:
                raise ModelError(f"expected the calibration images for {rule} activation ranges, received none")
            if self._hists is None:
                self._hists = activation_histograms(self.calibrated, self.images, self.progress)
            self._ranged[rule] = with_ranges(self.calibrated, {i: clip_range(h, rule) for i, h in self._hists.items()})
        return self._ranged[rule]

    def quantize(self, float_ops: Collection[int]) -> bytes:
        from edgeport.export.tflite import quantize_calibrated

        return quantize_calibrated(self.ranged(self.rule), "int8", self.io_dtype, float_nodes=self.names(float_ops))

    def write(self, float_ops: Collection[int], path: Path) -> Path:
        Path(path).write_bytes(self.quantize(float_ops))
        return Path(path)


# --------------------------------------------------------------------------- ONNX


def onnx_ops(model_path: str | Path, layer_names: Collection[str] = ()) -> list[OpNode]:
    """The nodes of an ONNX graph (with value_info shapes, e.g. after pre-processing) as :class:`OpNode`."""
    onnx = require("onnx", "reading an ONNX graph")
    proto = onnx.load(str(model_path))
    g = proto.graph
    inits = {t.name: list(t.dims) for t in g.initializer}
    shapes: dict[str, list[int]] = {}
    for v in list(g.value_info) + list(g.output) + list(g.input):
        dims = v.type.tensor_type.shape.dim
        shapes[v.name] = [int(d.dim_value) if d.dim_value else 1 for d in dims]
    known = set(layer_names)
    out = []
    for k, n in enumerate(g.node):
        out_shape = shapes.get(n.output[0]) if n.output else None
        n_out = int(np.prod(out_shape)) if out_shape else 0
        macs = 0 if n.op_type in _LAYOUT else n_out
        if n.op_type in _MAC_ONNX:
            w = next((inits[i] for i in n.input[1:2] if i in inits), None)
            if w is not None and n.op_type in ("Conv", "ConvTranspose"):
                macs = n_out * int(np.prod(w[1:]))
            elif w is not None:
                macs = n_out * int(w[0] if n.op_type == "MatMul" else w[-1])
        names = [n.name] + [i for i in n.input if i in inits]
        layers: list[str] = []
        for nm in names:
            layers.extend(x for x in layers_in(nm, known) if x not in layers)
        out.append(OpNode(index=k, name=n.name, type=n.op_type,
                          inputs=tuple(i for i in n.input if i and i not in inits), outputs=tuple(n.output),
                          macs=int(macs), layers=tuple(layers)))
    return out


class OnnxCandidates(Candidates):
    """QDQ int8 ONNX models from one pre-processed graph and one calibration pass.

    The first :meth:`write` (or :meth:`prepare`) calibrates on ``calibration``
    and keeps the tensor ranges in ``workdir``; every candidate after it is
    quantized from those ranges.
    """

    scheme = "onnx-int8"
    suffix = ".onnx"
    rules = SCHEME_RANGE_RULES["onnx-int8"]

    def __init__(self, float_model: str | Path, calibration: np.ndarray | None, workdir: str | Path,
                 calibration_method: str = "minmax", layer_names: Collection[str] = (),
                 progress: bool = True) -> None:
        from edgeport.export.onnx import check_calibration_method, preprocess

        method = check_calibration_method(calibration_method)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.preprocessed = preprocess(float_model, self.workdir / "preprocessed.onnx")
        self.calibration = calibration
        self.progress = progress
        super().__init__(onnx_ops(self.preprocessed, layer_names))
        self.use(method)

    @property
    def ranges(self) -> Path:
        """The range cache of the current rule's calibrator (each calibrates once, on first use)."""
        return self.workdir / f"ranges_{self.rule}.json"

    def prepare(self) -> Path:
        """Calibrate now (once) if no range cache exists yet; the cache path."""
        if not self.ranges.is_file():
            with tempfile.TemporaryDirectory(prefix="edgeport-ort-") as tmp:
                self.write((), Path(tmp) / "full.onnx")
        return self.ranges

    def write(self, float_ops: Collection[int], path: Path) -> Path:
        from edgeport.export.onnx import quantize_qdq

        return quantize_qdq(self.preprocessed, path, self.calibration, progress=self.progress,
                            calibration_method=self.rule, nodes_to_exclude=self.names(float_ops),
                            ranges_cache=self.ranges)
