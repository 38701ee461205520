"""Read the edgeport metadata embedded in .tflite and .onnx files, in pure Python.

No TensorFlow, flatbuffers or onnx package is needed: a device with only
numpy, OpenCV and one engine can read labels and the input contract from the
model file alone. Writing happens in ``edgeport.export``.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from pathlib import Path

from edgeport.contract import METADATA_KEY, ModelInfo
from edgeport.errors import ModelError

# --- TFLite (FlatBuffers, schema.fbs: Model.metadata = field 6, Model.buffers = field 4)
#
# Every read is bounds-checked: a truncated or damaged file gives a ModelError,
# never a struct.error, and no loop runs longer than the file is long.


def _damaged(b: bytes, what: str, at: int) -> ModelError:
    return ModelError(
        f"expected a complete TFLite flatbuffer, but its {what} (at byte {at}) lies outside the file's "
        f"{len(b)} bytes: the file is truncated or damaged; copy it again or re-export it"
    )


def _unpack(b: bytes, fmt: str, o: int, what: str) -> int:
    if o < 0 or o + struct.calcsize(fmt) > len(b):
        raise _damaged(b, what, o)
    return struct.unpack_from(fmt, b, o)[0]


def _u32(b: bytes, o: int, what: str = "offset") -> int:
    return _unpack(b, "<I", o, what)


def _field_pos(b: bytes, table: int, field: int) -> int | None:
    vtable = table - _unpack(b, "<i", table, "table")
    vsize = _unpack(b, "<H", vtable, "vtable")
    slot = 4 + 2 * field
    if slot + 2 > vsize:
        return None
    off = _unpack(b, "<H", vtable + slot, "vtable")
    return table + off if off else None


def _vector(b: bytes, pos: int, item_size: int, what: str) -> tuple[int, int]:
    """(start, length) of the vector referenced at ``pos``, its items checked to lie inside the file."""
    start = pos + _u32(b, pos, what)
    n = _u32(b, start, what)
    if start + 4 + n * item_size > len(b):
        raise _damaged(b, f"{what} of {n} items", start)
    return start + 4, n


def _table_at(b: bytes, pos: int, what: str = "table") -> int:
    return pos + _u32(b, pos, what)


def read_tflite_metadata(model: bytes | str | os.PathLike[str]) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a .tflite file as {name: bytes} (ModelError when damaged)."""
    b = model if isinstance(model, (bytes, bytearray)) else _read_bytes(model)
    if len(b) < 8 or b[4:8] != b"TFL3":
        raise ModelError(f"expected a TFLite flatbuffer (identifier TFL3), received {bytes(b[4:8])!r}")
    root = _table_at(b, 0, "root table")
    meta_pos = _field_pos(b, root, 6)
    buf_pos = _field_pos(b, root, 4)
    if meta_pos is None or buf_pos is None:
        return {}
    bufs_start, n_bufs = _vector(b, buf_pos, 4, "buffer list")
    metas_start, n_metas = _vector(b, meta_pos, 4, "metadata list")
    out: dict[str, bytes] = {}
    for i in range(n_metas):
        entry = _table_at(b, metas_start + 4 * i, "metadata entry")
        name_pos = _field_pos(b, entry, 0)
        idx_pos = _field_pos(b, entry, 1)
        if name_pos is None:
            continue
        s_start, s_len = _vector(b, name_pos, 1, "metadata name")
        name = bytes(b[s_start : s_start + s_len]).decode("utf-8", "replace")
        idx = _u32(b, idx_pos, "buffer index") if idx_pos is not None else 0
        if idx >= n_bufs:
            continue
        start, length = _buffer_span(b, _table_at(b, bufs_start + 4 * idx, "buffer"), "metadata buffer")
        out[name] = bytes(b[start : start + length])
    return out


