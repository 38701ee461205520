"""Hide other libraries' log chatter on stderr (unless ``edgeport -v``).

TensorFlow's C++ logging, its CUDA probe lines, LiteRT's "Created TensorFlow
Lite XNNPACK delegate" and the MLIR quantizer's "fully_quantize: ..." are
written straight to file descriptor 2 from C++, most of them whatever
``TF_CPP_MIN_LOG_LEVEL`` says. :class:`StderrFilter` therefore points fd 2 at
a pipe read by a small forked process that drops the lines matching
:data:`CHATTER` and forwards everything else, byte for byte, to the real
stderr. Python's ``sys.stderr`` (progress, logging, edgeport's own errors) is
rebound to the real stderr directly, so it is never delayed or filtered and
``isatty()`` stays true on a terminal. Child processes inherit the filtered
fd 2.

A process rather than a thread reads the pipe so that a crash of the main
process (a C++ abort prints its reason to fd 2, then the process dies) still
gets its last lines forwarded: the reader ends when the pipe has no writer left.
"""

from __future__ import annotations

import io
import os
import re
import select
import signal
import sys
import time
from typing import Any

#: Lines dropped from fd 2 unless -v (matched on the start of the line, after leading spaces).
CHATTER_PATTERNS = (
    # absl/TSL-style C++ log lines at INFO or WARNING: "I0000 00:00:1712345678.123456   12345 port.cc:153] ..."
    # (before absl is initialised the seconds field is the Unix time; after, "W0501 12:00:01.123456")
    r"[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+\s+\S+:\d+\] ",
    # the same at ERROR, only for the GPU probes of a machine without CUDA (failed call to cuInit, ...)
    r"E\d{4} \d\d:\d\d:\d+\.\d+\s+\d+\s+\S+:\d+\] .*(cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS|TensorRT|"
    r"computation placer|Unable to register)",
    # older TensorFlow log lines: "2024-05-01 12:00:00.123456: I tensorflow/core/... "
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] ",
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: E .*(cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS|TensorRT|Unable to register)",
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"Could not find cuda drivers on your machine",
    r"oneDNN custom operations are on",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .* rebuild TensorFlow",
    r"TF-TRT Warning: Could not find TensorRT",
    # LiteRT / TFLite runtime notices
    r"INFO: Created TensorFlow Lite (XNNPACK )?delegate for CPU\.",
    r"INFO: Initialized TensorFlow Lite runtime\.",
    # the MLIR quantizer's summary line
    r"fully_quantize: \d+, inference_type: \d+, input_inference_type: \S+, output_inference_type: \S+",
)
CHATTER = re.compile(rb"\s*(?:" + "|".join(CHATTER_PATTERNS).encode() + rb")")


def is_chatter(line: bytes | str) -> bool:
    """True when ``line`` is one of the known chatter lines."""
    return CHATTER.match(line.encode("utf-8", "replace") if isinstance(line, str) else line) is not None


def _pump(read_fd: int, out_fd: int) -> None:
    """Forward lines from ``read_fd`` to ``out_fd`` until EOF, dropping chatter.

    A partial line is forwarded after 0.2 s without its end (a prompt, a crash message cut short).
    """
    pending = b""
    since = 0.0
    while True:
        ready, _, _ = select.select([read_fd], [], [], 0.2 if pending else None)
        if not ready:
            _write_all(out_fd, pending)  # no newline came: it is no chatter line, pass it on
            pending = b""
            continue
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        had = bool(pending)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if lines or not had:
            since = time.monotonic()  # when the partial line now pending began
        keep = [ln for ln in lines if not CHATTER.match(ln)]
        if keep:
            _write_all(out_fd, b"\n".join(keep) + b"\n")
        if len(pending) > 65536 or (pending and time.monotonic() - since > 0.2):
            _write_all(out_fd, pending)
            pending = b""
    if pending and not CHATTER.match(pending):
        _write_all(out_fd, pending)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except InterruptedError:
            continue
        except OSError:
            return  # the real stderr is gone (closed terminal): nothing left to forward to
        data = data[n:]


class StderrFilter:
    """``with StderrFilter(): ...``: fd 2 filtered, Python's sys.stderr straight to the real stderr.

    Does nothing (``active`` False) where it cannot work or should not: no ``os.fork`` (Windows), fd 2
    not open, or ``sys.stderr`` is not the process's own (pytest's capture, an embedding program).
    """

    def __init__(self) -> None:
        self.active = False
        self._pid = 0
        self._saved = -1
        self._old_stderr: Any = None

    def __enter__(self) -> "StderrFilter":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> bool:
        if self.active or not hasattr(os, "fork") or sys.stderr is not sys.__stderr__:
            return False
        try:
            if sys.stderr.fileno() != 2:
                return False
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return False
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the filter: lives until no process writes to the pipe any more
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group;
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the filter ends with its writers instead
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)  # hold no copy of stdout (a reader waits for its EOF) or of the pipe
                os.close(write_fd)
                low, high = sorted((read_fd, saved))
                os.closerange(3, low)  # every other inherited descriptor
                os.closerange(low + 1, high)
                os.closerange(high + 1, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
                _pump(read_fd, saved)
            finally:
                os._exit(0)
        os.close(read_fd)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._pid, self._saved, self._old_stderr = pid, saved, sys.stderr
        encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
        sys.stderr = open(saved, "w", buffering=1, encoding=encoding, errors="backslashreplace", closefd=False)
        self.active = True
        return True

    def stop(self, wait: float = 2.0) -> None:
        """Restore fd 2 and sys.stderr; wait up to ``wait`` s for the filter to forward what it holds."""
        if not self.active:
            return
        self.active = False
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        sys.stderr = self._old_stderr
        os.dup2(self._saved, 2)  # the pipe loses this writer; the filter sees EOF once children are done too
        # self._saved stays open: logging handlers made meanwhile still write to the real stderr through it
        deadline = time.monotonic() + wait
        while True:
            try:
                pid, _ = os.waitpid(self._pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid or time.monotonic() > deadline:
                break  # (past the deadline a child process still holds the pipe: the filter outlives us)
            time.sleep(0.005)
