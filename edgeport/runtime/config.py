"""The runtime stage's one config (light: no numpy, OpenCV or engine imports, so the CLI builds its
flags from it without loading them)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeport.errors import ConfigError


@dataclass(frozen=True)
class LoopConfig:
    """Everything `edgeport run` takes (defaults < ``--config`` file < flags)."""

    model: str
    source: str = "0"
    engine: str | None = None
    scheme: str | None = None
    threads: int | None = None
    providers: str | None = None
    top_k: int = 3
    show: bool = False
    headless: bool = False
    save: str | None = None
    max_frames: int | None = None
    realtime: bool = False
    pipeline: bool = False
    width: int | None = None
    height: int | None = None
    retries: int = 5
    json_summary: str | None = None  #: also write the timing summary as JSON to this file

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"expected --top-k >= 1, received {self.top_k}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"expected --max-frames >= 1, received {self.max_frames}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"expected --threads >= 1, received {self.threads}")
        if self.retries < 0:
            raise ConfigError(f"expected --retries >= 0, received {self.retries}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"expected --{name} >= 1 pixels, received {value}")
        if self.show and self.headless:
            raise ConfigError("expected at most one of --show and --headless, received both")