def _buffer_span(b: bytes, buf: int, what: str) -> tuple[int, int]:
    """(start, length) of a Buffer table's bytes, checked to lie inside the file: its ``data`` vector, or
    the ``offset``/``size`` pair of >2 GB models, which keep data after the flatbuffer; (0, 0) when empty."""
    data_pos = _field_pos(b, buf, 0)
    if data_pos is not None:
        return _vector(b, data_pos, 1, what)
    off_pos, size_pos = _field_pos(b, buf, 1), _field_pos(b, buf, 2)
    if off_pos is None or size_pos is None:
        return 0, 0
    off, size = _unpack(b, "<Q", off_pos, "buffer offset"), _unpack(b, "<Q", size_pos, "buffer size")
    if off + size > len(b):
        raise _damaged(b, f"{what} of {size} bytes", off)
    return off, size


def _whole_table(b: bytes, table: int, what: str) -> int:
    """``table``, checked to lie inside the file with its vtable and inline fields (the vtable's object size)."""
    vtable = table - _unpack(b, "<i", table, what)
    size = _unpack(b, "<H", vtable + 2, f"{what}'s vtable")
    if table + size > len(b):
        raise _damaged(b, f"{what} of {size} bytes", table)
    vsize = _unpack(b, "<H", vtable, f"{what}'s vtable")
    if vtable + vsize > len(b):
        raise _damaged(b, f"{what}'s vtable of {vsize} bytes", vtable)
    # a builder writes every field inside its table's inline bytes, after the vtable offset (one unpack: a
    # damaged vtable may claim 32,000 fields, shared by every tensor)
    offs = struct.unpack_from(f"<{max(vsize - 4, 0) // 2}H", b, vtable + 4)
    if offs and (max(offs) >= max(size, 1) or not _BEFORE_FIELDS.isdisjoint(offs)):
        field, off = next((i, o) for i, o in enumerate(offs) if o and (o < 4 or o >= size))
        raise _inconsistent(f"{what} that puts field {field} at byte {off}, outside its {size} bytes", table)
    return table


_BEFORE_FIELDS = frozenset({1, 2, 3})  # a table's first 4 bytes are its vtable offset


def _tables(b: bytes, table: int, field: int, what: str) -> list[int]:
    """The tables of a vector-of-tables field (each checked to lie inside the file); [] when absent."""
    pos = _field_pos(b, table, field)
    if pos is None:
        return []
    start, n = _vector(b, pos, 4, what)
    return [_whole_table(b, _table_at(b, start + 4 * i, what), what) for i in range(n)]


def _ints(b: bytes, table: int, field: int, what: str) -> list[int]:
    pos = _field_pos(b, table, field)
    if pos is None:
        return []
    start, n = _vector(b, pos, 4, what)
    return list(struct.unpack_from(f"<{n}i", b, start))


def _out_of_range(what: str, at: int) -> ModelError:
    return ModelError(f"expected a consistent TFLite flatbuffer, but the {what} (table at byte {at}) names "
                      "something the file does not have: the file is damaged; copy it again or re-export it")


#: bytes per element of TensorType (schema.fbs); strings, resources, variants and packed int4 are left out
_ITEM_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2}
#: BuiltinOperator codes whose output has its input's elements: DEQUANTIZE, QUANTIZE
_SAME_SHAPE_OPS = {6, 114}
#: BuiltinOperator code of CONV_2D, whose channels are checked (:func:`_check_conv_channels`)
_CONV_2D = 3


def _builtin_code(b: bytes, code: int) -> int:
    """An OperatorCode's builtin: the larger of deprecated_builtin_code (int8, field 0) and builtin_code (field 3)."""
    old, new = _field_pos(b, code, 0), _field_pos(b, code, 3)
    return max(_unpack(b, "<b", old, "operator code") if old is not None else 0,
               _unpack(b, "<i", new, "operator code") if new is not None else 0)


def _tensor_type(b: bytes, tensor: int) -> int:
    pos = _field_pos(b, tensor, 1)
    return _unpack(b, "<b", pos, "tensor type") if pos is not None else 0


def _elements(b: bytes, tensor: int) -> int | None:
    """The element count of a tensor's shape; None when a dimension is dynamic (-1)."""
    shape = _ints(b, tensor, 0, "tensor shape")
    return None if any(d < 0 for d in shape) else math.prod(shape)


def _inconsistent(what: str, at: int) -> ModelError:
    return ModelError(f"expected a consistent TFLite flatbuffer, but a {what} (table at byte {at}): the file is "
                      "damaged; copy it again or re-export it")


