"""Compare an artifact's predictions with the Keras model's on the same images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeport.progress import Progress


def open_runner(path: str | Path, threads: int | None = None):
    """A runner for ``path`` in its real engine (LiteRT for .tflite, onnxruntime for .onnx)."""
    if str(path).endswith(".tflite"):
        from edgeport.export.tflite import TFLiteRunner

        return TFLiteRunner(path, threads)
    from edgeport.export.onnx import ONNXRunner

    return ONNXRunner(path, threads)


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
    path: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    threads: int | None = None,
    progress: bool = True,
    desc: str = "verify",
) -> dict:
    """Run ``path`` on ``images`` in its engine and :func:`compare` with ``reference``."""
    t0 = time.perf_counter()
    with open_runner(path, threads) as runner:
        outs = []
        step = 16
        with Progress(len(images), desc, enabled=progress) as bar:
            for i in range(0, len(images), step):
                outs.append(runner.predict(images[i : i + step]))
                bar.update(len(images[i : i + step]))
        probs = np.concatenate(outs) if outs else np.zeros((0, reference.shape[1]), np.float32)
        engine = runner.engine
    seconds = time.perf_counter() - t0
    figures = compare(probs, reference, labels)
    figures.update(engine=engine, seconds=round(seconds, 3),
                   ms_per_image=round(1000.0 * seconds / max(len(images), 1), 3))
    return figures
