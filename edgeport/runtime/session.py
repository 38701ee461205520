"""One `edgeport run`, callable from Python: model, source, outputs, sinks, live view, watchdog, and
the exit status.

    result = Session(LoopConfig(model="export/", source="clip.mp4", mqtt="mqtt://broker/cam1")).run()
    print(result.exit_code, result.summary["fps"])

Output modes: ``headless`` (JSON lines on stdout, a sink like the others), ``show`` (a window),
``save`` (an annotated video), and otherwise one human line per frame, unless the results go
elsewhere (--serve or a sink), where the per-frame lines would only flood a service's log.
With --serve or a network sink a live source is reconnected forever (a service never exits
because its camera was unplugged) unless --retries bounds it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO

from edgeport.errors import ConfigError
from edgeport.runtime.config import SINK_OPTIONS, LoopConfig

log = logging.getLogger(__name__)


@dataclass
class SessionResult:
    """What a run ended with: the summary, the exit code (0 done, 1 no frame / truncated video,
    2 a source that died) and the line that explains a non-zero code."""

    summary: dict
    exit_code: int
    message: str = ""
    sinks: list[dict] = field(default_factory=list)


def exit_status(summary: dict) -> tuple[int, str]:
    """(exit code, message) of a run's summary (the rules of `edgeport run`'s epilog)."""
    from edgeport.contract import printable

    if summary.get("source_error"):
        return 2, f"error: {printable(summary['source_error'], 1000)}"
    if summary.get("source_ended_early"):
        return 1, f"{summary['source_ended_early']} ({summary['frames']} classified)"
    if not summary.get("frames"):
        bad = summary.get("bad_frames") or 0
        return 1, f"no frame was classified ({bad} unreadable frame(s) skipped); check the source"
    return 0, ""


def service_mode(cfg: LoopConfig) -> bool:
    """True when results go to the live view or a sink other than stdout (a long-running service)."""
    return bool(cfg.serve or any(getattr(cfg, name) for name in SINK_OPTIONS))


def source_retries(cfg: LoopConfig) -> int:
    """Reconnects of a live source: as given, else forever (-1) for a service, else 5."""
    if cfg.retries is not None:
        return cfg.retries
    return -1 if service_mode(cfg) else 5


def make_sinks(cfg: LoopConfig, out: TextIO) -> list:
    """The sinks a config names, not yet started (stdout first with --headless)."""
    from edgeport.runtime.sinks import SinkOptions, sink_for
    from edgeport.runtime.sinks.base import spool_folder_problem
    from edgeport.runtime.sinks.stdout import StdoutSink

    if cfg.spool_dir:
        problem = spool_folder_problem(cfg.spool_dir)
        if problem:
            raise ConfigError(problem)
    options = SinkOptions(queue_size=cfg.queue_size, spool_dir=cfg.spool_dir, spool_mb=cfg.spool_mb,
                          settings={"mqtt": {"ca_file": cfg.mqtt_ca},
                                    "jsonl": {"max_mb": cfg.jsonl_max_mb, "keep": cfg.jsonl_keep}})
    sinks: list = [StdoutSink("-", options, stream=out)] if cfg.headless else []
    for name in SINK_OPTIONS:
        target = getattr(cfg, name)
        if target:
            sinks.append(sink_for(name, target, options))
    return sinks


class Session:
    """A run of the camera loop with everything around it; holds the model, the source, the sinks and
    the server while :meth:`run` runs. :meth:`interrupt` (safe from a signal handler) ends it normally."""

    def __init__(self, cfg: LoopConfig, out: TextIO | None = None, info: TextIO | None = None) -> None:
        self.cfg = cfg
        self.out = out or sys.stdout
        self.info = info or (sys.stderr if cfg.headless or service_mode(cfg) else sys.stdout)
        self.stop = threading.Event()
        self.source: Any = None
        self.live: Any = None
        self.server: Any = None
        self.sinks: list = []

    def interrupt(self) -> None:
        self.stop.set()
        if self.source is not None:
            self.source.interrupt()

    def _check(self) -> None:
        """Everything that can be refused before a model or camera is opened."""
        cfg = self.cfg
        if cfg.json_summary:
            check_output_file(cfg.json_summary, "--json-summary")
        if cfg.show:
            from edgeport.runtime.doctor import gui_problem

            problem = gui_problem()
            if problem:
                raise ConfigError(problem)
        if cfg.loop:
            from edgeport.runtime.sources import source_kind

            if source_kind(cfg.source) != "video":
                raise ConfigError(f"expected --loop with a video file source, received --source {cfg.source}")

    def run(self) -> SessionResult:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our errors name the source; keep OpenCV quiet
        import cv2

        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except AttributeError:
            pass
        from edgeport.contract import printable
        from edgeport.runtime.classifier import Classifier
        from edgeport.runtime.loop import VideoSaver, Window, run_loop
        from edgeport.runtime.overlay import draw_overlay
        from edgeport.runtime.sinks import PublishPolicy
        from edgeport.runtime.sources import open_source
        from edgeport.runtime.systemd import Watchdog

        cfg = self.cfg
        self._check()
        policy = PublishPolicy(cfg.publish, cfg.publish_interval)
        bind = _bind(cfg)
        lock = threading.Lock()
        with ExitStack() as stack:
            opts = {"providers": cfg.providers} if cfg.providers else {}
            clf = stack.enter_context(Classifier.open(
                cfg.model, engine=cfg.engine, scheme=cfg.scheme, threads=cfg.threads, top_k=cfg.top_k, **opts))
            self.sinks = make_sinks(cfg, self.out)
            for sink in self.sinks:
                sink.start()  # a refused login: exit 2 before the camera opens
                stack.callback(sink.close)
            src = open_source(cfg.source, realtime=cfg.realtime, loop=cfg.loop, retries=source_retries(cfg),
                              width=cfg.width, height=cfg.height)
            self.source = src
            info = artifact_info(clf)
            if bind is not None:
                self.live, self.server = start_live(stack, info, bind, cfg.token, clf, lock, cfg.top_k,
                                                    cfg.max_upload_mb, source=src, sinks=self.sinks,
                                                    stream_fps=cfg.stream_fps, out=self.info)
            if self.stop.is_set():
                raise KeyboardInterrupt
            src.open_retrying(forever=source_retries(cfg) < 0)
            stack.callback(src.close)
            providers = getattr(clf.engine, "providers", None)
            print(printable(f"edgeport run: {clf.engine.model_path.name} ({clf.info.scheme or '?'}; {clf.precision}) "
                            f"on {clf.engine.name}{' [' + ', '.join(providers) + ']' if providers else ''}, "
                            f"source {src.describe()}"
                            + (f", results to {', '.join(s.describe() for s in self.sinks)}" if self.sinks else ""),
                            limit=1000), file=self.info, flush=True)
            saver = stack.enter_context(VideoSaver(cfg.save, src.fps)) if cfg.save else None
            window = stack.enter_context(Window()) if cfg.show else None
            text_lines = not cfg.headless and not cfg.show and not service_mode(cfg)
            progress = {"t": time.monotonic()}
            dog = stack.enter_context(Watchdog(
                alive=lambda: time.monotonic() - progress["t"] < (dog.period or 30) or src.reconnecting,
                status=lambda: f"{self.live.frames if self.live else ''} frames" if self.live else "running"))
            sinks, live, out = self.sinks, self.live, self.out

            def on_result(frame, result) -> bool:
                progress["t"] = time.monotonic()
                if live is not None:
                    live.update(frame.image, result)
                if sinks and policy.wants(result.top[0][0] if result.top else None):
                    payload = json.dumps(result.to_dict()).encode()
                    for sink in sinks:
                        sink.offer(payload)
                if text_lines:
                    labels = ", ".join(f"{printable(label, 60)} {p:.2f}" for label, p in result.top)
                    print(f"#{result.index} {labels} | {result.timings_ms['total']:.1f} ms {result.fps:.1f} FPS",
                          file=out, flush=True)
                if saver is not None or window is not None:
                    img = draw_overlay(frame.image, result.top, result.fps, result.timings_ms["total"])
                    if saver is not None:
                        saver.write(img)
                    if window is not None and not window.show(img):
                        return False
                return True

            summary = run_loop(clf, src, max_frames=cfg.max_frames, top_k=cfg.top_k, stop=self.stop,
                               on_result=on_result, pipeline=cfg.pipeline, lock=lock if self.server else None)
            if self.stop.is_set():
                summary["stopped_by_signal"] = True
            early = src.ended_early() if hasattr(src, "ended_early") else None
            if early and not summary.get("source_error"):
                summary["source_ended_early"] = early
            if getattr(src, "loops", 0):
                summary["loops"] = src.loops
            if sinks:
                summary["published"], summary["not_published"] = policy.published, policy.skipped
        # the sinks are closed (delivered, spooled or counted as dropped) once the stack has unwound
        health = [s.health() for s in self.sinks]
        for h in health:
            if h["sink"] != "stdout":
                summary[f"sink {h['sink']}"] = (f"sent {h['sent']}, dropped {h['dropped']}, rejected {h['rejected']}, "
                                                f"reconnects {h['reconnects']}, queued on disk {h['queued_disk']}")
        summary.update(engine=clf.engine.name, model=str(clf.engine.model_path), scheme=clf.info.scheme)
        code, message = exit_status(summary)
        return SessionResult(summary, code, message, health)


def _bind(cfg: Any) -> tuple[str, int] | None:
    from edgeport.runtime.server import parse_bind

    return parse_bind(cfg.serve) if cfg.serve else None


def artifact_info(clf: Any) -> dict[str, Any]:
    """What runs, as the page, /api/latest and /metrics name it."""
    return {"artifact": clf.engine.model_path.name, "scheme": clf.info.scheme or "", "precision": clf.precision,
            "engine": clf.engine.name, "labels": list(clf.labels)}


def start_live(stack: ExitStack, info: dict, bind: tuple[str, int], token: str | None, clf: Any,
               lock: threading.Lock, top_k: int, max_upload_mb: float, source: Any = None, sinks: Any = (),
               stream_fps: float = 10.0, out: TextIO | None = None) -> tuple[Any, Any]:
    """The live state and its server, started and registered on ``stack``; prints where it is."""
    from edgeport.runtime.live import LiveState
    from edgeport.runtime.server import Classify, LiveServer, resolve_token, serve_forever_hint

    host, port = bind
    token, generated = resolve_token(host, token)
    info = {**info, "source": source.describe() if source is not None else None}
    live = stack.enter_context(LiveState(info, source=source, sinks=sinks, stream_fps=stream_fps))
    server = LiveServer(live, host, port, token, Classify(clf, lock, top_k, max_upload_mb),
                        page_title=f"edgeport - {info['artifact']}")
    stack.enter_context(server)
    print(serve_forever_hint(server, generated), file=out or sys.stderr, flush=True)
    return live, server


def check_output_file(path: str, flag: str) -> None:
    """ConfigError unless ``path`` can be written: its folder exists and it is not a folder itself."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"expected {flag} to be a file name, received {path}, which is a folder")
    if not p.parent.is_dir():
        raise ConfigError(f"expected {flag} in an existing folder, received {path}: {p.parent} does not exist; "
                          "create it first")
    if not os.access(p.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"expected {flag} in a folder this user can write, received {path}")


def serve_api(cfg: Any, stop: threading.Event, out: TextIO | None = None) -> dict:
    """`edgeport serve`: the page and the API for uploaded images, until ``stop`` is set; its counters."""
    from edgeport.runtime.classifier import Classifier
    from edgeport.runtime.systemd import Watchdog

    bind = _bind(cfg)
    with ExitStack() as stack:
        opts = {"providers": cfg.providers} if cfg.providers else {}
        clf = stack.enter_context(Classifier.open(cfg.model, engine=cfg.engine, scheme=cfg.scheme,
                                                  threads=cfg.threads, top_k=cfg.top_k, **opts))
        live, server = start_live(stack, artifact_info(clf), bind, cfg.token, clf, threading.Lock(), cfg.top_k,
                                  cfg.max_upload_mb, out=out)
        with Watchdog(alive=lambda: True):
            while not stop.wait(0.5):
                pass
        return {"uploads": live.uploads, "requests": sum(live.requests.values())}