# --- schema.fbs as data: every field of a table that is an offset (all others are scalars), so that the
# structural check walks every table, vector, string and union member an interpreter can reach. Read from
# ai_edge_litert's schema_py_generated.py (tests/runtime/test_fuzz.py compares it with the installed one):
# table -> {field: ("vector", item bytes) | ("string",) | ("table", T) | ("tables", T) | ("union", U)};
# a union's type is the field before it; union -> {type: table}, tables absent here hold scalars only.
_OFFSET_FIELDS: dict[str, dict[int, tuple]] = {
    "CustomQuantization": {0: ("vector", 1)},
    "BlockwiseQuantization": {3: ("vector", 4)},
    "MultiAxisQuantization": {3: ("vector", 4)},
    "QuantizationParameters": {
        0: ("vector", 4), 1: ("vector", 4), 2: ("vector", 4), 3: ("vector", 8), 5: ("union", "QuantizationDetails"),
    },
    "Int32Vector": {0: ("vector", 4)},
    "Uint16Vector": {0: ("vector", 2)},
    "Uint8Vector": {0: ("vector", 1)},
    "DimensionMetadata": {3: ("union", "SparseIndexVector"), 5: ("union", "SparseIndexVector")},
    "SparsityParameters": {0: ("vector", 4), 1: ("vector", 4), 2: ("tables", "DimensionMetadata")},
    "VariantSubType": {0: ("vector", 4)},
    "Tensor": {
        0: ("vector", 4), 3: ("string",), 4: ("table", "QuantizationParameters"), 6: ("table", "SparsityParameters"),
        7: ("vector", 4), 9: ("tables", "VariantSubType"),
    },
    "StablehloGatherOptions": {0: ("vector", 8), 1: ("vector", 8), 2: ("vector", 8), 4: ("vector", 8)},
    "StablehloTransposeOptions": {0: ("vector", 8)},
    "StablehloDotGeneralOptions": {
        0: ("vector", 8), 1: ("vector", 8), 2: ("vector", 8), 3: ("vector", 8), 4: ("vector", 4),
    },
    "StablehloReduceWindowOptions": {
        0: ("vector", 8), 1: ("vector", 8), 2: ("vector", 8), 3: ("vector", 8), 4: ("vector", 8),
    },
    "StablehloBroadcastInDimOptions": {0: ("vector", 8)},
    "StablehloDynamicSliceOptions": {0: ("vector", 8)},
    "StablehloPadOptions": {0: ("vector", 8), 1: ("vector", 8), 2: ("vector", 8)},
    "StablehloCustomCallOptions": {0: ("string",), 2: ("string",), 4: ("vector", 4), 5: ("vector", 1)},
    "StablehloReduceOptions": {0: ("vector", 8)},
    "StablehloSliceOptions": {0: ("vector", 8), 1: ("vector", 8), 2: ("vector", 8)},
    "StablehloConvolutionOptions": {
        0: ("vector", 8), 1: ("vector", 8), 2: ("vector", 8), 3: ("vector", 8), 4: ("vector", 1), 7: ("vector", 8),
        10: ("vector", 8), 13: ("vector", 8), 16: ("vector", 4),
    },
    "StablehloScatterOptions": {1: ("vector", 8), 2: ("vector", 8), 3: ("vector", 8)},
    "StablehloCaseOptions": {0: ("vector", 4)},
    "ConcatEmbeddingsOptions": {1: ("vector", 4), 2: ("vector", 4)},
    "FullyConnectedOptions": {5: ("vector", 1)},
    "ReshapeOptions": {0: ("vector", 4)},
    "SqueezeOptions": {0: ("vector", 4)},
    "VarHandleOptions": {0: ("string",), 1: ("string",)},
    "BucketizeOptions": {0: ("vector", 4)},
    "OperatorCode": {1: ("string",)},
    "StableHLOCompositeOptions": {0: ("string",), 2: ("vector", 1)},
    "Operator": {
        1: ("vector", 4), 2: ("vector", 4), 4: ("union", "BuiltinOptions"), 5: ("vector", 1), 7: ("vector", 1),
        8: ("vector", 4), 12: ("union", "BuiltinOptions2"),
    },
    "SubGraph": {
        0: ("tables", "Tensor"), 1: ("vector", 4), 2: ("vector", 4), 3: ("tables", "Operator"), 4: ("string",),
    },
    "Buffer": {0: ("vector", 1)},
    "ExternalBufferGroup": {0: ("string",)},
    "ExternalBuffer": {4: ("string",)},
    "Metadata": {0: ("string",)},
    "TensorMap": {0: ("string",)},
    "SignatureDef": {0: ("tables", "TensorMap"), 1: ("tables", "TensorMap"), 2: ("string",)},
    "Model": {
        1: ("tables", "OperatorCode"), 2: ("tables", "SubGraph"), 3: ("string",), 4: ("tables", "Buffer"),
        5: ("vector", 4), 6: ("tables", "Metadata"), 7: ("tables", "SignatureDef"),
        8: ("tables", "ExternalBufferGroup"), 9: ("tables", "ExternalBuffer"),
    },
}
_UNIONS: dict[str, dict[int, str]] = {
    "BuiltinOptions": {
        3: "ConcatEmbeddingsOptions", 8: "FullyConnectedOptions", 17: "ReshapeOptions", 30: "SqueezeOptions",
        111: "VarHandleOptions", 115: "BucketizeOptions",
    },
    "BuiltinOptions2": {
        2: "StablehloBroadcastInDimOptions", 3: "StablehloSliceOptions", 4: "StablehloConvolutionOptions",
        5: "StablehloCustomCallOptions", 6: "StablehloReduceOptions", 7: "StablehloScatterOptions",
        9: "StablehloDynamicSliceOptions", 10: "StablehloPadOptions", 12: "StablehloDotGeneralOptions",
        13: "StablehloReduceWindowOptions", 16: "StablehloGatherOptions", 17: "StablehloTransposeOptions",
        21: "StableHLOCompositeOptions", 23: "StablehloCaseOptions",
    },
    "QuantizationDetails": {1: "CustomQuantization", 2: "BlockwiseQuantization", 3: "MultiAxisQuantization"},
    "SparseIndexVector": {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"},
}


def check_tflite(model: bytes | mmap.mmap | str | os.PathLike[str]) -> None:
    """Walk a .tflite file's structure as schema.fbs describes it (every table, vector, string and union
    member an interpreter can reach) and raise ModelError when anything points outside the file or at a
    tensor, buffer, subgraph or operator code that does not exist, or when shapes disagree (a tensor's with
    its data or its shape signature, a (de)quantize's, a convolution's channels). An interpreter trusts these:
    tflite-runtime 2.14 does not verify a file and dies with SIGSEGV on a damaged one, where this names
    the damage."""
    b = model if isinstance(model, (bytes, bytearray, mmap.mmap)) else _read_bytes(model)
    if len(b) < 8 or b[4:8] != b"TFL3":
        raise ModelError(f"expected a TFLite flatbuffer (identifier TFL3), received {bytes(b[4:8])!r}")
    root = _table_at(b, 0, "root table")
    _check_table(b, root, "Model")
    codes = _tables(b, root, 1, "operator code list")
    n_codes = len(codes)
    builtin = [_builtin_code(b, code) for code in codes]
    buffers = _tables(b, root, 4, "buffer list")
    for buf in buffers:
        _buffer_span(b, buf, "buffer")
    subgraphs = _tables(b, root, 2, "subgraph list")
    if not subgraphs:
        raise ModelError("expected a TFLite model with at least one subgraph, received none: the file is damaged "
                         "or not a model; copy it again or re-export it")
    n_tensors = []
    for sg in subgraphs:
        tensors = _tables(b, sg, 0, "tensor list")
        for t in tensors:
            buf_pos = _field_pos(b, t, 2)
            if buf_pos is not None and _u32(b, buf_pos, "tensor buffer") >= max(len(buffers), 1):
                raise _out_of_range("buffer index of a tensor", buf_pos)
            if _field_pos(b, t, 7) is not None:  # the shape an engine allocates, against the one the converter saw
                shape, signature = _ints(b, t, 0, "tensor shape"), _ints(b, t, 7, "tensor shape signature")
                if len(signature) != len(shape) or any(s not in (-1, d) for s, d in zip(signature, shape)):
                    raise _inconsistent(f"tensor of shape {shape} with the shape signature {signature}", t)
            if buf_pos is not None and _field_pos(b, t, 6) is None:  # a dense tensor with data: its bytes
                item = _ITEM_BYTES.get(_tensor_type(b, t))
                n = _elements(b, t)
                size = _buffer_span(b, buffers[_u32(b, buf_pos, "tensor buffer")], "buffer")[1] if buffers else 0
                if size and item and n is not None and size != n * item:
                    raise _inconsistent(f"tensor of {n} elements x {item} bytes holds {size} bytes", t)
        n_t = len(tensors)
        n_tensors.append(n_t)
        for what, field in (("subgraph input", 1), ("subgraph output", 2)):
            if any(not 0 <= i < n_t for i in _ints(b, sg, field, what)):
                raise _out_of_range(f"{what} index", sg)
        for op in _tables(b, sg, 3, "operator list"):
            code_pos = _field_pos(b, op, 0)
            if code_pos is not None and _u32(b, code_pos, "operator code index") >= n_codes:
                raise _out_of_range("operator code index", code_pos)
            for what, field in (("operator input", 1), ("operator output", 2), ("operator intermediate", 8)):
                if any(not -1 <= i < n_t for i in _ints(b, op, field, what)):
                    raise _out_of_range(f"{what} index", op)
            index = _u32(b, code_pos, "operator code index") if code_pos is not None else 0
            # an engine sizes what a (de)quantize writes (XNNPACK: static weights) by the output's shape
            if index < n_codes and builtin[index] in _SAME_SHAPE_OPS:
                ins, outs = _ints(b, op, 1, "operator input")[:1], _ints(b, op, 2, "operator output")[:1]
                counts = {_elements(b, tensors[i]) for i in ins + outs if i >= 0}
                if None not in counts and len(counts) > 1:
                    raise _inconsistent(f"(de)quantize operator that changes its tensor's element count {sorted(counts)}", op)
            elif index < n_codes and builtin[index] == _CONV_2D:
                _check_conv_channels(b, tensors, _ints(b, op, 1, "operator input"), op)
    for sig in _tables(b, root, 7, "signature list"):
        sg_pos = _field_pos(b, sig, 4)
        sg_index = _u32(b, sg_pos, "signature subgraph index") if sg_pos is not None else 0
        if sg_index >= len(subgraphs):
            raise _out_of_range("signature's subgraph index", sig)
        for field in (0, 1):
            for tmap in _tables(b, sig, field, "signature tensor list"):
                t_pos = _field_pos(b, tmap, 1)
                if t_pos is not None and _u32(b, t_pos, "signature tensor index") >= n_tensors[sg_index]:
                    raise _out_of_range("signature's tensor index", tmap)


def _check_conv_channels(b: bytes | mmap.mmap, tensors: list[int], inputs: list[int], op: int) -> None:
    """A CONV_2D's input channels are a whole number of its filter's (the groups), and its output channels
    a whole number of groups: tflite-runtime 2.14 loads a file whose input shape breaks this and dies with
    SIGFPE on the first invoke."""
    if len(inputs) < 2 or min(inputs[:2]) < 0:
        return
    x, w = _ints(b, tensors[inputs[0]], 0, "tensor shape"), _ints(b, tensors[inputs[1]], 0, "tensor shape")
    if len(x) != 4 or len(w) != 4 or min(x[3], *w) < 0:  # another layout, or a dynamic dimension
        return
    c_in, f_in, f_out = x[3], w[3], w[0]
    if c_in <= 0 or f_in <= 0 or c_in % f_in or f_out % (c_in // f_in):
        raise _inconsistent(f"convolution of {c_in} input channels with a filter of shape {w}", op)


def _check_table(b: bytes | mmap.mmap, table: int, name: str) -> None:
    """``table`` (a ``name`` of schema.fbs) and everything it references lie inside the file, each field
    inside its table. Offsets to tables only point forward, so this ends; a vector of n tables costs n."""
    _whole_table(b, table, f"{name} table")
    for field, kind in _OFFSET_FIELDS.get(name, {}).items():
        pos = _field_pos(b, table, field)
        if pos is None:
            continue
        what = f"{name} field {field}"
        if kind[0] == "vector":
            _vector(b, pos, kind[1], what)
        elif kind[0] == "string":  # bytes and a terminating zero
            start, n = _vector(b, pos, 1, what)
            if start + n >= len(b):
                raise _damaged(b, what, start)
        elif kind[0] == "table":
            _check_table(b, _table_at(b, pos, what), kind[1])
        elif kind[0] == "tables":
            start, n = _vector(b, pos, 4, what)
            for i in range(n):
                _check_table(b, _table_at(b, start + 4 * i, what), kind[1])
        else:  # a union: its type is the field before it; a type unknown here is checked as a table of scalars
            type_pos = _field_pos(b, table, field - 1)
            member = _unpack(b, "<B", type_pos, what) if type_pos is not None else 0
            if member:
                _check_table(b, _table_at(b, pos, what), _UNIONS[kind[1]].get(member, f"{kind[1]} {member}"))


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"expected a readable model file, could not read {path} ({exc.strerror or exc})") from exc


# --- ONNX (protobuf: ModelProto.metadata_props = field 14, StringStringEntryProto key=1 value=2)


class _Truncated(Exception):
    """Internal: a protobuf field runs past the end of its message."""


def _varint(b: memoryview, o: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 70, 7):  # at most 10 bytes
        if o >= len(b):
            raise _Truncated(f"a number at byte {o} runs past the end")
        byte = b[o]
        o += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, o
    raise ModelError(f"expected an ONNX protobuf, found a number longer than 10 bytes at byte {o}; "
                     "the file is damaged: copy it again or re-export it")


def _fields(b: memoryview):
    """Yield (field number, wire type, value) of one protobuf message (bounds-checked)."""
    o = 0
    while o < len(b):
        at = o
        key, o = _varint(b, o)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ModelError(f"expected an ONNX protobuf, found field number 0 at byte {at}; the file is "
                             "damaged: copy it again or re-export it")
        if wt == 0:
            val, o = _varint(b, o)
        elif wt in (1, 2, 5):
            if wt == 2:
                n, o = _varint(b, o)
            else:
                n = 8 if wt == 1 else 4
            if o + n > len(b):
                raise _Truncated(f"field {num} at byte {at} needs {n} bytes, {len(b) - o} are left")
            val, o = b[o : o + n], o + n
        else:
            raise ModelError(f"expected an ONNX protobuf, found wire type {wt} at byte {at}; the file is "
                             "damaged: copy it again or re-export it")
        yield num, wt, val


def read_onnx_metadata(model: bytes | str | os.PathLike[str]) -> dict[str, str]:
    """``ModelProto.metadata_props`` of an .onnx file as {key: value} (ModelError when damaged)."""
    b = model if isinstance(model, (bytes, bytearray)) else _read_bytes(model)
    out: dict[str, str] = {}
    try:
        for num, wt, val in _fields(memoryview(b)):
            if num == 14 and wt == 2:
                kv = {n: v for n, w, v in _fields(val) if w == 2}
                out[bytes(kv.get(1, b"")).decode()] = bytes(kv.get(2, b"")).decode()
    except _Truncated as exc:
        raise ModelError(f"expected a complete ONNX model file, but {exc}: the file is truncated or damaged; "
                         "copy it again or re-export it") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"expected UTF-8 metadata in the ONNX model file, could not decode it ({exc}); "
                         "the file is damaged: copy it again or re-export it") from exc
    return out


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo | None:
    """The edgeport :class:`ModelInfo` embedded in a .tflite/.onnx file, or None."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".tflite":
        raw = read_tflite_metadata(p).get(METADATA_KEY)
    elif suffix == ".onnx":
        raw = read_onnx_metadata(p).get(METADATA_KEY)
    else:
        raise ModelError(f"expected a .tflite or .onnx file, received {p.name}")
    if not raw:
        return None
    try:
        return ModelInfo.from_json(raw, str(p))
    except RecursionError:  # JSON nested deeper than Python's parser goes
        raise ModelError(f"expected edgeport metadata JSON in {p}, received nesting too deep to read; "
                         "the file is damaged: copy it again or re-export it") from None
