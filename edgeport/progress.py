"""A tiny progress bar on stderr for long library work (no dependencies).

Library code reports progress through :class:`Progress`, never ``print``:
on a terminal it redraws one line; otherwise it writes a line at most every
10 % so CI logs stay short. ``enabled=False`` silences it.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")


class Progress:
    """``with Progress(total, "calibrating") as bar: bar.update()``."""

    def __init__(self, total: int | None, desc: str, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream or sys.stderr
        self.n = 0
        self._t0 = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> str:
        el = time.perf_counter() - self._t0
        if self.total:
            frac = self.n / self.total
            bar = "#" * int(frac * 24)
            eta = el / frac - el if frac > 0 else 0.0
            return f"{self.desc} [{bar:<24}] {self.n}/{self.total} {el:.0f}s<{eta:.0f}s"
        return f"{self.desc} {self.n} {el:.0f}s"

    def update(self, n: int = 1, note: str = "") -> None:
        self.n += n
        if not self.enabled:
            return
        if self._tty:
            self.stream.write("\r" + self._line() + (f" {note}" if note else "") + "\x1b[K")
            self.stream.flush()
        elif self.total:
            decile = int(10 * self.n / self.total)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(self._line() + (f" {note}" if note else "") + "\n")

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()


def track(items: Iterable[T], desc: str, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` with a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, enabled) as bar:
        for item in items:
            yield item
            bar.update()
