"""Frame sources: cameras, video files, image folders, network streams, GStreamer, picamera2.

    with open_source("0") as src:            # /dev/video0 through V4L2
        while (frame := src.read()) is not None:
            ...

Live sources (cameras, streams, GStreamer, picamera2, and files with
``realtime=True``) capture in their own thread and keep only the newest frame,
so a slow model never sees stale buffered frames. Files and image folders are
read in order, without dropping, by a prefetching thread (which can also run
the model's preprocessing, set :attr:`Source.prepare`). A live source that
dies mid-run is reopened with backoff before :class:`SourceError` is raised.
"""

from __future__ import annotations

import glob
import logging
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from edgeport.errors import SourceError
from edgeport.imaging import ImageDecodeError, is_image_file, load_rgb
from edgeport.registry import Registry
from edgeport.runtime.masking import mask_secrets

log = logging.getLogger(__name__)

SOURCES: Registry[type["Source"]] = Registry("source")

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".h264", ".ts")

@dataclass
class Frame:
    """One captured frame; ``image`` is None for a frame that could not be decoded."""

    index: int
    image: np.ndarray | None
    timestamp: float  # time.time() at capture
    monotonic: float  # time.monotonic() at capture (for the capture age)
    name: str = ""
    #: set by the reader thread of an in-order source when a ``prepare`` function was given
    tensor: np.ndarray | None = None
    prepare_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.image is not None and self.image.ndim == 3 and self.image.size > 0


def _now() -> tuple[float, float]:
    return time.time(), time.monotonic()


class _Stop(Exception):
    """Internal: the reader reached the end."""


