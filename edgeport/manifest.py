"""What an export directory is: manifest.json's schema, its artifacts and their hashes (no TensorFlow).

``edgeport export`` writes ``manifest.json`` (schema :data:`SCHEMA_VERSION`)
beside the model files; ``edgeport run`` and ``edgeport bench`` read it back
here, through one validating reader. A manifest is untrusted input: every
field is type-checked, every artifact path must stay inside the export
directory, and a file that runs must hash to what the manifest recorded.
A plain folder of ``.tflite``/``.onnx`` files (no manifest) is an export too;
each file's scheme then comes from its embedded metadata or its name.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edgeport.contract import InputContract, check_labels
from edgeport.errors import ModelError
from edgeport.files import sha256_file, write_json
from edgeport.schemes import SUFFIX_FORMAT, precision_label, scheme_from_filename

MANIFEST_FILE = "manifest.json"
#: 2: schema_version, paths relative to the export, status 'unsupported', quantization entries
SCHEMA_VERSION = 2
#: artifact statuses: ok (deployable), failed (conversion or verification failed: see reason),
#: unsupported (this model has an op the scheme cannot represent; not an error of the export)
OK, FAILED, UNSUPPORTED = "ok", "failed", "unsupported"
STATUSES = (OK, FAILED, UNSUPPORTED)
#: where export moves a file that converted but failed verification (out of a device's copy)
FAILED_DIR = "failed"

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Artifact:
    """One model file of an export directory."""

    file: str  #: as the manifest lists it, relative to the export directory ('failed/x' possible)
    path: Path
    scheme: str
    format: str
    status: str = OK
    reason: str = ""
    sha256: str | None = None  #: what export recorded (None in a plain folder)
    bytes: int | None = None
    precision: str = ""  #: what it computes in, for people
    entry: dict = field(default_factory=dict, compare=False, repr=False)  #: the whole manifest entry

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.json."""

    path: Path
    schema_version: int
    labels: tuple[str, ...] | None
    input: InputContract | None
    artifacts: tuple[Artifact, ...]
    data: dict = field(repr=False)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def run_dir(self) -> Path | None:
        """The build run the export came from (recorded relative to the export; absolute in old manifests)."""
        r = self.data.get("run_dir")
        return self.directory / r if isinstance(r, str) and r else None

    def entry_for(self, path: str | os.PathLike[str]) -> Artifact | None:
        """The artifact listed for the file at ``path`` (compared as resolved paths), or None."""
        target = Path(path).resolve()
        return next((a for a in self.artifacts if a.path.resolve() == target), None)


# --- paths and hashes ---------------------------------------------------------------------------


def artifact_path(directory: str | os.PathLike[str], file: object, where: str = MANIFEST_FILE) -> Path:
    """The path of a manifest ``file`` entry, confined to ``directory``.

    Accepted: a plain relative path of normal names ('model_int8.tflite',
    'failed/model_int8.tflite'). Refused (ModelError): absolute paths, '..',
    '.', empty parts, backslashes, and anything that resolves outside the
    directory (a symbolic link out of it included).
    """
    if not isinstance(file, str) or not file:
        raise ModelError(f"expected each artifact 'file' in {where} to be a file name, received {file!r}")
    parts = PurePosixPath(file).parts
    if ("\\" in file or file.startswith("/") or PurePosixPath(file).is_absolute() or not parts
            or any(p in ("", ".", "..") for p in file.split("/")) or re.match(r"^[A-Za-z]:", file)):
        raise ModelError(
            f"expected each artifact 'file' in {where} to be a plain name inside the export directory, "
            f"received {file!r}; a manifest may not point outside its folder (re-export, or fix the entry)"
        )
    root = Path(directory).resolve()
    path = (root / Path(*parts))
    if root not in path.resolve().parents:
        raise ModelError(f"expected {file!r} listed in {where} to stay inside {root}, but it resolves to "
                         f"{path.resolve()} (a link out of the folder?); copy the real file into the export")
    return path


def same_sha256(a: str | None, b: str | None) -> bool:
    """Hex digests compared without regard to case."""
    return bool(a) and bool(b) and str(a).lower() == str(b).lower()


def verify_sha256(path: str | os.PathLike[str], expected: str | None, where: str = MANIFEST_FILE) -> str:
    """The file's sha256; ModelError when ``expected`` is given and differs (case-insensitive)."""
    actual = sha256_file(path)
    if expected and not same_sha256(actual, expected):
        name = Path(path).name
        raise ModelError(
            f"expected {name} to have the sha256 that {where} records ({str(expected)[:16]}...), "
            f"received {actual[:16]}...: the file was modified or comes from another export; "
            "copy the whole export directory again or re-run `edgeport export`"
        )
    return actual


# --- reading ------------------------------------------------------------------------------------


