"""Runtime fixtures: exported artifacts (tiny_export_dir), a shapes video, an image folder.

Nothing here imports TensorFlow: the runtime tests also run in the Pi-like venv.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from .helpers import shapes, write_video


@pytest.fixture(scope="session")
def export_dir(tiny_export_dir) -> Path:
    return Path(tiny_export_dir)


@pytest.fixture(scope="session")
def shapes_video(tmp_path_factory) -> Path:
    """A 20-frame 10 FPS mp4 of synthetic shapes (labels cycle through the classes)."""
    return write_video(tmp_path_factory.mktemp("video") / "shapes.mp4", [img for _, img in shapes(20)])


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> Path:
    """300 frames at 10 FPS (30 s when paced with --realtime)."""
    imgs = [img for _, img in shapes(10, size=48, seed=1)] * 30
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", imgs)


@pytest.fixture()
def image_folder(tmp_path) -> Path:
    """6 JPEGs in two subfolders plus one corrupt .jpg and a non-image file."""
    root = tmp_path / "imgs"
    for i, (label, img) in enumerate(shapes(6)):
        sub = root / ("a" if i < 3 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i:02d}_{label}.jpg"), img[:, :, ::-1])
    (root / "a" / "01b_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("not an image")
    return root