class Source:
    """Base class: a resource yielding BGR frames; use as a context manager.

    Subclasses implement :meth:`_open`, :meth:`_grab` (one BGR image, None for a bad
    frame, raise _Stop at the end) and :meth:`_close`.
    """

    kind: str = ""
    #: True: keep only the newest frame (cameras); False: every frame in order (files).
    live: bool = True
    #: how a --source value names this kind, for people (the flag's help is made of these)
    spec_help: str = ""

    @classmethod
    def claims(cls, spec: str, path: Path) -> int | None:
        """How surely ``spec`` names this kind of source (lower is surer: 0 its own syntax, 1 an existing file or
        folder of its kind, 2 a pipeline's shape, 3 a glob, 4 a file ending), or None when it does not."""
        return None

    def __init__(self, spec: str, *, retries: int = 5, backoff: float = 0.5, queue_size: int = 2,
                 width: int | None = None, height: int | None = None, fps: float | None = None) -> None:
        self.spec = spec
        self.retries = retries
        self.backoff = backoff
        self.queue_size = queue_size
        self.width, self.height, self.req_fps = width, height, fps
        self.fps: float | None = None
        self.frames_read = 0
        self.bad_frames = 0
        self.dropped = 0  # live sources: frames replaced before being read
        self.reconnects = 0
        #: True while a live source that stopped is being reopened (health: the camera is down)
        self.reconnecting = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._queue: queue.Queue[Frame | None] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._ended = False
        self._index = 0
        self.prepare: Callable[[np.ndarray], np.ndarray] | None = None

    # -- subclass hooks --------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _grab(self) -> np.ndarray | None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.kind} '{self.spec}'"

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> "Source":
        """Open the device/file and start the capture thread."""
        self._open()
        self._thread = threading.Thread(target=self._run, name=f"edgeport-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def interrupt(self) -> None:
        """Make :meth:`read` return None soon (safe from a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        """Stop the capture thread and release the device (idempotent)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        try:  # unblock a producer waiting on a full queue
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        self._close()

    def __enter__(self) -> "Source":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- capture thread --------------------------------------------------------------------
    def _next_frame(self) -> Frame:
        image = self._grab()
        ts, mono = _now()
        frame = Frame(self._index, image, ts, mono)
        self._index += 1
        return frame

    def _grab_with_retry(self) -> Frame:
        """A frame, reopening a live source that stopped delivering (backoff, then SourceError; with
        ``retries`` < 0, forever: a service never gives up on its camera)."""
        try:
            return self._next_frame()
        except _Stop:
            if not self.live or self.retries == 0:
                raise
        delay = self.backoff
        attempt = 0
        self.reconnecting = True
        try:
            while self.retries < 0 or attempt < self.retries:
                attempt += 1
                if self._stop.wait(delay):
                    raise _Stop
                limit = "" if self.retries < 0 else f"/{self.retries}"
                log.warning("%s stopped delivering frames; reconnecting (%d%s)", self.describe(), attempt, limit)
                self.reconnects += 1
                try:
                    self._close()
                    self._open()
                    return self._next_frame()
                except (SourceError, _Stop):
                    delay = min(delay * 2, 8.0 if self.retries >= 0 else 30.0)
        finally:
            self.reconnecting = False
        raise SourceError(
            f"{self.describe()} stopped delivering frames and {self.retries} reconnects failed; "
            f"check the cable/network/power of the device"
        )

    def open_retrying(self, forever: bool) -> "Source":
        """:meth:`open`, retried with backoff while a live source cannot be opened yet (``forever``: a
        service started before its camera was plugged in or its stream was up); files fail at once."""
        delay = self.backoff
        while True:
            try:
                return self.open()
            except SourceError as exc:
                if not (forever and self.live) or self._stop.is_set():
                    raise
                self.reconnecting = True
                log.warning("%s; retrying in %.1f s", exc, delay)
                if self._stop.wait(delay):
                    raise
                self.reconnects += 1
                delay = min(delay * 2, 30.0)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self._grab_with_retry()
                self.frames_read += 1
                if not frame.ok:  # undecodable/empty: skipped here, counted
                    self.bad_frames += 1
                    continue
                if self.prepare is not None and not self.live:  # files: preprocess ahead, in order
                    t0 = time.monotonic()
                    frame.tensor = self.prepare(frame.image)
                    frame.prepare_ms = (time.monotonic() - t0) * 1e3
                if self.live:
                    with self._cond:
                        if self._latest is not None:
                            self.dropped += 1
                        self._latest = frame
                        self._cond.notify_all()
                else:
                    while not self._stop.is_set():
                        try:
                            self._queue.put(frame, timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed over to the reading thread
            self._error = exc
        finally:
            self._ended = True
            with self._cond:
                self._cond.notify_all()
            if not self.live:
                try:
                    self._queue.put_nowait(None)
                except queue.Full:
                    pass

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next good frame (newest for live sources), or None when the source has ended.

        Frames that cannot be decoded are skipped and counted in :attr:`bad_frames`.
        """
        if self._thread is None and not self._ended:
            raise SourceError(f"{self.describe()} is not open; use it as a context manager")
        if self.live:
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._cond:
                while self._latest is None and not self._ended and not self._stop.is_set():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise SourceError(f"{self.describe()} delivered no frame within {timeout:.1f} s")
                    self._cond.wait(0.1 if left is None else min(left, 0.1))
                frame, self._latest = self._latest, None
        else:
            frame = None
            while frame is None:
                try:
                    frame = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set() or (self._ended and self._queue.empty()):
                        break
                    continue
                if frame is None:  # end marker
                    break
        if frame is None and self._error is not None:
            raise self._error
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame


# --- OpenCV VideoCapture sources -----------------------------------------------------------


class _CaptureSource(Source):
    """Sources read through cv2.VideoCapture."""

    api: int = cv2.CAP_ANY

    def _target(self) -> Any:
        return self.spec

    def _params(self) -> list[int]:
        return []

    def _fix_hint(self) -> str:
        return "check the path/URL"

    def _open(self) -> None:
        params = self._params()
        cap = cv2.VideoCapture(self._target(), self.api, params) if params else cv2.VideoCapture(self._target(), self.api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"could not open {self.describe()}; {self._fix_hint()}")
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.req_fps:
            cap.set(cv2.CAP_PROP_FPS, self.req_fps)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else self.fps
        self._cap = cap

    def _grab(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok:
            raise _Stop
        return image

    def _close(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()
            self._cap = None


def list_cameras() -> list[str]:
    """/dev/video* device nodes present here (sorted)."""
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


@SOURCES.register("camera")
class CameraSource(_CaptureSource):
    """A camera by index or /dev/videoN (V4L2 on Linux); newest frame only."""

    kind = "camera"
    spec_help = "a camera index or /dev/videoN"

    @classmethod
    def claims(cls, spec: str, path: Path) -> int | None:
        return 0 if re.fullmatch(r"(?:/dev/video)?\d+", spec) else None
    live = True

    def __init__(self, spec: str, **kw: Any) -> None:
        super().__init__(spec, **kw)
        m = re.fullmatch(r"(?:/dev/video)?(\d+)", str(spec))
        if not m:
            raise SourceError(f"expected a camera index or /dev/videoN, received '{spec}'")
        self.device = int(m.group(1))
        self.api = cv2.CAP_V4L2 if sys.platform.startswith("linux") and opencv_has("V4L2") else cv2.CAP_ANY

    def describe(self) -> str:
        return f"camera {self.device} (/dev/video{self.device})" if sys.platform.startswith("linux") else f"camera {self.device}"

    def _target(self) -> Any:
        return self.device

    def _fix_hint(self) -> str:
        found = list_cameras()
        return (f"cameras found: {', '.join(found) if found else 'none'}; check that it is connected, "
                f"not used by another program, and that you are in the 'video' group "
                f"(a Pi CSI camera needs --source picamera2, a Jetson CSI camera a GStreamer pipeline)")

    def _open(self) -> None:
        super()._open()
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)


@SOURCES.register("video")
class VideoFileSource(_CaptureSource):
    """A video file, every frame in order; ``realtime=True`` paces it at its FPS and drops like a camera."""

    kind = "video"
    spec_help = "a video file (--loop: again at its end)"

    @classmethod
    def claims(cls, spec: str, path: Path) -> int | None:
        if path.is_file():
            return None if is_image_file(path) else 1
        return 4 if path.suffix.lower() in VIDEO_EXTENSIONS else None

    def __init__(self, spec: str, realtime: bool = False, loop: bool = False, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.live = realtime
        self.retries = 0  # the end of a file is the end (unless it loops)
        self.loop = loop
        self.loops = 0
        self.api = cv2.CAP_FFMPEG if opencv_has("FFMPEG") else cv2.CAP_ANY
        self._t0: float | None = None

    def describe(self) -> str:
        return f"video file '{self.spec}'"

    def _open(self) -> None:
        if not Path(self.spec).is_file():
            from edgeport.runtime.paths import what_is

            raise SourceError(f"expected a video file, received '{self.spec}' {what_is(self.spec)}")
        super()._open()
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
        self.frame_count = int(count) if 0 < count < 1e9 else 0  # what the file's header says (0: unknown)
        self.reached_end = False

    def ended_early(self) -> str | None:
        """Why the file ended before the frame count its header gives (a truncated or damaged
        file), or None. Only once it was read to its end; a small shortfall is tolerated, as
        containers estimate the count from duration x FPS."""
        if not getattr(self, "reached_end", False) or not self.frame_count or self.loop:
            return None
        tolerance = max(2, int(0.02 * self.frame_count))
        if self._index >= self.frame_count - tolerance:
            return None
        return (f"{self.describe()} ended after {self._index} of the {self.frame_count} frames its header "
                "announces: the file is truncated or damaged")

    def _fix_hint(self) -> str:
        return "expected a video OpenCV can decode (FFmpeg backend: mp4/avi/mkv...)"

    def _grab(self) -> np.ndarray | None:
        if self.live:  # pace at the file's FPS like a camera would deliver
            fps = self.fps or 30.0
            if self._t0 is None:
                self._t0 = time.monotonic()
            due = self._t0 + self._index / fps
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                raise _Stop
        try:
            return super()._grab()
        except _Stop:
            if not self.loop or self._stop.is_set():
                self.reached_end = True
                raise
        # --loop: start the file again (a file that yields no frame at all ends the run)
        self._close()
        self._open()
        self.loops += 1
        if self.live:
            self._t0 = time.monotonic() - self._index / (self.fps or 30.0)
        return super()._grab()


@SOURCES.register("stream")
class StreamSource(_CaptureSource):
    """An RTSP/HTTP(S) network stream through FFmpeg; newest frame only."""

    kind = "stream"
    spec_help = "an rtsp://, rtmp:// or http(s):// stream URL"

    @classmethod
    def claims(cls, spec: str, path: Path) -> int | None:
        return 0 if re.match(r"(rtsp|rtsps|rtmp|http|https|udp|tcp)://", spec, re.I) else None
    live = True
    open_timeout_ms = 5000

    def __init__(self, spec: str, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.api = cv2.CAP_FFMPEG if opencv_has("FFMPEG") else cv2.CAP_ANY

    def describe(self) -> str:
        return f"stream '{mask_secrets(self.spec)}'"  # no credentials in logs and errors

    def _params(self) -> list[int]:
        params = []
        for name, value in (("CAP_PROP_OPEN_TIMEOUT_MSEC", self.open_timeout_ms), ("CAP_PROP_READ_TIMEOUT_MSEC", 5000)):
            if hasattr(cv2, name):
                params += [getattr(cv2, name), value]
        return params

    def _fix_hint(self) -> str:
        return ("check the URL, credentials and that the camera is reachable "
                "(try it with `ffplay URL`); OpenCV needs its FFmpeg backend for streams")


def opencv_has(backend: str) -> bool:
    """True when this OpenCV build has the video backend ('GSTREAMER', 'FFMPEG', 'V4L2', ...)."""
    api = getattr(cv2, f"CAP_{backend.upper()}", None)
    if api is None:
        return False
    registry = getattr(cv2, "videoio_registry", None)
    if registry is not None and hasattr(registry, "hasBackend"):
        return bool(registry.hasBackend(api))
    names = {"GSTREAMER": "GStreamer", "V4L2": "v4l/v4l2"}
    m = re.search(rf"^\s*{re.escape(names.get(backend.upper(), backend.upper()))}:\s*(\S+)",
                  cv2.getBuildInformation(), re.M)
    return bool(m and m.group(1).upper() != "NO")


@SOURCES.register("gstreamer")
class GStreamerSource(_CaptureSource):
    """A GStreamer pipeline ending in appsink (Jetson CSI: nvarguscamerasrc ! ... ! appsink)."""

    kind = "gstreamer"
    spec_help = "a GStreamer pipeline (contains '!')"

    @classmethod
    def claims(cls, spec: str, path: Path) -> int | None:
        return 2 if "!" in spec and not path.exists() else None
    live = True
    api = cv2.CAP_GSTREAMER

    def describe(self) -> str:
        return f"GStreamer pipeline '{mask_secrets(self.spec)}'"  # location=rtsp://user:pw@..., user-pw=

    def _open(self) -> None:
        if not opencv_has("GSTREAMER"):
            raise SourceError(
                f"could not open {self.describe()}: this OpenCV {cv2.__version__} was built without GStreamer; "
                f"use an OpenCV with GStreamer (on a Jetson the JetPack python3-opencv, "
                f"in a venv made with --system-site-packages)"
            )
        super()._open()

    def _fix_hint(self) -> str:
        return ("check the pipeline with `gst-launch-1.0` (it must end in "
                "'! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1')")


def jetson_csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """A GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc) delivering BGR to OpenCV."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM),width={width},height={height},"
        f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! "
        f"video/x-raw,format=BGR ! appsink drop=1 max-buffers=1"
    )


