"""What every sink is: the :class:`Sink` interface, the :data:`SINKS` registry, the delivery queue
(memory, then disk) and the publishing policy (every frame, on change, at most every N seconds).

A sink receives one JSON object per published frame. Sinks that deliver over a network
(:class:`QueuedSink`) never block the camera loop: :meth:`Sink.offer` puts the message in a bounded
queue, and a thread delivers it, reconnecting with backoff while the destination is down. Nothing is
lost up to the bound (memory, then an optional disk spool that also survives a restart); beyond it new
messages are dropped and counted. Every target is shown with its credentials masked.

Light at import (stdlib only): the CLI builds its help from :data:`SINKS`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

from edgeport.errors import ConfigError, EdgeportError
from edgeport.registry import Registry
from edgeport.runtime.masking import mask_secrets

log = logging.getLogger(__name__)

SINKS: Registry[type["Sink"]] = Registry("sink")

#: publishing policies (``--publish``)
PUBLISH_MODES = ("every", "change")


class SinkDown(EdgeportError):
    """The destination cannot take messages now (unreachable, 5xx): keep them and retry later."""


class SinkRejected(EdgeportError):
    """The destination refused this message for good (a 4xx): drop it, count it, go on."""


class Sink:
    """Base class: one destination of results. Subclasses describe themselves with the class attributes."""

    #: the registry name and the run option that names a target of this sink (``--mqtt URL``)
    name: ClassVar[str] = ""
    #: what a target looks like, for the CLI help
    target_help: ClassVar[str] = ""
    #: URL schemes this sink takes (empty: a plain path or '-')
    url_schemes: ClassVar[tuple[str, ...]] = ()
    #: the module it needs beyond the standard library, and the command that installs it
    module: ClassVar[str] = ""
    install: ClassVar[str] = ""

    def __init__(self, target: str, options: "SinkOptions") -> None:
        self.target = target
        self.options = options
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self.reconnects = 0
        self.last_error = ""

    @classmethod
    def matches(cls, target: str) -> bool:
        """True when ``target`` is for this sink (its URL scheme)."""
        return target.split("://", 1)[0].lower() in cls.url_schemes if "://" in target else not cls.url_schemes

    def describe(self) -> str:
        """The target, credentials masked (the only form that appears in messages and logs)."""
        return f"{self.name} {mask_secrets(self.target)}"

    def start(self) -> None:
        """Open the destination (a ConfigError for a target that can never work, e.g. a refused login)."""

    def offer(self, payload: bytes) -> None:
        """Take one message (a JSON object, UTF-8); never blocks for long."""
        raise NotImplementedError

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, keep the rest on disk where there is a spool."""

    @property
    def up(self) -> bool:
        return True

    def health(self) -> dict[str, Any]:
        """Counters and state, for /healthz, /metrics and the summary."""
        return {"sink": self.name, "target": mask_secrets(self.target), "up": self.up, "sent": self.sent,
                "dropped": self.dropped, "rejected": self.rejected, "reconnects": self.reconnects,
                "queued_memory": 0, "queued_disk": 0, "last_error": self.last_error}


class SinkOptions:
    """What every sink may use: queue bounds, spool folder, TLS CA file (plain values, no resource)."""

    def __init__(self, queue_size: int = 10_000, spool_dir: str | None = None, spool_mb: float = 100.0,
                 timeout: float = 5.0, settings: dict[str, dict[str, Any]] | None = None) -> None:
        self.queue_size, self.spool_dir, self.spool_mb, self.timeout = queue_size, spool_dir, spool_mb, timeout
        #: per sink name, its own settings (keyword arguments of its class), e.g. {"jsonl": {"max_mb": 10}}
        self.settings = settings or {}


def sink_for(option: str, target: str, options: SinkOptions) -> Sink:
    """The sink the run option ``option`` (e.g. 'mqtt') names, for ``target``; ConfigError for a target
    it cannot take."""
    cls = SINKS.get(option)
    if not cls.matches(target):
        want = " or ".join(f"{s}://..." for s in cls.url_schemes) or "a file path"
        raise ConfigError(f"expected --{option} to be {want}, received '{mask_secrets(target)}'")
    return cls(target, options, **options.settings.get(option, {}))


