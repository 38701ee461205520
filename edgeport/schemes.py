"""The scheme catalogue: every export target edgeport knows, as data (no TensorFlow).

A scheme is one (format, precision) pair with a name, a file name in the
export directory, an honest label of what it computes in, and its place in
the runtime's automatic choice. Names follow one grammar: the precision
alone for TFLite (``int8``), ``onnx`` or ``onnx-<precision>`` for ONNX.

Export, runtime and benchmarks all read this one table, and the export
reads a scheme's behaviour from it (its I/O, whether it is calibrated,
searchable, which activation-range rules it offers, whether an op without
a kernel may stay float), never from its name: adding a scheme is one
:class:`SchemeSpec` here plus its converter entry in
``edgeport.export.converters``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterable

from edgeport.errors import ConfigError
from edgeport.registry import Registry


class Format(str, Enum):
    """A model file format and the engines' world it belongs to."""

    TFLITE = "tflite"
    ONNX = "onnx"


class Precision(str, Enum):
    """What a scheme stores and computes in."""

    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    INT16X8 = "int16x8"


#: file ending -> format
SUFFIX_FORMAT = {".tflite": Format.TFLITE.value, ".onnx": Format.ONNX.value}


@dataclass(frozen=True)
class SchemeSpec:
    """One export target, fully described."""

    name: str
    file: str  #: file name inside the export directory
    format: str  #: a :class:`Format` value
    precision: str  #: a :class:`Precision` value
    label: str  #: what the file really computes in, for people (bench, run, README)
    description: str  #: how export makes it
    calibrated: bool = False  #: needs the calibration images
    reference: bool = False  #: float32: must match Keras to the export tolerance (and bench's reference)
    rank: int = 99  #: the runtime's automatic choice for an export directory: lower first
    integer_io: bool = False  #: input/output tensors in the integer type ``--io-dtype`` names
    int8_weights: bool = False  #: stores int8 weights (a model with none large enough is effectively float)
    #: activation-range rules ``--calibration-method`` may pick for it (:mod:`edgeport.export.int8.ranges`),
    #: the first its default; empty: its ranges are not selectable
    range_rules: tuple[str, ...] = ()
    #: the int8 budget search can repair its full-integer model (other ranges, ops kept float)
    searchable: bool = False
    #: an op without a kernel at this precision stays float (the converter's fallback) instead of making
    #: the scheme unsupported for the model
    float_fallback: bool = False


SCHEMES: Registry[SchemeSpec] = Registry("export scheme")

for _spec in (
    SchemeSpec("fp32", "model_fp32.tflite", "tflite", "fp32", "float32", "float32 reference",
               reference=True, rank=1),
    SchemeSpec("fp16", "model_fp16.tflite", "tflite", "fp16", "float16 weights (float32 compute on CPU)",
               "float16 weights, float32 compute and I/O", rank=2),
    SchemeSpec("dynamic", "model_dynamic.tflite", "tflite", "dynamic", "dynamic (int8 weights, float activations)",
               "dynamic range: int8 weights, float activations and I/O", rank=3, int8_weights=True),
    SchemeSpec("int8", "model_int8.tflite", "tflite", "int8", "int8 (weights and activations)",
               "full integer int8 (calibrated), integer I/O per --io-dtype", calibrated=True, rank=0,
               integer_io=True, int8_weights=True,
               range_rules=("minmax", "percentile", "mse", "narrowest", "entropy"), searchable=True),
    SchemeSpec("int16x8", "model_int16x8.tflite", "tflite", "int16x8", "int16x8 (int8 weights, int16 activations)",
               "int16 activations, int8 weights (calibrated), float32 I/O", calibrated=True, rank=4,
               int8_weights=True, float_fallback=True),
    SchemeSpec("onnx", "model.onnx", "onnx", "fp32", "float32", "float32 ONNX (tf2onnx), dynamic batch",
               reference=True, rank=5),
    SchemeSpec("onnx-fp16", "model_fp16.onnx", "onnx", "fp16", "float16 (weights and activations)",
               "float16 internals, float32 I/O", rank=7),
    SchemeSpec("onnx-int8", "model_int8.onnx", "onnx", "int8", "int8 (weights and activations, QDQ)",
               "static QDQ int8 (calibrated, per-channel 7-bit-range weights), float32 I/O",
               calibrated=True, rank=6, int8_weights=True, range_rules=("minmax", "percentile", "entropy"),
               searchable=True),
):
    SCHEMES.register(_spec.name)(_spec)