# --- image folders / globs -----------------------------------------------------------------


@SOURCES.register("images")
class ImageFolderSource(Source):
    """A folder (sorted, recursive) or glob of images, in order; undecodable files are bad frames."""

    kind = "images"
    spec_help = "an image folder or glob"

    @classmethod
    def claims(cls, spec: str, path: Path) -> int | None:
        # an existing file or folder is what it is, whatever characters its name has ('a[1].jpg', 'clip!1')
        if path.is_dir() or (path.is_file() and is_image_file(path)):
            return 1
        if path.exists():
            return None
        return 3 if any(ch in spec for ch in "*?[") else 4 if is_image_file(path) else None
    live = False

    def __init__(self, spec: str, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.retries = 0

    def describe(self) -> str:
        return f"images '{self.spec}'"

    def _open(self) -> None:
        p = Path(self.spec)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f))
        else:
            files = sorted(Path(f) for f in glob.glob(self.spec, recursive=True) if is_image_file(f))
        if not files:
            raise SourceError(
                f"expected image files (.jpg/.png/.bmp/.gif) in {self.describe()}, found none"
            )
        self.files = files
        self._pos = 0

    def _grab(self) -> np.ndarray | None:
        if self._pos >= len(self.files):
            raise _Stop
        path = self.files[self._pos]
        self._pos += 1
        try:
            return cv2.cvtColor(load_rgb(path), cv2.COLOR_RGB2BGR)
        except ImageDecodeError as exc:
            log.warning("skipping a bad image: %s", exc)
            return None

    def _next_frame(self) -> Frame:
        name = str(self.files[self._pos]) if self._pos < len(self.files) else ""
        frame = super()._next_frame()
        frame.name = name
        return frame


