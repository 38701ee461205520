"""Accuracy and latency figures from plain arrays (pure numpy, no engines).

Predictions are given as top-k class indices per image (``[N, k]``, best
first), so a worker only needs to send back a few integers per image.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeport.errors import ConfigError


def _as_topk(topk: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    preds = np.asarray(topk, dtype=np.int64)
    if preds.ndim == 1:
        preds = preds[:, None]
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if preds.ndim != 2 or preds.shape[0] != y.shape[0]:
        raise ConfigError(
            f"expected one row of top-k predictions per label, received predictions of shape "
            f"{preds.shape} for {y.shape[0]} labels"
        )
    return preds, y


def topk_from_probs(probs: np.ndarray, k: int = 5) -> np.ndarray:
    """Indices of the ``k`` largest scores per row, best first (ties: lower index first)."""
    p = np.asarray(probs)
    if p.ndim == 1:
        p = p[None, :]
    k = min(k, p.shape[1])
    return np.argsort(-p, axis=1, kind="stable")[:, :k]


def top_k_accuracy(topk: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[int] | np.ndarray, k: int) -> float:
    """Fraction of images whose label is among the first ``k`` predictions (0..1).

    When fewer than ``k`` predictions per image are given (a model with
    fewer classes), all of them are used.
    """
    preds, y = _as_topk(topk, labels)
    if y.size == 0:
        return float("nan")
    hit = (preds[:, :k] == y[:, None]).any(axis=1)
    return float(hit.mean())


def per_class_top1(topk: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[int] | np.ndarray, num_classes: int) -> list[float]:
    """Top-1 accuracy (0..1) for each class index; NaN for a class with no images."""
    preds, y = _as_topk(topk, labels)
    out = []
    for c in range(num_classes):
        mask = y == c
        out.append(float((preds[mask, 0] == c).mean()) if mask.any() else float("nan"))
    return out


def agreement(topk_a: Sequence[Sequence[int]] | np.ndarray, topk_b: Sequence[Sequence[int]] | np.ndarray) -> float:
    """Fraction of images (0..1) where both models give the same top-1 class."""
    a = np.asarray(topk_a, dtype=np.int64)
    b = np.asarray(topk_b, dtype=np.int64)
    a = a[:, 0] if a.ndim == 2 else a
    b = b[:, 0] if b.ndim == 2 else b
    if a.shape != b.shape:
        raise ConfigError(
            f"expected predictions for the same images, received {a.shape[0]} and {b.shape[0]} rows"
        )
    if a.size == 0:
        return float("nan")
    return float((a == b).mean())


def delta_points(value: float, reference: float) -> float:
    """``value - reference`` in percentage points (inputs are fractions 0..1)."""
    return 100.0 * (float(value) - float(reference))


def worst_class_drop(per_class: Sequence[float], reference_per_class: Sequence[float], classes: Sequence[str]) -> tuple[str | None, float]:
    """The class that lost the most top-1 vs the reference: (name, drop in points).

    The drop is positive when accuracy went down; classes without images are
    ignored. Returns (None, nan) when nothing can be compared.
    """
    best_name, best_drop = None, float("nan")
    for name, v, r in zip(classes, per_class, reference_per_class):
        if np.isnan(v) or np.isnan(r):
            continue
        drop = 100.0 * (float(r) - float(v))
        if best_name is None or drop > best_drop:
            best_name, best_drop = name, drop
    return best_name, best_drop


def latency_stats(times_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """mean, std, p50, p90, p99, min, max (ms) and images/s of single-inference times.

    Percentiles use linear interpolation (numpy's default); ``images_per_s``
    is ``1000 / mean``.
    """
    t = np.asarray(times_ms, dtype=np.float64).reshape(-1)
    if t.size == 0:
        raise ConfigError("expected at least one timed inference, received none")
    mean = float(t.mean())
    return {
        "mean": mean,
        "std": float(t.std()),
        "p50": float(np.percentile(t, 50)),
        "p90": float(np.percentile(t, 90)),
        "p99": float(np.percentile(t, 99)),
        "min": float(t.min()),
        "max": float(t.max()),
        "images_per_s": 1000.0 / mean if mean > 0 else float("inf"),
    }


def accuracy_summary(
    topk: np.ndarray, labels: np.ndarray, classes: Sequence[str],
    reference_topk: np.ndarray | None = None,
) -> dict:
    """Everything the report says about one model's predictions.

    With ``reference_topk`` (the fp32 model on the same images) it adds
    Δtop-1 in points, top-1 agreement in % and the worst class drop.
    """
    pc = per_class_top1(topk, labels, len(classes))
    top1 = top_k_accuracy(topk, labels, 1)
    out = {
        "images": int(np.asarray(labels).size),
        "top1": top1,
        "top5": top_k_accuracy(topk, labels, 5),
        "per_class_top1": {c: v for c, v in zip(classes, pc)},
        "delta_top1_pts": None,
        "agreement_pct": None,
        "worst_class": None,
        "worst_class_drop_pts": None,
    }
    if reference_topk is not None:
        ref_pc = per_class_top1(reference_topk, labels, len(classes))
        out["delta_top1_pts"] = delta_points(top1, top_k_accuracy(reference_topk, labels, 1))
        out["agreement_pct"] = 100.0 * agreement(topk, reference_topk)
        name, drop = worst_class_drop(pc, ref_pc, classes)
        out["worst_class"] = name
        out["worst_class_drop_pts"] = None if name is None else drop
    return out
