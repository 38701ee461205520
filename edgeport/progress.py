"""Progress of long library work on stderr (no dependencies).

Library code reports progress through :class:`Progress`, never ``print``. Its
mode is one of :data:`PROGRESS_MODES`, the values of every command's
``--progress``:

``bar``
    one line redrawn in place (``\\r``), with a count, elapsed time and an estimate;
``line``
    a few whole lines for logs and CI: nothing for a task that ends within
    :data:`LINE_FIRST_S` seconds but its end line ("desc: 200/200 in 1.3 s"); a
    long task also gets a line when it passes :data:`LINE_FIRST_S` (with an
    estimate of what is left), then at most one every :data:`LINE_EVERY_S`;
``off``
    nothing;
``auto``
    ``bar`` when the stream is a terminal, else ``line``.

``enabled`` takes a mode, or ``True`` (auto) / ``False`` (off) as before.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

from edgeport.errors import ConfigError

T = TypeVar("T")

#: every command's --progress choices, in the order --help lists them
PROGRESS_MODES = ("auto", "bar", "line", "off")
#: line mode: a task still running after this many seconds gets a line saying so (with an estimate)
LINE_FIRST_S = 5.0
#: line mode: at most one line per this many seconds while a task runs
LINE_EVERY_S = 30.0


def as_mode(enabled: bool | str | None) -> str:
    """One of :data:`PROGRESS_MODES` from a mode or a bool (None/True: auto, False: off); ConfigError else."""
    if enabled is None or enabled is True:
        return "auto"
    if enabled is False:
        return "off"
    if enabled not in PROGRESS_MODES:
        raise ConfigError(f"expected --progress one of {', '.join(PROGRESS_MODES)}, received {enabled!r}")
    return str(enabled)


def progress_mode(enabled: bool | str | None, stream: TextIO | None = None) -> str:
    """The concrete mode (bar, line or off) of ``enabled`` on ``stream`` (default: sys.stderr)."""
    enabled = as_mode(enabled)
    if enabled == "auto":
        stream = stream if stream is not None else sys.stderr
        return "bar" if bool(getattr(stream, "isatty", lambda: False)()) else "line"
    return str(enabled)


def _secs(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


class Progress:
    """``with Progress(total, "calibrating", mode) as bar: bar.update()``."""

    def __init__(self, total: int | None, desc: str, enabled: bool | str | None = True,
                 stream: TextIO | None = None) -> None:
        self.total, self.desc = total, desc
        self.stream = stream if stream is not None else sys.stderr
        self.mode = progress_mode(enabled, self.stream)
        self.enabled = self.mode != "off"
        self.n = 0
        self._t0 = time.perf_counter()
        self._next_line = self._t0 + LINE_FIRST_S  # line mode: when the next in-between line may come
        self._closed = False
        self._first: tuple[int, float] | None = None  # (n, time) at the first update: the rate is taken after it

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(stopped=exc_type is not None)

    def _count(self) -> str:
        return f"{self.n}/{self.total}" if self.total else f"{self.n}"

    def _left(self, now: float) -> float | None:
        """Seconds left at the rate since the first update: the first step carries the setup (a graph traced,
        caches filled; 22 s of a QAT epoch's first step made its estimate 100 min where 3 were left)."""
        if not self.total or self._first is None or self.n <= self._first[0] or now <= self._first[1]:
            return None
        n0, t0 = self._first
        return max(0.0, (now - t0) * (self.total - self.n) / (self.n - n0))

    def _bar(self) -> str:
        now = time.perf_counter()
        el = now - self._t0
        if self.total:
            bar = "#" * int(self.n / self.total * 24)
            eta = self._left(now)
            return f"{self.desc} [{bar:<24}] {self.n}/{self.total} {el:.0f}s<{'?' if eta is None else f'{eta:.0f}'}s"
        return f"{self.desc} {self.n} {el:.0f}s"

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the work it reports on
            pass

    def update(self, n: int = 1, note: str = "") -> None:
        self.n += n
        if self._first is None and self.n > 0:  # an update(0) (a note before any work) starts nothing
            self._first = (self.n, time.perf_counter())
        if self.mode == "bar":
            self._write("\r" + self._bar() + (f" {note}" if note else "") + "\x1b[K")
        elif self.mode == "line":
            now = time.perf_counter()
            if now < self._next_line or (self.total and self.n >= self.total):
                return  # the end line comes from close()
            el = now - self._t0
            eta = self._left(now)
            left = "" if eta is None else f", about {_secs(eta)} left"
            self._write(f"{self.desc}: {self._count()} after {_secs(el)}{left}" + (f" ({note})" if note else "") + "\n")
            self._next_line = now + LINE_EVERY_S

    def close(self, stopped: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self._write("\n")
        elif self.mode == "line":
            el = time.perf_counter() - self._t0
            self._write(f"{self.desc}: {'stopped at ' if stopped else ''}{self._count()} in {_secs(el)}\n")


def track(items: Iterable[T], desc: str, total: int | None = None, enabled: bool | str | None = True) -> Iterator[T]:
    """Iterate ``items`` with a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, enabled) as bar:
        for item in items:
            yield item
            bar.update()
