"""edgeport.imaging: every supported format decodes to 8-bit RGB."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import PIL.Image  # the [dev] extra's pillow writes the reference images (no skip: the main job has it)
import pytest

from edgeport.imaging import ImageDecodeError, is_image_file, load_resized, load_rgb, resize


@pytest.fixture()
def rgb():
    return np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)


def test_jpeg_is_returned_as_rgb_not_bgr(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 255  # pure red in RGB
    PIL.Image.fromarray(img).save(tmp_path / "red.png")
    out = load_rgb(tmp_path / "red.png")
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("mode, ext", [("L", "png"), ("RGBA", "png"), ("CMYK", "jpg"), ("P", "gif"), ("RGB", "bmp")])
def test_modes_and_formats_become_rgb(tmp_path, rgb, mode, ext):
    path = tmp_path / f"img.{ext}"
    PIL.Image.fromarray(rgb).convert(mode).save(path)
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
    PIL.Image.fromarray(rgb).save(tmp_path / "a.png")
    assert load_resized(tmp_path / "a.png", 12).shape == (12, 12, 3)
    assert is_image_file("x/Y.JPEG") and not is_image_file(".hidden.jpg") and not is_image_file("a.txt")


def huge_png(path, side: int = 20000):
    """A real side x side PNG (1-bit gray, a few kB) that decodes to side*side*3 bytes of RGB."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + b"\x00" * ((side + 7) // 8)) * side
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("ext", ["png", "jpg", "gif", "bmp", "tiff"])
def test_image_size_from_the_header_matches_the_decoded_size(tmp_path, rgb, ext):
    from edgeport.imaging import image_size

    path = tmp_path / f"img.{ext}"
    PIL.Image.fromarray(rgb).save(path, **({"progressive": True} if ext == "jpg" else {}))
    assert image_size(path.read_bytes()) == (40, 30)
    assert load_rgb(path).shape == (30, 40, 3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    """A 20000x20000 PNG of a few kB (1.2 GB decoded): refused from its header, in a fresh process whose
    peak memory shows nothing was decoded."""
    import subprocess

    path = huge_png(tmp_path / "huge.png")
    assert path.stat().st_size < 100_000
    # VmHWM, not ru_maxrss: ru_maxrss survives fork+exec, so it would report this (pytest) process's peak
    code = ("import sys\n"
            "from edgeport.imaging import load_rgb, ImageTooLargeError\n"
            "try:\n    load_rgb(sys.argv[1])\nexcept ImageTooLargeError as e:\n    print('refused:', e)\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
            "print('peak_mb', int(hwm) / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120).stdout
    assert "refused: expected an image of at most 50,000,000 pixels, received 20000x20000 = 400,000,000" in out
    assert float(out.split("peak_mb")[1]) < 400, out


def test_pixel_limit_can_be_changed_and_counts_as_a_decode_error(tmp_path, rgb):
    from edgeport.imaging import ImageTooLargeError, max_image_pixels, set_max_image_pixels

    PIL.Image.fromarray(rgb).save(tmp_path / "a.png")
    previous = set_max_image_pixels(40 * 30 - 1)
    try:
        with pytest.raises(ImageTooLargeError, match="at most 1,199 pixels, received 40x30") as err:
            load_rgb(tmp_path / "a.png")
        assert isinstance(err.value, ImageDecodeError)  # skipped and counted wherever unreadable files are
        set_max_image_pixels(40 * 30)
        assert load_rgb(tmp_path / "a.png").shape == (30, 40, 3)
    finally:
        set_max_image_pixels(previous)
    assert max_image_pixels() == previous