#: every scheme, in the order export writes and reports them
ALL_SCHEMES: tuple[str, ...] = SCHEMES.in_order()

#: other spellings people and older files use for a precision
_ALIASES = {"float32": "fp32", "float16": "fp16", "dynamic_range": "dynamic", "drq": "dynamic",
            "full_int8": "int8", "int16": "int16x8"}


def get_scheme(name: str) -> SchemeSpec:
    """The :class:`SchemeSpec` called ``name`` (unknown -> ConfigError listing the known ones)."""
    return SCHEMES.get(name)


def parse_schemes(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """'int8, onnx' (or a list, or 'all'/None) -> validated scheme names in export order."""
    if text is None:
        return ALL_SCHEMES
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    names = [s.strip() for s in items if s.strip()]
    if not names or names == ["all"]:
        return ALL_SCHEMES
    unknown = [n for n in names if n not in SCHEMES]
    if unknown:
        raise ConfigError(
            f"unknown export scheme(s) {', '.join(repr(u) for u in unknown)}; expected a comma-separated list of: "
            f"{', '.join(ALL_SCHEMES)} (or 'all')"
        )
    return tuple(n for n in ALL_SCHEMES if n in names)


def precision_of(scheme: str) -> str:
    """The precision behind a scheme name or alias: 'onnx' -> fp32, 'onnx-int8' -> int8, 'float16' -> fp16."""
    s = (scheme or "").strip().lower()
    if s in SCHEMES:
        return SCHEMES.get(s).precision
    for prefix in ("onnx-", "onnx_", "tflite-", "tflite_"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    return _ALIASES.get(s, s)


def spec_for(scheme: str, fmt: str) -> SchemeSpec | None:
    """The catalogue entry of ``scheme`` in format ``fmt`` (by name, else by precision), or None."""
    if scheme in SCHEMES and SCHEMES.get(scheme).format == fmt:
        return SCHEMES.get(scheme)
    p = precision_of(scheme)
    return next((SCHEMES.get(n) for n in ALL_SCHEMES
                 if SCHEMES.get(n).format == fmt and SCHEMES.get(n).precision == p), None)


def scheme_from_filename(name: str) -> str:
    """The scheme a file name suggests: model_fp16.tflite -> fp16, model_int8.onnx -> onnx-int8."""
    p = Path(name)
    fmt = SUFFIX_FORMAT.get(p.suffix.lower())
    known = next((n for n in ALL_SCHEMES if SCHEMES.get(n).file == p.name), None)
    if known:
        return known
    stem = p.stem.lower()
    m = re.match(r"^model(?:_(.+))?$", stem)
    precision = precision_of(m.group(1) or "fp32") if m else None
    if precision is None:
        precision = next((precision_of(s) for s in ("int16x8", "int8", "fp16", "fp32", "dynamic", "float16", "float32")
                          if re.search(rf"(^|[_\-.]){s}($|[_\-.])", stem)), stem)
    spec = spec_for(precision, fmt) if fmt else None
    return spec.name if spec else precision


def precision_label(scheme: str, fmt: str, entry: dict | None = None) -> str:
    """What an artifact computes in, for people: the export's own word (manifest ``precision``) wins."""
    if entry and isinstance(entry.get("precision"), str) and entry["precision"]:
        return entry["precision"]
    spec = spec_for(scheme, fmt) or next((spec_for(scheme, f.value) for f in Format if spec_for(scheme, f.value)), None)
    return spec.label if spec else (scheme or "unknown")


def searchable_schemes() -> tuple[str, ...]:
    """The schemes whose int8 the budget search can repair, in export order."""
    return tuple(n for n in ALL_SCHEMES if SCHEMES.get(n).searchable)


def rank_of(scheme: str, fmt: str) -> int:
    """The runtime's preference for an artifact (lower first); unknown schemes come last."""
    spec = spec_for(scheme, fmt)
    return spec.rank if spec else len(SCHEMES) + 1