# --- Raspberry Pi camera (picamera2) -----------------------------------------------------


@SOURCES.register("picamera2")
class PiCamera2Source(Source):
    """The Raspberry Pi camera through libcamera's picamera2 (``--source picamera2[:N]``)."""

    kind = "picamera2"
    spec_help = "picamera2[:N]"

    @classmethod
    def claims(cls, spec: str, path: Path) -> int | None:
        return 0 if re.fullmatch(r"picamera2(?::\d+)?", spec) else None
    live = True

    def __init__(self, spec: str, **kw: Any) -> None:
        super().__init__(spec, **kw)
        m = re.fullmatch(r"picamera2(?::(\d+))?", spec)
        self.camera_num = int(m.group(1)) if m and m.group(1) else 0

    def describe(self) -> str:
        return f"picamera2 camera {self.camera_num}"

    def _open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                f"could not open {self.describe()}: the picamera2 package is not importable ({exc}); "
                f"on Raspberry Pi OS: sudo apt install python3-picamera2 and make the venv with --system-site-packages"
            ) from exc
        try:
            cam = Picamera2(self.camera_num)
            size = (self.width or 640, self.height or 480)
            # "RGB888" is BGR byte order in memory, which is what OpenCV expects.
            cam.configure(cam.create_preview_configuration(main={"size": size, "format": "RGB888"}, buffer_count=2))
            cam.start()
        except (RuntimeError, IndexError, OSError) as exc:
            raise SourceError(f"could not open {self.describe()}: {exc}; check `rpicam-hello --list-cameras`") from exc
        self._cam = cam
        self.fps = self.req_fps

    def _grab(self) -> np.ndarray | None:
        try:
            image = self._cam.capture_array("main")
        except (RuntimeError, OSError) as exc:
            log.warning("%s: %s", self.describe(), exc)
            raise _Stop from exc
        return image[:, :, :3] if image.ndim == 3 and image.shape[2] == 4 else image

    def _close(self) -> None:
        cam = getattr(self, "_cam", None)
        if cam is not None:
            try:
                cam.stop()
                cam.close()
            except (RuntimeError, OSError):
                pass
            self._cam = None


