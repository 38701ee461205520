"""Read the edgeport metadata embedded in .tflite and .onnx files, in pure Python.

No TensorFlow, flatbuffers or onnx package is needed: a device with only
numpy, OpenCV and one engine can read labels and the input contract from the
model file alone. Writing happens in ``edgeport.export``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from edgeport.contract import METADATA_KEY, ModelInfo
from edgeport.errors import ModelError

# --- TFLite (FlatBuffers, schema.fbs: Model.metadata = field 6, Model.buffers = field 4)


def _u32(b: bytes, o: int) -> int:
    return struct.unpack_from("<I", b, o)[0]


def _field_pos(b: bytes, table: int, field: int) -> int | None:
    vtable = table - struct.unpack_from("<i", b, table)[0]
    vsize = struct.unpack_from("<H", b, vtable)[0]
    slot = 4 + 2 * field
    if slot >= vsize:
        return None
    off = struct.unpack_from("<H", b, vtable + slot)[0]
    return table + off if off else None


def _vector(b: bytes, pos: int) -> tuple[int, int]:
    """(start, length) of the vector referenced at ``pos``."""
    start = pos + _u32(b, pos)
    return start + 4, _u32(b, start)


def _table_at(b: bytes, pos: int) -> int:
    return pos + _u32(b, pos)


def read_tflite_metadata(model: bytes | str | os.PathLike[str]) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a .tflite file as {name: bytes}."""
    b = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    if len(b) < 8 or b[4:8] != b"TFL3":
        raise ModelError(f"expected a TFLite flatbuffer (identifier TFL3), received {b[4:8]!r}")
    root = _table_at(b, 0)
    meta_pos = _field_pos(b, root, 6)
    buf_pos = _field_pos(b, root, 4)
    if meta_pos is None or buf_pos is None:
        return {}
    bufs_start, n_bufs = _vector(b, buf_pos)
    metas_start, n_metas = _vector(b, meta_pos)
    out: dict[str, bytes] = {}
    for i in range(n_metas):
        entry = _table_at(b, metas_start + 4 * i)
        name_pos = _field_pos(b, entry, 0)
        idx_pos = _field_pos(b, entry, 1)
        if name_pos is None:
            continue
        s_start, s_len = _vector(b, name_pos)
        name = b[s_start : s_start + s_len].decode("utf-8", "replace")
        idx = _u32(b, idx_pos) if idx_pos is not None else 0
        if idx >= n_bufs:
            continue
        buf = _table_at(b, bufs_start + 4 * idx)
        data_pos = _field_pos(b, buf, 0)
        off_pos, size_pos = _field_pos(b, buf, 1), _field_pos(b, buf, 2)
        if data_pos is not None:
            d_start, d_len = _vector(b, data_pos)
            out[name] = bytes(b[d_start : d_start + d_len])
        elif off_pos is not None and size_pos is not None:  # >2 GB models keep data after the flatbuffer
            off = struct.unpack_from("<Q", b, off_pos)[0]
            size = struct.unpack_from("<Q", b, size_pos)[0]
            out[name] = bytes(b[off : off + size])
        else:
            out[name] = b""
    return out


# --- ONNX (protobuf: ModelProto.metadata_props = field 14, StringStringEntryProto key=1 value=2)


def _varint(b: bytes, o: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = b[o]
        o += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, o
        shift += 7


def _fields(b: bytes):
    """Yield (field number, wire type, value) of one protobuf message."""
    o = 0
    while o < len(b):
        key, o = _varint(b, o)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, o = _varint(b, o)
        elif wt == 1:
            val, o = b[o : o + 8], o + 8
        elif wt == 2:
            n, o = _varint(b, o)
            val, o = b[o : o + n], o + n
        elif wt == 5:
            val, o = b[o : o + 4], o + 4
        else:
            raise ModelError(f"expected an ONNX protobuf, found wire type {wt} at byte {o}")
        yield num, wt, val


def read_onnx_metadata(model: bytes | str | os.PathLike[str]) -> dict[str, str]:
    """``ModelProto.metadata_props`` of an .onnx file as {key: value}."""
    b = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    out: dict[str, str] = {}
    try:
        for num, wt, val in _fields(memoryview(b).tobytes() if isinstance(b, bytearray) else b):
            if num == 14 and wt == 2:
                kv = {n: v for n, w, v in _fields(val) if w == 2}
                out[kv.get(1, b"").decode()] = kv.get(2, b"").decode()
    except (IndexError, UnicodeDecodeError) as exc:
        raise ModelError(f"expected an ONNX model file, could not parse it ({exc})") from exc
    return out


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo | None:
    """The edgeport :class:`ModelInfo` embedded in a .tflite/.onnx file, or None."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".tflite":
        raw = read_tflite_metadata(p).get(METADATA_KEY)
        return ModelInfo.from_json(raw, str(p)) if raw else None
    if suffix == ".onnx":
        raw = read_onnx_metadata(p).get(METADATA_KEY)
        return ModelInfo.from_json(raw, str(p)) if raw else None
    raise ModelError(f"expected a .tflite or .onnx file, received {p.name}")
