"""Write a short video from still images: a real file standing in for a camera."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from edgeport.errors import DataError
from edgeport.imaging import load_rgb


def images_to_video(
    images: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    fps: float = 10.0,
    frames_per_image: int = 5,
    size: tuple[int, int] = (640, 480),
) -> Path:
    """Write ``images`` (each held for ``frames_per_image`` frames) as an mp4 of ``size`` (w, h).

    Returns the path. The frame order follows ``images``, so frame i shows
    ``images[i // frames_per_image]``. Each image is stretched to the frame
    (not letterboxed): the runtime squeezes the whole frame to the model's
    input as training squeezed whole images, so the proportions come back.
    The default 640x480 is a common camera size, and large enough for the
    overlay text of the annotated video to be read; small images are enlarged
    bilinearly (smooth edges), large ones shrunk by area.
    """
    if not images:
        raise DataError("expected at least one image to make a video from, received none")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise DataError(f"OpenCV cannot write an mp4 (mp4v) video to {out}")
    try:
        for path in images:
            rgb = load_rgb(path)
            enlarge = size[0] * size[1] > rgb.shape[0] * rgb.shape[1]  # smooth when enlarging, no blocks
            frame = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR if enlarge else cv2.INTER_AREA)[:, :, ::-1]
            for _ in range(frames_per_image):
                writer.write(np.ascontiguousarray(frame))
    finally:
        writer.release()
    return out
