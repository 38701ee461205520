"""Weeks without a restart, compressed: >= 200,000 frames through a looping video with --serve and --mqtt on,
an MJPEG client connected, the broker killed and restarted twice. RSS and open file descriptors are sampled
from /proc; every message the subscriber got is counted against the frames published (slow suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from .helpers import ROOT, shapes, write_video
from .services import Broker, Subscriber, free_port, sink_counts, wait_port

FRAMES = int(os.environ.get("EDGEPORT_SOAK_FRAMES", 200_000))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_soak_serve_and_mqtt_through_two_broker_restarts(export_dir, tmp_path):
    model = export_dir / "model_int8.tflite"
    clip = write_video(tmp_path / "clip.mp4", [img for _, img in shapes(10, seed=4)] * 30, fps=30)
    broker = Broker(tmp_path / "broker").start()
    sub = Subscriber(broker.port, "soak/cam", client_id="soak-sub")
    port = free_port()
    summary_file = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeport", "run", str(model), "--source", str(clip), "--loop", "--max-frames",
         str(FRAMES), "--serve", str(port), "--mqtt", f"mqtt://127.0.0.1:{broker.port}/soak/cam",
         "--queue-size", "5000", "--spool-dir", str(tmp_path / "spool"), "--spool-mb", "2",
         "--json-summary", str(summary_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    samples: list[tuple[int, float, int]] = []
    stop = threading.Event()

    def viewer() -> None:  # a browser's MJPEG client, connected the whole run
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stream.mjpg", timeout=30) as r:
                while not stop.is_set() and r.read(65536):
                    pass
        except OSError:
            pass

    t0 = time.monotonic()
    try:
        wait_port(port, 60)
        threading.Thread(target=viewer, daemon=True).start()
        restarts = 0
        while proc.poll() is None:
            time.sleep(1.0)
            try:
                frames = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/latest", timeout=5).read())[
                    "frames"]
                samples.append((frames, _rss_mb(proc.pid), _fds(proc.pid)))
            except (OSError, ValueError):
                continue
            if restarts < 2 and frames > FRAMES * (0.3 + 0.3 * restarts):
                broker.stop()
                time.sleep(2.0)
                broker.start()
                restarts += 1
        _, err = proc.communicate(timeout=120)
        wall = time.monotonic() - t0
        summary = json.loads(summary_file.read_text())
        published = summary["published"]
        line = summary["sink mqtt"]
        sent, dropped = (sink_counts(line)[k] for k in ("sent", "dropped"))
        got = set(sub.wait_for(sent, timeout=60))
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        sub.close()
        broker.stop()
    warm = [s for s in samples if s[0] >= FRAMES * 0.1]
    rss_start, rss_end = warm[0][1], warm[-1][1]
    fds = sorted({s[2] for s in warm})
    print(f"\nsoak: {summary['frames']} frames in {wall:.0f} s ({summary['fps']:.0f} FPS); RSS after warm-up "
          f"{rss_start:.1f} -> {rss_end:.1f} MB (max {max(s[1] for s in warm):.1f}); open fds {fds}; "
          f"published {published}, sent {sent}, received {len(got)} unique, dropped {dropped}; restarts {restarts}; "
          f"{line}", file=sys.stderr)
    assert proc.returncode == 0, err[-3000:]
    assert summary["frames"] == FRAMES and restarts == 2
    assert rss_end - rss_start < 20, (rss_start, rss_end)
    assert warm[-1][2] == warm[0][2] and fds[-1] - fds[0] <= 2, fds  # one socket more while the broker is away
    assert sent + dropped == published and got == got & set(range(FRAMES)) and len(got) == sent
    assert "reconnects 0," not in line
