"""Compare an artifact's predictions with the Keras model's on the same images.

Verification runs each file through the runtime's own code (the engine from
:mod:`edgeport.runtime.engines`, ``to_input_tensor`` and ``to_probabilities``
from the classifier), so what is verified here is what runs on the device.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from edgeport.contract import InputContract
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


def compare(probs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    """Figures of ``probs`` against the Keras ``reference`` probabilities.

    agreement: % of images with the same top-1 class as Keras; accuracy and
    keras_accuracy: top-1 % against ``labels``; delta_top1: accuracy minus
    keras_accuracy in points (negative = a drop); max_abs_diff: largest
    absolute difference of any class probability.
    """
    n = len(labels)
    if n == 0:
        return {"samples": 0}
    top, ref_top = probs.argmax(1), reference.argmax(1)
    acc = 100.0 * float((top == labels).mean())
    ref_acc = 100.0 * float((ref_top == labels).mean())
    return {
        "samples": int(n),
        "agreement": round(100.0 * float((top == ref_top).mean()), 4),
        "accuracy": round(acc, 4),
        "keras_accuracy": round(ref_acc, 4),
        "delta_top1": round(acc - ref_acc, 4),
        "max_abs_diff": float(np.abs(probs.astype(np.float64) - reference.astype(np.float64)).max()),
        "mean_prob_sum": round(float(probs.sum(1).mean()), 6),
    }


def verify_artifact(
    engine: Engine,
    contract: InputContract,
    images: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    progress: bool = True,
    desc: str = "verify",
) -> dict:
    """Run ``images`` through ``engine`` as the runtime would and :func:`compare` with ``reference``."""
    t0 = time.perf_counter()
    probs = predict(engine, images, contract, progress, desc)
    seconds = time.perf_counter() - t0
    figures = compare(probs, reference, labels)
    figures.update(engine=engine.name, engine_version=engine.version(), threads=engine.threads,
                   seconds=round(seconds, 3), ms_per_image=round(1000.0 * seconds / max(len(images), 1), 3))
    return figures