class PublishPolicy:
    """Which results are published: ``every`` frame or on a ``change`` of the top label, and at most one
    per ``interval`` seconds (0: no limit). The first result is always published."""

    def __init__(self, mode: str = "every", interval: float = 0.0) -> None:
        if mode not in PUBLISH_MODES:
            raise ConfigError(f"expected --publish to be one of {', '.join(PUBLISH_MODES)}, received '{mode}'")
        if not interval >= 0:
            raise ConfigError(f"expected --publish-interval >= 0 seconds, received {interval}")
        self.mode, self.interval = mode, interval
        self._label: str | None = None
        self._last = -float("inf")
        self.published = 0
        self.skipped = 0

    def wants(self, top_label: str | None, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        changed = top_label != self._label
        ok = (self.mode == "every" or changed or self.published == 0) and now - self._last >= self.interval
        if ok:
            self._label, self._last = top_label, now
            self.published += 1
        else:
            self.skipped += 1
        return ok


# --- the delivery queue ---------------------------------------------------------------------


class DeliveryQueue:
    """FIFO of messages: up to ``memory`` in memory, then appended to segment files in ``spool`` (up to
    ``spool_bytes``); beyond that a new message is dropped (counted by the caller). Segments left by an
    earlier process are delivered first. Thread-safe."""

    SEGMENT_BYTES = 1 << 20
    #: the first segment's number: spilled memory goes before it at exit
    FIRST_SEQ = 10**9

    def __init__(self, memory: int, spool: Path | None = None, spool_bytes: int = 0) -> None:
        self.memory_limit = memory
        self._mem: deque[bytes] = deque()
        self._lock = threading.Condition()
        self.spool = spool
        self.spool_bytes = spool_bytes if spool is not None else 0
        self._segments: deque[Path] = deque()  # oldest first
        self._read: deque[bytes] = deque()  # lines of the oldest segment not yet taken
        self._read_from: Path | None = None
        self._disk_count = 0
        self._disk_size = 0
        self._writer: Any = None
        self._written = 0
        if spool is not None:
            spool.mkdir(parents=True, exist_ok=True)
            for seg in sorted(spool.glob("seg-*.jsonl")):
                lines = [ln for ln in seg.read_bytes().split(b"\n") if ln]
                if lines:
                    self._segments.append(seg)
                    self._disk_count += len(lines)
                    self._disk_size += seg.stat().st_size
                else:
                    seg.unlink()

    # -- sizes
    @property
    def in_memory(self) -> int:
        return len(self._mem)

    @property
    def on_disk(self) -> int:
        return self._disk_count

    def __len__(self) -> int:
        return len(self._mem) + self._disk_count

    # -- writing
    def put(self, item: bytes) -> bool:
        """Queue ``item``; False when the queue is full (the item is dropped)."""
        with self._lock:
            if not self._disk_count and len(self._mem) < self.memory_limit:
                self._mem.append(item)
            elif self.spool is not None and self._disk_size + len(item) + 1 <= self.spool_bytes:
                self._append_disk(item)
            else:
                return False
            self._lock.notify_all()
            return True

    def _append_disk(self, item: bytes) -> None:
        if self._writer is None or self._written >= self.SEGMENT_BYTES:
            self._close_writer()
            seq = self._seq(self._segments[-1]) + 1 if self._segments else self.FIRST_SEQ
            path = self.spool / f"seg-{seq:012d}.jsonl"
            self._writer = open(path, "ab")
            self._written = 0
            self._segments.append(path)
        line = item.replace(b"\n", b" ") + b"\n"
        self._writer.write(line)
        self._written += len(line)
        self._disk_count += 1
        self._disk_size += len(line)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- reading
    def wait(self, timeout: float) -> bool:
        """Wait until something is queued (True) or ``timeout`` passes."""
        with self._lock:
            if not len(self):
                self._lock.wait(timeout)
            return bool(len(self))

    def peek(self, n: int) -> list[bytes]:
        """Up to ``n`` of the oldest items, left in the queue (take them with :meth:`pop`)."""
        with self._lock:
            out = list(self._mem)[:n]
            if len(out) < n and self._disk_count:
                self._load_segment()
                out += list(self._read)[: n - len(out)]
            return out

    def pop(self, n: int) -> None:
        """Remove the ``n`` oldest items (after they were delivered)."""
        with self._lock:
            while n and self._mem:
                self._mem.popleft()
                n -= 1
            while n and self._disk_count:
                self._load_segment()
                line = self._read.popleft()
                self._disk_count -= 1
                self._disk_size -= len(line) + 1
                n -= 1
                if not self._read:
                    self._drop_segment()

    def _load_segment(self) -> None:
        if self._read or not self._segments:
            return
        seg = self._segments[0]
        if seg == (Path(self._writer.name) if self._writer is not None else None):
            self._writer.flush()
            self._close_writer()  # the next put starts a new segment
        self._read = deque(ln for ln in seg.read_bytes().split(b"\n") if ln)
        self._read_from = seg

    def _drop_segment(self) -> None:
        seg = self._segments.popleft()
        try:
            seg.unlink()
        except OSError:
            pass
        if not self._segments:
            self._disk_size = self._disk_count = 0

    def spill(self) -> int:
        """Move what is in memory to the disk spool (at exit, so a restart delivers it); how many moved."""
        with self._lock:
            if self.spool is None or not self._mem:
                return 0
            items = list(self._mem)
            self._mem.clear()
            self._close_writer()
            # memory holds the oldest: a segment numbered before the others
            seq = self._seq(self._segments[0]) - 1 if self._segments else self.FIRST_SEQ
            path = self.spool / f"seg-{seq:012d}.jsonl"
            data = b"".join(i.replace(b"\n", b" ") + b"\n" for i in items)
            path.write_bytes(data)
            self._segments.appendleft(path)
            self._disk_count += len(items)
            self._disk_size += len(data)
            return len(items)

    def close(self) -> None:
        """Close the segment being written; rewrite the one being read to what is left of it."""
        with self._lock:
            self._close_writer()
            if self._read and self._read_from is not None and self._read_from.exists():
                tmp = self._read_from.with_suffix(".tmp")
                tmp.write_bytes(b"".join(ln + b"\n" for ln in self._read))
                os.replace(tmp, self._read_from)
                self._read.clear()

    @staticmethod
    def _seq(path: Path) -> int:
        return int(path.stem.split("-")[1])


class QueuedSink(Sink):
    """A sink that delivers from a :class:`DeliveryQueue` in its own thread, reconnecting with backoff.

    Subclasses implement :meth:`_connect` and :meth:`_deliver` (raising :class:`SinkDown` to keep the
    messages and retry, :class:`SinkRejected` to drop the first one), and may set :attr:`batch`.
    """

    #: messages handed to one :meth:`_deliver` call
    batch: ClassVar[int] = 1
    backoff_start: ClassVar[float] = 0.5
    backoff_max: ClassVar[float] = 30.0

    def __init__(self, target: str, options: SinkOptions) -> None:
        super().__init__(target, options)
        spool = None
        if options.spool_dir:
            import hashlib

            key = hashlib.sha256(target.encode()).hexdigest()[:12]
            spool = Path(options.spool_dir) / f"{self.name}-{key}"
        self.queue = DeliveryQueue(options.queue_size, spool, int(options.spool_mb * (1 << 20)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._rejected_logged = 0.0

    # -- hooks
    def _connect(self) -> None:
        """Make the destination ready (raise SinkDown when it is not reachable)."""

    def _disconnect(self) -> None:
        """Drop the connection (after an error, and at close)."""

    def _deliver(self, items: list[bytes]) -> int:
        """Deliver ``items`` in order; how many were delivered (from the first). Raise SinkDown/SinkRejected."""
        raise NotImplementedError

    # -- the interface
    @property
    def up(self) -> bool:
        return self._connected

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"edgeport-sink-{self.name}", daemon=True)
        self._thread.start()

    def offer(self, payload: bytes) -> None:
        if not self.queue.put(payload):
            self.dropped += 1
            if self.dropped in (1, 10, 100, 1000) or self.dropped % 10_000 == 0:
                log.warning("%s: queue full (%d in memory, %d on disk); %d message(s) dropped so far",
                            self.describe(), self.queue.in_memory, self.queue.on_disk, self.dropped)

    def close(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.queue) and time.monotonic() < deadline and self._thread is not None \
                and self._thread.is_alive():  # a destination that is back within the timeout still gets them
            time.sleep(0.02)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, deadline - time.monotonic()))
        kept = self.queue.spill()
        left = len(self.queue) - self.queue.on_disk
        if kept or self.queue.on_disk:
            log.info("%s: %d message(s) kept in %s for the next start", self.describe(), self.queue.on_disk,
                     self.queue.spool)
        if left:
            self.dropped += left
            log.warning("%s: %d undelivered message(s) lost at exit (no --spool-dir)", self.describe(), left)
        self.queue.close()
        self._disconnect()
        self._connected = False

    def health(self) -> dict[str, Any]:
        return {**super().health(), "queued_memory": self.queue.in_memory, "queued_disk": self.queue.on_disk}

    # -- the delivery thread
    def _run(self) -> None:
        delay = self.backoff_start
        while not self._stop.is_set():
            if not self._connected:
                try:
                    self._connect()
                    self._connected = True
                    delay = self.backoff_start
                except SinkDown as exc:
                    self._note_down(exc)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff_max)
                    continue
            if not self.queue.wait(0.2):
                continue
            items = self.queue.peek(self.batch)
            try:
                done = self._deliver(items)
            except SinkRejected as exc:
                self.queue.pop(1)
                self.rejected += 1
                self.last_error = mask_secrets(str(exc))
                if time.monotonic() - self._rejected_logged > 10:
                    self._rejected_logged = time.monotonic()
                    log.warning("%s refused a message (dropped; %d so far): %s", self.describe(), self.rejected,
                                self.last_error)
                continue
            except SinkDown as exc:
                self._note_down(exc)
                self._disconnect()
                self._connected = False
                self.reconnects += 1
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            self.queue.pop(done)
            self.sent += done
            delay = self.backoff_start

    def _note_down(self, exc: BaseException) -> None:
        message = mask_secrets(str(exc))
        if message != self.last_error:
            log.warning("%s is down (%s); queueing and retrying with backoff", self.describe(), message)
        self.last_error = message


def describe_sinks(sinks: list[Sink]) -> str:
    return ", ".join(s.describe() for s in sinks)


def spool_folder_problem(path: str) -> str | None:
    """Why ``path`` cannot be a spool folder, or None."""
    p = Path(path)
    existing = next((a for a in (p, *p.parents) if a.exists()), None)
    if p.exists() and not p.is_dir():
        return f"expected --spool-dir to be a folder, received {path}, which is a file"
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        return f"expected --spool-dir in a folder this user can write, received {path}"
    return None
