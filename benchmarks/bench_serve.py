"""Does the live view slow the loop? Loop FPS without --serve, and with --serve and a connected MJPEG client.

    python benchmarks/bench_serve.py EXPORT [--frames 20000] [--stream-fps 10] [--repeats 3]

Runs the real `edgeport run` on a looping 640x480 video (a camera stand-in) of synthetic shapes: once
plain, once with --serve and a client reading /stream.mjpg the whole time (what a browser does), in
alternation, ``--repeats`` times each; prints each run's FPS, the medians and their ratio (goal >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clip(path: Path) -> Path:
    import cv2
    import numpy as np

    from edgeport.synthetic import CLASSES, draw

    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for i in range(60):
        img = cv2.resize(draw(CLASSES[i % len(CLASSES)], 128, rng), (640, 480))
        writer.write(np.ascontiguousarray(img[:, :, ::-1]))
    writer.release()
    return path


def run(export: str, clip: Path, frames: int, serve: bool, stream_fps: float) -> tuple[float, int]:
    """(loop FPS, JPEGs the client received)."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "s.json"
        argv = [sys.executable, "-m", "edgeport", "run", export, "--source", str(clip), "--loop", "--max-frames",
                str(frames), "--threads", "1", "--json-summary", str(summary), "--headless"]
        port = free_port()
        if serve:
            argv += ["--serve", str(port), "--stream-fps", str(stream_fps)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        got = [0]
        if serve:
            def client() -> None:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stream.mjpg", timeout=30) as r:
                            while chunk := r.read(65536):
                                got[0] += chunk.count(b"--edgeportframe")
                        return
                    except OSError:
                        time.sleep(0.05)

            threading.Thread(target=client, daemon=True).start()
        _, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise SystemExit(err[-2000:])
        return json.loads(summary.read_text())["fps"], got[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export")
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--stream-fps", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4")
        plain, served = [], []
        for i in range(args.repeats):
            fps, _ = run(args.export, clip, args.frames, False, args.stream_fps)
            plain.append(fps)
            fps2, jpegs = run(args.export, clip, args.frames, True, args.stream_fps)
            served.append(fps2)
            print(f"run {i + 1}: without --serve {fps:.0f} FPS; with --serve and an MJPEG client {fps2:.0f} FPS "
                  f"({jpegs} JPEGs received)", flush=True)
    a, b = statistics.median(plain), statistics.median(served)
    print(f"median loop FPS: without --serve {a:.0f}, with --serve + client {b:.0f}; ratio {b / a:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
