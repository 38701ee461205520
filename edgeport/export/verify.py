"""Compare an artifact's predictions with the Keras model's on the same images.

Verification runs each file through the runtime's own code (the engine from
:mod:`edgeport.runtime.engines`, ``to_input_tensor`` and ``to_probabilities``
from the classifier), so what is verified here is what runs on the device.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeport.contract import InputContract
from edgeport.metrics import compare
from edgeport.progress import track
from edgeport.runtime.classifier import to_input_tensor, to_probabilities
from edgeport.runtime.engines import Engine, create_engine

#: the engine that verifies each format on the export machine (ONNX on CPU: no TensorRT build here)
VERIFY_ENGINES = {".tflite": ("litert", {}), ".onnx": ("onnxruntime", {"providers": "cpu"})}


def open_engine(path: str | Path, threads: int | None = None) -> Engine:
    """``path`` loaded in its real engine (LiteRT for .tflite, onnxruntime CPU for .onnx)."""
    name, opts = VERIFY_ENGINES[Path(path).suffix.lower()]
    return create_engine(name, path, threads=threads or os.cpu_count() or 1, **opts)


def predict(engine: Engine, images: np.ndarray, contract: InputContract, progress: bool = True,
            desc: str = "predict") -> np.ndarray:
    """(N,H,W,3) uint8 RGB -> (N,classes) float32 probabilities, one image per invoke."""
    out = [to_probabilities(engine.invoke(to_input_tensor(img, contract, engine.input)), engine.output)
           for img in track(images, desc, enabled=progress)]
    return np.stack(out) if out else np.zeros((0, int(np.prod(engine.output.shape))), np.float32)


def verify_artifact(
    engine: Engine,
    contract: InputContract,
    images: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    classes: Sequence[str],
    progress: bool = True,
    desc: str = "verify",
) -> dict:
    """Run ``images`` through ``engine`` as the runtime would and compare with the Keras ``reference``
    probabilities (:func:`edgeport.metrics.compare`: agreement, Δtop-1, max |Δp|, ...)."""
    t0 = time.perf_counter()
    probs = predict(engine, images, contract, progress, desc)
    seconds = time.perf_counter() - t0
    figures = compare(probs, reference, labels, classes)
    figures.update(engine=engine.name, engine_version=engine.version(), threads=engine.threads,
                   seconds=round(seconds, 3), ms_per_image=round(1000.0 * seconds / max(len(images), 1), 3))
    return figures
