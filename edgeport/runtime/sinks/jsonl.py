"""JSON lines appended to a file, rotated by size (FILE, FILE.1, ... FILE.N, newest first)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from edgeport.errors import ConfigError
from edgeport.runtime.sinks.base import SINKS, Sink, SinkOptions


@SINKS.register("jsonl")
class JsonlFileSink(Sink):
    """Appends one line per message to ``target``; at ``max_mb`` the file becomes FILE.1 (FILE.1 becomes
    FILE.2, ...) and only ``keep`` old files are kept, so the disk use is bounded. Each line is written
    whole (a reader never sees half a line after a kill, only a missing last line)."""

    name = "jsonl"
    target_help = "a file path (rotated by size: --jsonl-max-mb, --jsonl-keep)"

    def __init__(self, target: str, options: SinkOptions, max_mb: float = 10.0, keep: int = 5) -> None:
        super().__init__(target, options)
        self.path = Path(target)
        if self.path.is_dir():
            raise ConfigError(f"expected --jsonl to be a file name, received {target}, which is a folder")
        if not self.path.parent.is_dir():
            raise ConfigError(f"expected --jsonl in an existing folder, received {target}: {self.path.parent} "
                              "does not exist; create it first")
        if not max_mb > 0 or keep < 0:
            raise ConfigError(f"expected --jsonl-max-mb > 0 and --jsonl-keep >= 0, received {max_mb} and {keep}")
        self.max_bytes, self.keep = int(max_mb * (1 << 20)), keep
        self.rotations = 0
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0

    @classmethod
    def matches(cls, target: str) -> bool:
        return target not in ("", "-") and "://" not in target

    def describe(self) -> str:
        return f"jsonl {self.path}"

    def start(self) -> None:
        try:
            self._open()
        except OSError as exc:
            raise ConfigError(f"expected --jsonl to be a file this user can write, received {self.path} ({exc})") \
                from exc

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = None
        for i in range(self.keep, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{self.path.name}.{i - 1}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i}"))
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        self.rotations += 1
        self._open()

    def offer(self, payload: bytes) -> None:
        line = payload.replace(b"\n", b" ") + b"\n"
        with self._lock:
            try:
                if self._fd is None:
                    self._open()
                if self._size and self._size + len(line) > self.max_bytes:
                    self._rotate()
                os.write(self._fd, line)  # one write: whole lines only (O_APPEND)
                self._size += len(line)
                self.sent += 1
            except OSError as exc:  # a full disk: counted, and said once
                self.dropped += 1
                if self.last_error != str(exc):
                    self.last_error = str(exc)
                    import logging

                    logging.getLogger(__name__).warning("%s: could not write (%s); dropping", self.describe(), exc)

    @property
    def up(self) -> bool:
        return not self.last_error or self.dropped == 0

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def health(self) -> dict[str, Any]:
        return {**super().health(), "rotations": self.rotations}
