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

from edgeport.contract import DEFAULT_RESIZE, RESIZE_METHODS as RESIZE_NAMES
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


class ImageDecodeError(DataError):
    """A file could not be decoded as an image."""


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
    gives its first frame. Raises ImageDecodeError when undecodable.
    """
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
