"""The artifacts of an export directory, with an honest precision label each.

An export written by ``edgeport export`` lists them in ``manifest.json``; a
plain folder of ``.tflite``/``.onnx`` files works too (the scheme then comes
from the file's embedded edgeport metadata, else from its name).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgeport.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FORMATS = {".tflite": "tflite", ".onnx": "onnx"}

#: What a scheme stores and computes in, per format. A dynamic-range model is
#: never "int8": its activations stay float.
_PRECISION = {
    ("fp32", "tflite"): "float32",
    ("fp32", "onnx"): "float32",
    ("fp16", "tflite"): "float16 weights (float32 compute on CPU)",
    ("fp16", "onnx"): "float16 (weights and activations)",
    ("dynamic", "tflite"): "dynamic (int8 weights, float activations)",
    ("dynamic", "onnx"): "dynamic (int8 weights, float activations)",
    ("int8", "tflite"): "int8 (weights and activations)",
    ("int8", "onnx"): "int8 (weights and activations, QDQ)",
    ("int16x8", "tflite"): "int16x8 (int8 weights, int16 activations)",
}
_ALIASES = {"float32": "fp32", "float16": "fp16", "dynamic_range": "dynamic", "drq": "dynamic",
            "full_int8": "int8", "int16": "int16x8"}


@dataclass(frozen=True)
class Artifact:
    """One model file to benchmark."""

    file: str
    path: str
    scheme: str
    format: str
    bytes: int
    precision: str
    status: str = "ok"
    reason: str = ""
    manifest: dict = field(default_factory=dict, compare=False)


def normalise_scheme(scheme: str) -> str:
    """The numeric scheme behind a name: "onnx" -> fp32, "onnx-int8" -> int8, "float16" -> fp16."""
    s = (scheme or "").strip().lower()
    if s == "onnx":
        return "fp32"
    for prefix in ("onnx-", "onnx_", "tflite-", "tflite_"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    return _ALIASES.get(s, s)


def precision_label(scheme: str, fmt: str, manifest_entry: dict | None = None) -> str:
    """A human label of what the scheme really computes in.

    The export's own description in the manifest entry (``precision`` or
    ``description``) wins; an ONNX "int8" artifact whose manifest says it was
    quantized dynamically is labelled dynamic.
    """
    entry = manifest_entry or {}
    for key in ("precision", "description"):
        if entry.get(key):
            return str(entry[key])
    s = normalise_scheme(scheme)
    method = str(entry.get("quantization", entry.get("method", ""))).lower()
    if s == "int8" and "dynamic" in method:
        s = "dynamic"
    return _PRECISION.get((s, fmt), scheme or "unknown")


def scheme_from_filename(name: str) -> str:
    """model_fp16.tflite -> fp16; model.onnx -> fp32; anything else -> the stem."""
    stem = Path(name).stem.lower()
    m = re.match(r"^model(?:_(.+))?$", stem)
    if m:
        return normalise_scheme(m.group(1) or "fp32")
    for s in ("int16x8", "int8", "fp16", "fp32", "dynamic", "float16", "float32"):
        if re.search(rf"(^|[_\-.]){s}($|[_\-.])", stem):
            return normalise_scheme(s)
    return stem


def read_manifest(export_dir: str | Path) -> dict | None:
    """manifest.json of an export directory, or None when there is none."""
    p = Path(export_dir) / "manifest.json"
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except ValueError as exc:
        raise DataError(f"expected JSON in {p}, received unreadable text ({exc}); re-run `edgeport export`") from exc
    if not isinstance(data, dict) or not isinstance(data.get("artifacts", []), list):
        raise DataError(f"expected a manifest with an 'artifacts' list in {p}; re-run `edgeport export`")
    return data


def _embedded_scheme(path: Path) -> str | None:
    try:
        from edgeport.metadata import read_model_info

        info = read_model_info(path)
    except Exception:  # noqa: BLE001 - a corrupt file is reported when it is run, not here
        return None
    return info.scheme if info and info.scheme else None


def find_artifacts(export_dir: str | Path, schemes: tuple[str, ...] = ()) -> tuple[list[Artifact], dict | None]:
    """The artifacts to benchmark and the manifest (None for a plain folder).

    Manifest entries whose export failed or whose file is missing are kept
    with status "failed" so the report shows them.
    """
    root = Path(export_dir)
    if not root.is_dir():
        raise DataError(
            f"expected an export directory (from `edgeport export`) or a folder of .tflite/.onnx files, "
            f"but '{export_dir}' is not a directory"
        )
    manifest = read_manifest(root)
    found: list[Artifact] = []
    if manifest is not None:
        for entry in manifest.get("artifacts", []):
            file = str(entry.get("file", ""))
            path = root / file
            fmt = entry.get("format") or FORMATS.get(path.suffix.lower(), "unknown")
            scheme = str(entry.get("scheme") or scheme_from_filename(file))
            status, reason = "ok", ""
            if entry.get("status", "ok") != "ok":
                status, reason = "failed", f"export failed: {entry.get('reason') or 'no reason given'}"
            elif not path.is_file():
                status, reason = "failed", f"file missing: {path}"
            size = path.stat().st_size if path.is_file() else int(entry.get("bytes") or 0)
            found.append(Artifact(file, str(path), scheme, fmt, size, precision_label(scheme, fmt, entry),
                                  status, reason, dict(entry)))
        listed = {a.file for a in found}
        extra = sorted(p.name for p in root.iterdir() if p.suffix.lower() in FORMATS and p.name not in listed)
        if extra:
            log.info("not in manifest.json, not benchmarked: %s", ", ".join(extra))
    else:
        for p in sorted(root.iterdir()):
            fmt = FORMATS.get(p.suffix.lower())
            if fmt is None or not p.is_file():
                continue
            scheme = _embedded_scheme(p) or scheme_from_filename(p.name)
            found.append(Artifact(p.name, str(p), scheme, fmt, p.stat().st_size, precision_label(scheme, fmt)))
    if not found:
        raise DataError(
            f"expected .tflite/.onnx artifacts (or a manifest.json listing them) in {root}, found none; "
            "run `edgeport export RUN_DIR --out EXPORT_DIR` first"
        )
    if schemes:
        kept = []
        for s in schemes:  # the exact scheme name, else every scheme of that numeric kind
            exact = [a for a in found if a.scheme.lower() == s.lower()]
            kept += exact or [a for a in found if normalise_scheme(a.scheme) == normalise_scheme(s)]
        kept = [a for a in found if a in kept]  # manifest order, no repeats
        if not kept:
            raise ConfigError(
                f"expected --schemes among {', '.join(sorted({a.scheme for a in found}))}, received {', '.join(schemes)}"
            )
        found = kept
    return found, manifest
