"""The golden set every export carries: a few labelled images with the Keras model's probabilities.

On a device there is usually no validation set, only the export folder. ``edgeport export``
writes ``EXPORT/golden/``: about 32 stratified validation images as lossless PNG files
(downscaled to at most twice the model's input size, so the device's own resize runs on
them), the probabilities the Keras model gives for each (made with the contract's
preprocessing), and what each artifact gave on them in the export machine's engine.
``edgeport check EXPORT`` runs every artifact on the device through the runtime's own
preprocessing and compares. Pure numpy + OpenCV: no TensorFlow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from edgeport.contract import InputContract, check_labels
from edgeport.errors import ModelError
from edgeport.files import atomic_write_bytes, write_json
from edgeport.imaging import load_rgb

GOLDEN_DIR = "golden"
GOLDEN_FILE = "golden.json"
GOLDEN_KIND = "edgeport-golden"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class GoldenSet:
    """A read (and validated) golden set."""

    directory: Path
    labels: tuple[str, ...]  #: the model's classes, in output order
    contract: InputContract  #: how the reference probabilities were made
    files: tuple[str, ...]  #: PNG names inside ``directory``
    targets: np.ndarray  #: true class index per image
    reference: np.ndarray  #: the Keras model's probabilities [images, classes]
    figures: dict = field(default_factory=dict)  #: scheme -> what export measured on these images

    def images(self) -> list[np.ndarray]:
        """The golden images as HxWx3 uint8 RGB arrays (before the model's resize)."""
        return [load_rgb(self.directory / f) for f in self.files]


def stored_form(rgb: np.ndarray, contract: InputContract) -> np.ndarray:
    """How a golden image is stored: downscaled (area) so its long side is at most twice the model's
    input (never upscaled), keeping the aspect; the device then resizes it as it would a camera frame."""
    limit = 2 * max(contract.height, contract.width)
    h, w = rgb.shape[:2]
    scale = limit / max(h, w)
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def write_golden(directory: str | os.PathLike[str], images: Sequence[np.ndarray], targets: Sequence[int],
                 reference: np.ndarray, labels: Sequence[str], contract: InputContract,
                 figures: dict | None = None) -> Path:
    """Write ``directory/golden.json`` and one PNG per image (already in :func:`stored_form`)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    names = []
    for i, (img, t) in enumerate(zip(images, targets)):
        ok, png = cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))
        if not ok:
            raise ModelError(f"expected OpenCV to encode golden image {i} as PNG, it could not")
        name = f"{i:03d}.png"
        atomic_write_bytes(d / name, png.tobytes())
        names.append(name)
    data = {
        "kind": GOLDEN_KIND, "schema_version": SCHEMA_VERSION, "labels": list(labels), "input": contract.to_dict(),
        "images": [{"file": n, "label": labels[int(t)], "reference": [round(float(p), 7) for p in probs]}
                   for n, t, probs in zip(names, targets, np.asarray(reference, np.float64))],
        "figures": figures or {},
    }
    return write_json(d / GOLDEN_FILE, data)


def _bad(where: Path, what: str, received: object) -> ModelError:
    shown = str(received)
    return ModelError(f"expected {what} in {where}, received {shown[:100]}; re-run `edgeport export` to write it again")


def read_golden(directory: str | os.PathLike[str]) -> GoldenSet | None:
    """The golden set in ``directory`` (an export's ``golden/`` or the folder itself); None when absent."""
    d = Path(directory)
    if not (d / GOLDEN_FILE).is_file() and (d / GOLDEN_DIR / GOLDEN_FILE).is_file():
        d = d / GOLDEN_DIR
    path = d / GOLDEN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _bad(path, "JSON", exc) from exc
    if not isinstance(data, dict) or data.get("kind") != GOLDEN_KIND:
        raise _bad(path, f"a golden set (kind '{GOLDEN_KIND}')", type(data).__name__ if not isinstance(data, dict)
                   else data.get("kind"))
    if data.get("schema_version") != SCHEMA_VERSION:
        raise _bad(path, f"schema_version {SCHEMA_VERSION}", data.get("schema_version"))
    labels = check_labels(data.get("labels"), str(path))
    contract = InputContract.from_dict(data.get("input"), str(path))
    entries = data.get("images")
    if not isinstance(entries, list) or not entries:
        raise _bad(path, "a non-empty 'images' list", entries)
    files, targets, reference = [], [], []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("label") not in labels:
            raise _bad(path, f"image {i} to have a 'label' among the labels", e)
        f = e.get("file")
        if not isinstance(f, str) or "/" in f or "\\" in f or f.startswith(".") or not (d / f).is_file():
            raise _bad(path, f"image {i} to name a PNG file inside {d}", f)
        probs = e.get("reference")
        if (not isinstance(probs, list) or len(probs) != len(labels)
                or not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in probs)):
            raise _bad(path, f"image {i} to have {len(labels)} reference probabilities", probs)
        files.append(f)
        targets.append(labels.index(e["label"]))
        reference.append(probs)
    figures = data.get("figures") if isinstance(data.get("figures"), dict) else {}
    return GoldenSet(d, labels, contract, tuple(files), np.asarray(targets, np.int64),
                     np.asarray(reference, np.float32), figures)
