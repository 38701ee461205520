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
    retries: int | None = None  #: None: 5, or forever (-1) when results go to --serve or a network sink
    json_summary: str | None = None  #: also write the timing summary as JSON to this file
    loop: bool = False  #: a video file starts again at its end
    serve: str | None = None  #: [HOST:]PORT of the live view and API
    token: str | None = None
    stream_fps: float = 10.0
    max_upload_mb: float = 20.0
    mqtt: str | None = None
    mqtt_ca: str | None = None
    webhook: str | None = None
    jsonl: str | None = None
    jsonl_max_mb: float = 10.0
    jsonl_keep: int = 5
    publish: str = "every"
    publish_interval: float = 0.0
    queue_size: int = 10_000
    spool_dir: str | None = None
    spool_mb: float = 100.0

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"expected --top-k >= 1, received {self.top_k}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"expected --max-frames >= 1, received {self.max_frames}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"expected --threads >= 1, received {self.threads}")
        if self.retries is not None and self.retries < -1:
            raise ConfigError(f"expected --retries >= 0, or -1 for forever, received {self.retries}")
        check_service_options(self)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"expected --{name} >= 1 pixels, received {value}")
        if self.show and self.headless:
            raise ConfigError("expected at most one of --show and --headless, received both")


#: the sinks a run can publish to, by their option (``--mqtt URL``); stdout is --headless
SINK_OPTIONS = ("mqtt", "webhook", "jsonl")


def check_service_options(cfg: "LoopConfig | ServeConfig") -> None:
    """Ranges of the live-view and sink options, shared by `run` and `serve`."""
    for name, low in (("stream_fps", 0.0), ("max_upload_mb", 0.0), ("jsonl_max_mb", 0.0), ("spool_mb", 0.0)):
        value = getattr(cfg, name, None)
        if value is not None and not value > low:
            raise ConfigError(f"expected --{name.replace('_', '-')} > {low:g}, received {value}")
    for name in ("queue_size", "jsonl_keep"):
        value = getattr(cfg, name, None)
        if value is not None and value < (1 if name == "queue_size" else 0):
            raise ConfigError(f"expected --{name.replace('_', '-')} >= {1 if name == 'queue_size' else 0}, "
                              f"received {value}")
    if getattr(cfg, "publish_interval", 0.0) < 0:
        raise ConfigError(f"expected --publish-interval >= 0 seconds, received {cfg.publish_interval}")
    if getattr(cfg, "publish", "every") not in ("every", "change"):
        raise ConfigError(f"expected --publish every or change, received '{cfg.publish}'")
    token = getattr(cfg, "token", None)
    if token is not None and len(token) < 8:
        raise ConfigError(f"expected --token of at least 8 characters, received {len(token)}")


@dataclass(frozen=True)
class ServeConfig:
    """Everything `edgeport serve` takes: the API and page for uploaded images, without a camera."""

    model: str
    serve: str = "127.0.0.1:8080"
    token: str | None = None
    engine: str | None = None
    scheme: str | None = None
    threads: int | None = None
    providers: str | None = None
    top_k: int = 3
    max_upload_mb: float = 20.0

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"expected --top-k >= 1, received {self.top_k}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"expected --threads >= 1, received {self.threads}")
        check_service_options(self)
