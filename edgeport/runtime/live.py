"""What the live view, the API and the metrics show: the newest frame and result, counters, latency
histograms, camera and sink health (one object shared by the loop and the server's threads).

The loop thread only stores references and bumps counters (:meth:`LiveState.update`, a few
microseconds); the JPEG of the stream is drawn and encoded by :class:`LiveState`'s own thread, at most
``stream_fps`` times a second and only while someone watches, so the view never slows the loop.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

#: latency histogram bounds, seconds (Prometheus ``le``)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: the per-frame stages shown and histogrammed (milliseconds in a FrameResult)
STAGES = ("capture_age", "preprocess", "invoke", "postprocess", "total")


class Histogram:
    """A cumulative latency histogram (seconds), Prometheus style."""

    def __init__(self, bounds: Sequence[float] = BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.n = 0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running}')
        out += [f"{name}_sum{{{labels}}} {self.total:.6f}", f"{name}_count{{{labels}}} {self.n}"]
        return out


class LiveState:
    """The newest frame and result plus everything /api/latest, /metrics and /healthz report; a resource
    (its encoder thread) used with ``with`` or :meth:`start`/:meth:`close`."""

    def __init__(self, info: dict[str, Any], source: Any = None, sinks: Sequence[Any] = (),
                 stream_fps: float = 10.0, jpeg_quality: int = 80, stale_after: float = 5.0) -> None:
        self.info = dict(info)  #: artifact, precision, engine, labels, source: what runs
        self.source = source
        self.sinks = list(sinks)
        self.stream_fps = stream_fps
        self.jpeg_quality = jpeg_quality
        self.stale_after = stale_after
        self.started = time.time()
        self._t0 = time.monotonic()
        self.frames = 0
        self.hist = {stage: Histogram() for stage in STAGES}
        self._recent: deque[dict[str, float]] = deque(maxlen=300)
        self._times: deque[float] = deque(maxlen=120)
        self._image: Any = None
        self._result: Any = None
        self._new = threading.Event()
        self._cond = threading.Condition()
        self._jpeg: bytes = b""
        self._jpeg_seq = 0
        self.encoded = 0
        self.viewers = 0
        self.stream_clients = 0
        self.requests: dict[tuple[str, int], int] = {}
        self.uploads = 0
        self._last_upload: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_frame_monotonic = 0.0
        self.extra_health: list[Callable[[], dict[str, Any]]] = []

    # -- the loop thread
    def update(self, image: Any, result: Any) -> None:
        """Record one classified frame (references only; nothing is copied or encoded here)."""
        now = time.monotonic()
        self._image, self._result = image, result
        self.frames += 1
        self.last_frame_monotonic = now
        self._times.append(now)
        ms = result.timings_ms
        self._recent.append(ms)
        for stage in STAGES:
            value = ms.get(stage)
            if value is not None:
                self.hist[stage].add(value / 1e3)
        if self.viewers:
            self._new.set()

    def record_upload(self, top: list[tuple[str, float]], ms: float) -> None:
        self.uploads += 1
        self._last_upload = {"top": [{"label": lab, "prob": round(p, 6)} for lab, p in top], "ms": round(ms, 3),
                             "time": time.time()}

    # -- the encoder thread
    def start(self) -> "LiveState":
        self._thread = threading.Thread(target=self._encode_loop, name="edgeport-live-encoder", daemon=True)
        self._thread.start()
        return self

    @property
    def stopped(self) -> bool:
        """True once the live view is closing (stream clients stop waiting for frames)."""
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        self._new.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "LiveState":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _encode_loop(self) -> None:
        import cv2

        from edgeport.runtime.overlay import draw_overlay

        period = 1.0 / self.stream_fps if self.stream_fps > 0 else 0.1
        while not self._stop.is_set():
            if not self._new.wait(0.5):
                continue
            t0 = time.monotonic()
            self._new.clear()
            image, result = self._image, self._result
            if image is None or result is None:
                continue
            shown = draw_overlay(image, result.top, self.fps(), result.timings_ms.get("total"))
            ok, buf = cv2.imencode(".jpg", shown, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if ok:
                with self._cond:
                    self._jpeg = buf.tobytes()
                    self._jpeg_seq += 1
                    self.encoded += 1
                    self._cond.notify_all()
            self._stop.wait(max(0.0, period - (time.monotonic() - t0)))  # the cap on the stream's rate

    def watch(self) -> None:
        """A viewer arrived: encode frames while there is one."""
        with self._cond:
            self.viewers += 1
        self._new.set()

    def unwatch(self) -> None:
        with self._cond:
            self.viewers = max(0, self.viewers - 1)

    def next_jpeg(self, after: int, timeout: float = 5.0) -> tuple[int, bytes]:
        """The newest JPEG once it is newer than ``after`` (or the current one after ``timeout``)."""
        with self._cond:
            if self._jpeg_seq <= after:
                self._new.set()
                self._cond.wait_for(lambda: self._jpeg_seq > after or self._stop.is_set(), timeout)
            return self._jpeg_seq, self._jpeg

    # -- readers (server threads)
    def fps(self) -> float:
        times = self._times
        if len(times) < 2:
            return 0.0
        first, last = times[0], times[-1]
        if time.monotonic() - last > self.stale_after:
            return 0.0
        return (len(times) - 1) / (last - first) if last > first else 0.0

    def stage_p50(self) -> dict[str, float]:
        rows = list(self._recent)
        out = {}
        for stage in STAGES:
            vals = sorted(r[stage] for r in rows if stage in r)
            if vals:
                out[stage] = round(vals[len(vals) // 2], 3)
        return out

    def camera(self) -> dict[str, Any]:
        src = self.source
        if src is None:
            return {"up": True, "kind": "none"}
        age = time.monotonic() - self.last_frame_monotonic if self.last_frame_monotonic else None
        up = age is not None and age < self.stale_after and not getattr(src, "reconnecting", False)
        return {"up": up, "source": src.describe(), "last_frame_age_s": None if age is None else round(age, 3),
                "reconnects": src.reconnects, "dropped": src.dropped, "bad_frames": src.bad_frames,
                "reconnecting": bool(getattr(src, "reconnecting", False))}

    def health(self) -> dict[str, Any]:
        camera = self.camera()
        sinks = [s.health() for s in self.sinks]
        problems = ([] if camera["up"] else [f"camera down: {camera.get('source', '')}"]) + [
            f"sink down: {s['sink']} {s['target']}" + (f" ({s['last_error']})" if s["last_error"] else "")
            for s in sinks if not s["up"]]
        for extra in self.extra_health:
            problems += extra().get("problems", [])
        return {"status": "degraded" if problems else "ok", "problems": problems, "camera": camera,
                "sinks": sinks, "uptime_s": round(time.monotonic() - self._t0, 3)}

    def latest(self) -> dict[str, Any]:
        result = self._result
        out: dict[str, Any] = {**self.info, "uptime_s": round(time.monotonic() - self._t0, 3),
                               "started": self.started, "frames": self.frames, "fps": round(self.fps(), 2),
                               "latency_ms_p50": self.stage_p50(), "health": self.health(),
                               "stream": {"max_fps": self.stream_fps, "encoded": self.encoded,
                                          "clients": self.stream_clients}}
        out["result"] = result.to_dict() if result is not None else None
        if self._last_upload is not None:
            out["last_upload"] = self._last_upload
        return out

    def metrics(self) -> str:
        """Prometheus text exposition (version 0.0.4)."""
        def esc(v: Any) -> str:
            return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, Any]]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")

        info = ",".join(f'{k}="{esc(self.info.get(k, ""))}"' for k in ("artifact", "precision", "engine", "scheme"))
        metric("edgeport_info", "gauge", "What runs: the artifact, its honest precision and the engine", [(info, 1)])
        metric("edgeport_uptime_seconds", "gauge", "Seconds since start", [("", f"{time.monotonic() - self._t0:.3f}")])
        metric("edgeport_frames_total", "counter", "Frames classified", [("", self.frames)])
        metric("edgeport_fps", "gauge", "Frames per second over the last frames", [("", f"{self.fps():.3f}")])
        lines.append("# HELP edgeport_stage_seconds Per-frame latency of each stage of the loop")
        lines.append("# TYPE edgeport_stage_seconds histogram")
        for stage, h in self.hist.items():
            lines += h.lines("edgeport_stage_seconds", f'stage="{stage}"')
        cam = self.camera()
        if self.source is not None:
            metric("edgeport_source_up", "gauge", "1 while the camera delivers frames", [("", int(cam["up"]))])
            metric("edgeport_source_reconnects_total", "counter", "Reconnects of the source", [("", cam["reconnects"])])
            metric("edgeport_source_dropped_frames_total", "counter", "Frames a live source replaced before the loop "
                   "read them", [("", cam["dropped"])])
            metric("edgeport_source_bad_frames_total", "counter", "Frames that could not be decoded",
                   [("", cam["bad_frames"])])
        sinks = [s.health() for s in self.sinks]
        if sinks:
            def lab(s: dict) -> str:
                return f'sink="{esc(s["sink"])}",target="{esc(s["target"])}"'

            metric("edgeport_sink_up", "gauge", "1 while the sink's destination takes messages",
                   [(lab(s), int(s["up"])) for s in sinks])
            metric("edgeport_sink_messages_total", "counter", "Messages by outcome: sent, dropped (queue full), "
                   "rejected (refused by the destination)",
                   [(f'{lab(s)},outcome="{o}"', s[o]) for s in sinks for o in ("sent", "dropped", "rejected")])
            metric("edgeport_sink_queue_messages", "gauge", "Messages waiting, in memory and in the disk spool",
                   [(f'{lab(s)},where="{w}"', s[f"queued_{w}"]) for s in sinks for w in ("memory", "disk")])
            metric("edgeport_sink_reconnects_total", "counter", "Times the sink lost its destination",
                   [(lab(s), s["reconnects"]) for s in sinks])
        metric("edgeport_stream_clients", "gauge", "Clients of the MJPEG stream", [("", self.stream_clients)])
        metric("edgeport_stream_frames_encoded_total", "counter", "JPEGs encoded for the stream", [("", self.encoded)])
        metric("edgeport_uploads_total", "counter", "Images classified through POST /api/classify",
               [("", self.uploads)])
        if self.requests:
            metric("edgeport_http_requests_total", "counter", "HTTP requests by endpoint and status",
                   [(f'endpoint="{esc(e)}",code="{c}"', n) for (e, c), n in sorted(self.requests.items())])
        return "\n".join(lines) + "\n"

    def to_json(self) -> bytes:
        return json.dumps(self.latest(), default=str).encode()
