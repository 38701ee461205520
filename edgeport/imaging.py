"""Image decoding and resizing shared by every stage (numpy + OpenCV only).

Training, calibration, verification, the runtime and the benchmarks all go
through :func:`load_rgb` and :func:`resize`, so a device sees pixels prepared
exactly as the model saw them in training.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgeport.contract import DEFAULT_RESIZE
from edgeport.contract import RESIZE_METHODS as RESIZE_NAMES
from edgeport.errors import DataError

#: File endings read as images (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

#: OpenCV interpolation per resize method named in a model's input contract.
RESIZE_METHODS = {
    "area": cv2.INTER_AREA,
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
}
assert tuple(RESIZE_METHODS) == RESIZE_NAMES


#: Images with more pixels than this are refused before decoding (a 425 kB PNG can hold
#: 20000x20000 pixels = 1.2 GB decoded, 2.4 GB at peak). 50 MP keeps 8160x6120 phone photos;
#: change it with any command's ``--max-image-pixels N`` or EDGEPORT_MAX_IMAGE_PIXELS.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
MAX_PIXELS_ENV = "EDGEPORT_MAX_IMAGE_PIXELS"


class ImageDecodeError(DataError):
    """A file could not be decoded as an image."""


class ImageTooLargeError(ImageDecodeError):
    """An image has more pixels than the limit (refused before decoding; skipped like an unreadable one)."""


def _max_pixels_from_env() -> int:
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"expected {MAX_PIXELS_ENV} to be a positive number of pixels, received {text!r}")
    return value


_max_pixels = _max_pixels_from_env()


def max_image_pixels() -> int:
    """The current pixel limit of :func:`decode_rgb`."""
    return _max_pixels


def set_max_image_pixels(pixels: int) -> int:
    """Set the pixel limit (``--max-image-pixels``); returns the previous one."""
    global _max_pixels
    if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 1:
        raise DataError(f"expected --max-image-pixels to be a positive integer, received {pixels!r}")
    previous, _max_pixels = _max_pixels, pixels
    return previous


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    o = 2
    while o + 4 <= len(b):
        if b[o] != 0xFF:
            return None
        marker = b[o + 1]
        if marker == 0xFF:  # fill byte
            o += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # stand-alone markers
            o += 2
            continue
        length = int.from_bytes(b[o + 2 : o + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            if o + 9 > len(b):
                return None
            return int.from_bytes(b[o + 7 : o + 9], "big"), int.from_bytes(b[o + 5 : o + 7], "big")
        if length < 2:
            return None
        o += 2 + length
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from an image's header without decoding it, or None when unknown.

    PNG, JPEG, GIF and BMP headers are read here; other formats through Pillow's
    lazy open when it is installed.
    """
    b = bytes(data[:1 << 16]) if len(data) > 1 << 16 else bytes(data)
    try:
        if b.startswith(b"\x89PNG\r\n\x1a\n") and len(b) >= 24:
            return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
        if b[:6] in (b"GIF87a", b"GIF89a") and len(b) >= 10:
            return int.from_bytes(b[6:8], "little"), int.from_bytes(b[8:10], "little")
        if b.startswith(b"BM") and len(b) >= 26:
            if int.from_bytes(b[14:18], "little") == 12:  # OS/2 core header
                return int.from_bytes(b[18:20], "little"), int.from_bytes(b[20:22], "little")
            return (abs(int.from_bytes(b[18:22], "little", signed=True)),
                    abs(int.from_bytes(b[22:26], "little", signed=True)))
        if b.startswith(b"\xff\xd8"):
            size = _jpeg_size(data if len(data) <= 1 << 24 else data[: 1 << 24])
            if size is not None:
                return size
    except (IndexError, ValueError):
        return None
    return _pil_size(data)


def _pil_size(data: bytes) -> tuple[int, int] | None:
    try:
        import io

        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:  # lazy: reads the header only
            return int(im.size[0]), int(im.size[1])
    except Exception:  # noqa: BLE001 - not an image Pillow knows: the decoders say so later
        return None


def check_pixels(data: bytes, name: str = "<bytes>") -> None:
    """ImageTooLargeError when the header says the image has more pixels than the limit."""
    size = image_size(data)
    if size is not None and size[0] * size[1] > _max_pixels:
        w, h = size
        raise ImageTooLargeError(
            f"expected an image of at most {_max_pixels:,} pixels, received {w}x{h} = {w * h:,} pixels "
            f"({w * h * 3 / 1e9:.1f} GB decoded), refused before decoding: {name}; "
            f"raise the limit with the command's --max-image-pixels N flag (or {MAX_PIXELS_ENV}=N) if the machine "
            "has the memory"
        )


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a visible file with an image ending."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _decode_with_pil(data: bytes) -> np.ndarray | None:
    try:
        import io

        from PIL import Image  # optional: only a fallback for old OpenCV builds
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.seek(0)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception:  # noqa: BLE001 - any PIL failure means "not decodable"
        return None


def decode_rgb(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to an HxWx3 uint8 RGB array.

    Grayscale, RGBA, CMYK and 16-bit images are converted to 8-bit RGB; a GIF
    gives its first frame. Raises ImageDecodeError when undecodable, and
    ImageTooLargeError (a subclass) for more pixels than :func:`max_image_pixels`,
    read from the header before anything is decoded.
    """
    check_pixels(data, name)
    buf = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if bgr is not None and bgr.ndim == 3 and bgr.shape[2] == 3 and min(bgr.shape[:2]) > 0:
        return np.ascontiguousarray(bgr[:, :, ::-1])
    rgb = _decode_with_pil(data) if buf.size else None
    if rgb is not None and rgb.ndim == 3 and min(rgb.shape[:2]) > 0:
        return rgb
    raise ImageDecodeError(
        f"expected a decodable JPEG/PNG/BMP/GIF image, received {len(data)} bytes that "
        f"neither OpenCV nor Pillow can decode: {name}"
    )


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB (see :func:`decode_rgb`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read image file {path}: {exc}") from exc
    return decode_rgb(data, str(path))


def resize(image: np.ndarray, size: int | tuple[int, int], method: str = DEFAULT_RESIZE) -> np.ndarray:
    """Resize an HxWxC image to ``size`` (an int for square, or (height, width)).

    The aspect ratio is not kept (the whole frame is squeezed), as in training.
    """
    h, w = (size, size) if isinstance(size, int) else size
    try:
        interp = RESIZE_METHODS[method]
    except KeyError:
        raise DataError(
            f"unknown resize method '{method}'; expected one of {sorted(RESIZE_METHODS)}"
        ) from None
    if image.shape[0] == h and image.shape[1] == w:
        return image
    return cv2.resize(image, (w, h), interpolation=interp)


def load_resized(path: str | os.PathLike[str], size: int | tuple[int, int], method: str = DEFAULT_RESIZE) -> np.ndarray:
    """Load ``path`` as RGB uint8 and resize it to ``size``."""
    return resize(load_rgb(path), size, method)
