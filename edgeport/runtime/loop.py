"""The camera loop: read a frame, classify it, time every step.

    with Classifier.open(model) as clf, open_source("0") as src:
        summary = run_loop(clf, src, on_result=print_it, max_frames=100)

Per frame it measures the capture age (how old the frame is when processing
starts), the wait for the frame in ``source.read()``, preprocessing, the engine's
invoke, postprocessing and the ``on_result`` output (drawing, saving, printing);
the summary has p50/p95 of each, the achieved FPS and which part of the loop
bounds it (see :func:`edgeport.runtime.stats.summarize`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from edgeport.errors import ConfigError, SourceError
from edgeport.runtime.classifier import Classifier
from edgeport.runtime.sources import Frame, Source
from edgeport.runtime.stats import CYCLE, summarize

log = logging.getLogger(__name__)

#: frames whose timings the summary's percentiles are taken from (the most recent ones)
WINDOW = 10_000


from edgeport.runtime.config import LoopConfig  # noqa: E402,F401  (its home is light: the CLI reads its fields)


@dataclass(frozen=True)
class FrameResult:
    """What the loop produced for one frame."""

    index: int
    timestamp: float
    top: list[tuple[str, float]]
    timings_ms: dict[str, float]
    fps: float
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {
            "index": self.index,
            "timestamp": round(self.timestamp, 6),
            "top": [{"label": label, "prob": round(prob, 6)} for label, prob in self.top],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }
        if self.name:
            d["name"] = self.name
        return d


def run_loop(
    classifier: Classifier,
    source: Source,
    *,
    max_frames: int | None = None,
    top_k: int | None = None,
    stop: threading.Event | None = None,
    on_result: Callable[[Frame, FrameResult], bool | None] | None = None,
    pipeline: bool = False,
    lock: threading.Lock | None = None,
) -> dict:
    """Classify frames from an open ``source`` until it ends, ``stop`` is set,
    ``max_frames`` are done or ``on_result`` returns False; the timing summary.

    A live source that dies and cannot be reopened ends the loop with
    ``summary["source_error"]`` set (the frames so far are still summarised).

    With ``pipeline``, an in-order source (file, image folder) preprocesses each frame
    in its reader thread while the engine runs the previous one (the ``preprocess``
    timing is then measured there). That only pays when a core is free for it (e.g.
    ``threads`` = cores - 1): on a saturated 2-core machine it lowered the throughput,
    so it is off by default. Live sources always preprocess here, on the newest frame,
    so no frame waits in a queue.

    Memory stays flat over any number of frames: the summary's percentiles come from the last
    :data:`WINDOW` frames, its means and counts from the whole run. ``lock`` is held around each
    invoke when another thread shares the engine (the live view's uploads).
    """
    stop = stop or threading.Event()
    engine = classifier.engine
    if pipeline and not source.live:
        source.prepare = classifier.prepare_bgr
    timings: deque[dict[str, float]] = deque(maxlen=WINDOW)
    cycle = dict.fromkeys(CYCLE, 0.0)  # where the loop thread spent its time, summed over the run
    done = 0
    error = ""
    t0 = time.monotonic()
    t_end = t0
    read_ms = 0.0  # waiting in source.read(), bad frames skipped on the way included
    while not stop.is_set() and (max_frames is None or done < max_frames):
        t_read = time.monotonic()
        try:
            frame = source.read()
        except SourceError as exc:  # a live source died and could not be reopened
            log.error("%s", exc)
            error = str(exc)
            break
        if frame is None:
            break
        if not frame.ok:
            read_ms += (time.monotonic() - t_read) * 1e3
            continue  # counted by the source as a bad frame
        t1 = time.monotonic()
        read_ms += (t1 - t_read) * 1e3
        tensor = frame.tensor if frame.tensor is not None else classifier.prepare_bgr(frame.image)
        t2 = time.monotonic()
        pre_ms = frame.prepare_ms if frame.tensor is not None else (t2 - t1) * 1e3
        if lock is None:
            raw = engine.invoke(tensor)
        else:
            with lock:
                raw = engine.invoke(tensor)
        t3 = time.monotonic()
        top = classifier.top(classifier.postprocess(raw), top_k)
        t4 = time.monotonic()
        done += 1
        ms = {
            "capture_age": (t1 - frame.monotonic) * 1e3,
            "preprocess": pre_ms,
            "invoke": (t3 - t2) * 1e3,
            "postprocess": (t4 - t3) * 1e3,
            "total": pre_ms + (t4 - t2) * 1e3,
        }
        fps = done / (t4 - t0) if t4 > t0 else 0.0
        result = FrameResult(frame.index, frame.timestamp, top, ms, fps, frame.name)
        go_on = on_result is None or on_result(frame, result) is not False
        t_end = time.monotonic()
        # the wait for the frame and the callback's time go to the summary only (the per-frame lines
        # of `edgeport run --headless` keep their keys)
        timings.append({**ms, "read": read_ms, "output": (t_end - t4) * 1e3})
        for key, value in (("read", read_ms), ("preprocess", (t2 - t1) * 1e3), ("invoke", ms["invoke"]),
                           ("postprocess", ms["postprocess"]), ("output", (t_end - t4) * 1e3)):
            cycle[key] += value
        read_ms = 0.0
        if not go_on:
            break
    means = [{k: v / done for k, v in cycle.items()}] if done else []  # the run's mean per step
    summary = summarize(
        timings, t_end - t0, frames=done, cycle=means, source_live=source.live,
        bad_frames=source.bad_frames, dropped=source.dropped, reconnects=source.reconnects,
    )
    if error:
        summary["source_error"] = error
    return summary


class VideoSaver:
    """Writes annotated frames to a video file (mp4v); a context manager."""

    def __init__(self, path: str, fps: float | None = None) -> None:
        self.path = Path(path)
        self.fps = fps if fps and fps > 0 else 30.0
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0
        if not self.path.parent.is_dir():
            raise ConfigError(f"expected --save in an existing folder, received '{path}'")

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"))
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise SourceError(
                    f"could not write video '{self.path}' with OpenCV {cv2.__version__}; "
                    f"use an .mp4 or .avi name"
                )
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> "VideoSaver":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Window:
    """An OpenCV window for --show; a context manager. Pressing q or Esc stops the loop."""

    def __init__(self, title: str = "edgeport") -> None:
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise ConfigError(
                "--show needs an OpenCV with a GUI (opencv-python, not opencv-python-headless) and a display; "
                f"use --headless or --save out.mp4 instead ({str(exc).strip().splitlines()[-1]})"
            ) from exc

    def show(self, image: np.ndarray) -> bool:
        """Display ``image``; False when the user asked to quit."""
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