def _bad(where: str, what: str, received: object) -> ModelError:
    shown = str(received)
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return ModelError(f"expected {what} in {where}, received {shown}; re-run `edgeport export` to write it again")


def _entry(directory: Path, raw: object, i: int, where: str) -> Artifact:
    if not isinstance(raw, dict):
        raise _bad(where, f"artifact {i} to be an object", type(raw).__name__)
    path = artifact_path(directory, raw.get("file"), where)
    file = str(raw["file"])
    fmt = raw.get("format") or SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt not in SUFFIX_FORMAT.values() or SUFFIX_FORMAT.get(path.suffix.lower()) != fmt:
        raise _bad(where, f"artifact {file!r} to be a .tflite or .onnx file with a matching 'format'", fmt)
    scheme = raw.get("scheme") or scheme_from_filename(file)
    if not isinstance(scheme, str):
        raise _bad(where, f"'scheme' of {file!r} to be text", scheme)
    status = raw.get("status", OK)
    if status not in STATUSES:
        raise _bad(where, f"'status' of {file!r} to be one of {', '.join(STATUSES)}", status)
    sha = raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _HEX64.match(sha)):
        raise _bad(where, f"'sha256' of {file!r} to be 64 hex digits", sha)
    size = raw.get("bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise _bad(where, f"'bytes' of {file!r} to be a non-negative integer", size)
    reason = raw.get("reason", "")
    if not isinstance(reason, str):
        raise _bad(where, f"'reason' of {file!r} to be text", reason)
    return Artifact(file=file, path=path, scheme=scheme, format=fmt, status=status, reason=reason,
                    sha256=sha, bytes=size, precision=precision_label(scheme, fmt, raw), entry=dict(raw))


def parse_manifest(data: object, directory: str | os.PathLike[str], where: str = MANIFEST_FILE) -> Manifest:
    """Validate a manifest's JSON (raises ModelError naming the first problem)."""
    if not isinstance(data, dict):
        raise _bad(where, "a JSON object", type(data).__name__)
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _bad(where, "'schema_version' to be a positive integer", version)
    if version > SCHEMA_VERSION:
        raise ModelError(f"expected a manifest of schema_version <= {SCHEMA_VERSION} in {where}, received "
                         f"{version}: it was written by a newer edgeport; upgrade edgeport on this device")
    arts = data.get("artifacts", [])
    if not isinstance(arts, list):
        raise _bad(where, "'artifacts' to be a list", type(arts).__name__)
    labels = check_labels(data["labels"], where) if data.get("labels") is not None else None
    contract = InputContract.from_dict(data["input"], where) if data.get("input") is not None else None
    root = Path(directory)
    artifacts = tuple(_entry(root, a, i, where) for i, a in enumerate(arts))
    return Manifest(path=root / MANIFEST_FILE, schema_version=version, labels=labels, input=contract,
                    artifacts=artifacts, data=data)


def read_manifest(directory: str | os.PathLike[str]) -> Manifest | None:
    """The validated manifest.json of an export directory, or None when there is none."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"expected JSON in {path}, could not read it ({exc}); re-run `edgeport export`") from exc
    except RecursionError:  # e.g. 100,000 nested brackets: no manifest export writes is nested that deep
        raise ModelError(f"expected a manifest JSON object in {path}, received JSON nested too deeply to read "
                         "(a damaged or hostile file); re-run `edgeport export`") from None
    return parse_manifest(data, directory, str(path))


def write_manifest(directory: str | os.PathLike[str], data: dict) -> Path:
    """Write ``data`` as the directory's manifest.json (atomically, schema_version set)."""
    return write_json(Path(directory) / MANIFEST_FILE, {"schema_version": SCHEMA_VERSION, **data})


def list_artifacts(directory: str | os.PathLike[str], manifest: Manifest | None = None,
                   embedded_scheme: Any = None) -> list[Artifact]:
    """Every artifact of an export directory: the manifest's entries (any status), else its model files.

    Without a manifest, each ``.tflite``/``.onnx`` file is an artifact whose
    scheme is ``embedded_scheme(path)`` (e.g. from the embedded metadata) when
    that returns one, else what its name suggests.
    """
    root = Path(directory)
    if manifest is None:
        manifest = read_manifest(root)
    if manifest is not None:
        return list(manifest.artifacts)
    found = []
    for p in sorted(root.iterdir()):
        fmt = SUFFIX_FORMAT.get(p.suffix.lower())
        if fmt is None or not p.is_file():
            continue
        scheme = (embedded_scheme(p) if embedded_scheme else None) or scheme_from_filename(p.name)
        found.append(Artifact(file=p.name, path=p, scheme=scheme, format=fmt, bytes=p.stat().st_size,
                              precision=precision_label(scheme, fmt)))
    return found
