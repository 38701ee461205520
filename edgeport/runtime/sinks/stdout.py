"""JSON lines on standard output (``edgeport run --headless``): one line per published frame."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from edgeport.runtime.sinks.base import SINKS, Sink, SinkOptions


@SINKS.register("stdout")
class StdoutSink(Sink):
    """Writes each message as one line to a text stream (standard output by default), in the loop thread."""

    name = "stdout"
    target_help = "'-' (standard output)"

    def __init__(self, target: str = "-", options: SinkOptions | None = None, stream: TextIO | None = None) -> None:
        super().__init__(target, options or SinkOptions())
        self.stream = stream or sys.stdout

    @classmethod
    def matches(cls, target: str) -> bool:
        return target == "-"

    def describe(self) -> str:
        return "stdout"

    def offer(self, payload: bytes) -> None:
        self.stream.write(payload.decode("utf-8") + "\n")
        self.stream.flush()
        self.sent += 1

    def health(self) -> dict[str, Any]:
        return {**super().health(), "target": "-"}