# --- factory ------------------------------------------------------------------------------


def source_kind(spec: str) -> str:
    """The source type a --source string names: the registered kind that claims it most surely
    (:meth:`Source.claims`)."""
    s = str(spec).strip()
    p = Path(s)
    claims = [(c, name) for name in SOURCES.in_order()
              if (c := SOURCES.get(name).claims(s, p)) is not None]
    if claims:
        return min(claims)[1]
    raise SourceError(
        f"expected --source to be {source_help()}; received '{mask_secrets(spec)}'"
        + (" (no such file or folder)" if not p.exists() else f" ({_what_is(p)})")
    )


def source_help() -> str:
    """What --source takes, from every registered kind."""
    kinds = [SOURCES.get(n).spec_help for n in SOURCES.in_order() if SOURCES.get(n).spec_help]
    return ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else "".join(kinds)


def _what_is(p: Path) -> str:
    from edgeport.runtime.paths import what_is

    return what_is(p).removeprefix("which ")


def open_source(spec: str, kind: str | None = None, realtime: bool = False, loop: bool = False,
                **kw: Any) -> Source:
    """Create (not yet started) the source for ``spec``; use it with ``with``. ``loop``: a video file
    starts again at its end (a camera stand-in that never ends)."""
    kind = kind or source_kind(spec)
    cls = SOURCES.get(kind)
    if kind == "video":
        return cls(spec, realtime=realtime, loop=loop, **kw)
    return cls(spec, **kw)
