"""Helpers of the runtime tests: synthetic frames, videos, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from edgeport.synthetic import CLASSES, draw

ROOT = Path(__file__).resolve().parents[2]


def run_edgeport(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """`python -m edgeport ARGS` in a subprocess (text output captured)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "edgeport", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT), **kw)


def write_video(path: Path, images: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write RGB images as an mp4 (mp4v) video."""
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for img in images:
        writer.write(np.ascontiguousarray(img[:, :, ::-1]))
    writer.release()
    return path


def shapes(n: int, size: int = 64, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """``n`` synthetic (label, RGB image) pairs cycling through the classes."""
    rng = np.random.default_rng(seed)
    return [(CLASSES[i % len(CLASSES)], draw(CLASSES[i % len(CLASSES)], size, rng)) for i in range(n)]
