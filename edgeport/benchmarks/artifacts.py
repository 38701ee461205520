"""The artifacts ``edgeport bench`` measures, read through the shared export-directory contract.

An export written by ``edgeport export`` lists them in ``manifest.json``; a
plain folder of ``.tflite``/``.onnx`` files works too (the scheme then comes
from the file's embedded edgeport metadata, else from its name). Entries whose
export failed, or whose file is missing, are kept as failed so the report
shows them (an ``unsupported`` scheme as not available); files beside the
manifest that it does not list are not measured.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from edgeport.errors import ConfigError, DataError, EdgeportError
from edgeport.manifest import FAILED, OK, UNSUPPORTED, Artifact, Manifest, list_artifacts, read_manifest
from edgeport.schemes import SUFFIX_FORMAT, precision_of

log = logging.getLogger(__name__)


def _embedded_scheme(path: Path) -> str | None:
    from edgeport.metadata import read_model_info

    try:
        info = read_model_info(path)
    except EdgeportError:  # a damaged file is reported when it is run, not here
        return None
    return info.scheme if info and info.scheme else None


def select_schemes(found: list[Artifact], schemes: tuple[str, ...]) -> list[Artifact]:
    """The artifacts named by ``schemes``: the exact scheme name, else every scheme of that precision."""
    if not schemes:
        return found
    kept: list[Artifact] = []
    for s in schemes:
        exact = [a for a in found if a.scheme.lower() == s.lower()]
        kept += exact or [a for a in found if precision_of(a.scheme) == precision_of(s)]
    kept = [a for a in found if a in kept]  # manifest order, no repeats
    if not kept:
        raise ConfigError(
            f"expected --schemes among {', '.join(sorted({a.scheme for a in found}))}, received {', '.join(schemes)}"
        )
    return kept


def find_artifacts(export_dir: str | Path, schemes: tuple[str, ...] = ()) -> tuple[list[Artifact], Manifest | None]:
    """The artifacts to benchmark (not-ok entries and missing files marked failed) and the manifest."""
    root = Path(export_dir)
    if not root.is_dir():
        raise DataError(
            f"expected an export directory (from `edgeport export`) or a folder of .tflite/.onnx files, "
            f"but '{export_dir}' is not a directory"
        )
    manifest = read_manifest(root)
    found = []
    for a in list_artifacts(root, manifest, embedded_scheme=_embedded_scheme):
        if a.status == UNSUPPORTED:  # the scheme cannot represent this model: nothing to run, nothing broken
            a = replace(a, reason=f"not supported by this model: {a.reason or 'no reason given'}")
        elif a.status != OK:
            a = replace(a, status=FAILED, reason=f"export {a.status}: {a.reason or 'no reason given'}")
        elif not a.path.is_file():
            a = replace(a, status=FAILED, reason=f"file missing: {a.file}")
        else:
            a = replace(a, bytes=a.path.stat().st_size)
        found.append(a)
    if manifest is not None:
        listed = {a.path.resolve() for a in found}
        extra = sorted(p.name for p in root.iterdir() if p.suffix.lower() in SUFFIX_FORMAT and p.resolve() not in listed)
        if extra:
            log.info("not in manifest.json, not benchmarked: %s", ", ".join(extra))
    if not found:
        raise DataError(
            f"expected .tflite/.onnx artifacts (or a manifest.json listing them) in {root}, found none; "
            "run `edgeport export RUN_DIR --out EXPORT_DIR` first"
        )
    return select_schemes(found, schemes), manifest
