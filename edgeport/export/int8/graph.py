"""The op graph a quantizer sees, and the units a model-level search keeps float or quantizes.

:func:`tflite_ops` / :func:`onnx_ops` read a calibrated model's ops as
:class:`OpNode` (type, the name the quantizer knows it by, activation tensors
in and out, MACs, the Keras layers it came from). :func:`segments` cuts the
graph where one activation tensor is live (the residual blocks of a ResNet,
the inverted-residual blocks of a MobileNet), :func:`block_groups` names them
after their Keras layers and :func:`search_groups` adds one unit per op type.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np

from edgeport._lazy import require

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


def sole_inputs(ops: Sequence[OpNode], kind: str, outputs: Collection[str] = ()) -> dict[str, OpNode]:
    """The input tensors of ``kind`` ops that nothing else reads (no other op, none of ``outputs``, the graph's
    outputs), each with the op that reads it: e.g. the logits only SOFTMAX reads, whose range may be cut where
    its output no longer shows them (others would see the cut values)."""
    readers = Counter(i for op in ops for i in op.inputs)
    return {i: op for op in ops if op.type == kind for i in op.inputs if readers[i] == 1 and i not in outputs}


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


def tflite_outputs(model: bytes) -> set[str]:
    """The output tensors of a .tflite flatbuffer's main subgraph, named as :class:`OpNode` names its inputs."""
    require("tensorflow", "reading a TFLite graph")
    from tensorflow.lite.python import schema_py_generated as schema

    graph = schema.Model.GetRootAsModel(model, 0).Subgraphs(0)
    return {str(int(i)) for i in graph.OutputsAsNumpy()}


def onnx_ops(model, layer_names: Collection[str] = ()) -> list[OpNode]:
    """The nodes of an ONNX graph (a file or a loaded ModelProto; with value_info shapes, e.g. after
    pre-processing) as :class:`OpNode`."""
    onnx = require("onnx", "reading an ONNX graph")
    proto = model if hasattr(model, "graph") else onnx.load(str(model))
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
