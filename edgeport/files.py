"""Writing outputs so that a kill never leaves one half-written, and hashing them (stdlib only).

Every file edgeport writes for a user goes through :func:`atomic_write_bytes`
(or its text/JSON forms): the bytes land in a hidden temporary file beside the
target, are flushed to disk, and are renamed over the target in one step, so
a reader sees the old file or the new one, never a torn one.
:func:`replace_dir` does the same for a whole folder (an export), and
:func:`scratch_dir` is a temporary folder that is removed on every exit path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgeport.errors import ConfigError


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Lower-case hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_parent(path: Path) -> None:
    if not path.parent.is_dir():
        raise ConfigError(
            f"expected an existing folder to write {path.name} into, received {path.parent} which "
            f"{'is not a folder' if path.parent.exists() else 'does not exist'}; create it first"
        )


def check_out_folder(out: Path, holds: str) -> None:
    """Refuse an ``--out`` that is a file, or that sits where this user cannot create or write a folder,
    before any work is done. ``holds``: what the folder is for, as in "for the run"."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"expected --out to be a folder {holds}, received {out}, which is a file; "
                          "choose another --out")
    existing = next((a for a in (out, *out.parents) if a.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"expected --out in a folder this user can write, received {out} ({existing} is not "
                          "writable); choose another --out")


def _umask() -> int:
    """This process's umask, read without changing it where Linux allows (/proc), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file renamed over it (survives a kill mid-write).

    The file gets the permissions a plain ``open(path, "w")`` would give it
    (those of the file it replaces, else 0o666 less the umask), not mkstemp's 0o600.
    """
    path = Path(path)
    _check_parent(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary name beside ``path`` for a writer that wants a file name (e.g. Keras' ``save_weights``),
    renamed over ``path`` when the block succeeds and removed when it does not. The name ends as ``path``'s
    does (``.weights.h5`` stays ``.weights.h5``)."""
    path = Path(path)
    _check_parent(path)
    tmp = path.with_name(f".tmp-{os.getpid()}.{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def json_ready(obj: Any) -> Any:
    """``obj`` with NaN/inf floats turned into None and tuples into lists, so the JSON is standard."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:  # numpy scalar
        return json_ready(obj.item())
    return obj


def write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 2) -> Path:
    """Atomically write ``data`` as standard JSON (NaN/inf become null)."""
    text = json.dumps(json_ready(data), indent=indent, allow_nan=False, default=str)
    return atomic_write_text(path, text + "\n")


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder removed however the block ends (error, Ctrl-C, SIGTERM via the CLI)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def replace_dir(target: str | os.PathLike[str], keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """Build a folder beside ``target`` and swap it in only when the block succeeds.

    Yields the new (hidden) folder to fill. On success the old ``target``
    (if any) is moved aside and removed and the new one renamed into place;
    on any failure the new folder is removed and ``target`` is untouched.
    Entries of the old folder named in ``keep`` are carried over into the
    new one when the new one has no entry of that name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    os.chmod(new, (target.stat().st_mode & 0o7777) if target.is_dir() else 0o777 & ~_umask())  # not mkdtemp's 0700
    try:
        yield new
        if target.is_dir():
            for name in keep:
                old_entry, new_entry = target / name, new / name
                if old_entry.exists() and not new_entry.exists():
                    os.replace(old_entry, new_entry)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(new, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
