"""edgeport.imaging: every supported format decodes to 8-bit RGB."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeport.imaging import ImageDecodeError, is_image_file, load_resized, load_rgb, resize

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture()
def rgb():
    return np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)


def test_jpeg_is_returned_as_rgb_not_bgr(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 255  # pure red in RGB
    PIL.fromarray(img).save(tmp_path / "red.png")
    out = load_rgb(tmp_path / "red.png")
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("mode, ext", [("L", "png"), ("RGBA", "png"), ("CMYK", "jpg"), ("P", "gif"), ("RGB", "bmp")])
def test_modes_and_formats_become_rgb(tmp_path, rgb, mode, ext):
    path = tmp_path / f"img.{ext}"
    PIL.fromarray(rgb).convert(mode).save(path)
    out = load_rgb(path)
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8


def test_sixteen_bit_png_scaled_to_eight_bit(tmp_path, rgb):
    cv2.imwrite(str(tmp_path / "deep.png"), rgb[:, :, ::-1].astype(np.uint16) * 257)
    out = load_rgb(tmp_path / "deep.png")
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).max() <= 1


def test_corrupt_file_raises_clear_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(ImageDecodeError, match="bad.jpg"):
        load_rgb(bad)


def test_resize_and_filters(tmp_path, rgb):
    assert resize(rgb, 8).shape == (8, 8, 3)
    assert resize(rgb, (10, 20), "bilinear").shape == (10, 20, 3)
    PIL.fromarray(rgb).save(tmp_path / "a.png")
    assert load_resized(tmp_path / "a.png", 12).shape == (12, 12, 3)
    assert is_image_file("x/Y.JPEG") and not is_image_file(".hidden.jpg") and not is_image_file("a.txt")
