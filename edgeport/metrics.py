"""Accuracy figures shared by every stage (pure numpy, no engines, no TensorFlow).

One vocabulary everywhere (metrics.json, the export manifest, bench.json):
accuracies are percentages named ``*_pct`` with the image count ``images``
beside them, differences are percentage points named ``*_pts``.

* ``top1_pct`` / ``top5_pct``: top-k accuracy against the labels (top-5 only
  when there are more than 5 classes: with 5 or fewer it is always 100 %);
* ``agreement_pct``: images on which a model's top-1 class is the reference
  model's (the Keras model in export, the fp32 artifact in bench);
* ``decided_agreement_pct`` over ``decided_images``: the same, counted only
  where the reference is decided (its top-1 beats its top-2 by more than
  :data:`DECIDED_MARGIN`): on undecided images any rounding flips the answer,
  so this separates real damage from coin flips;
* ``delta_top1_pts``: top-1 minus the reference's top-1, in points.

Every share comes with its count and its interval at ``confidence`` (95 % by
default; :mod:`edgeport.intervals` says which method and why): ``*_pct_ci``
is ``[low, high]`` in percent (Clopper-Pearson), ``delta_top1_pts_ci`` in
points from the paired counts ``top1_pairs`` (both right, only this model,
only the reference, neither; Tango's score interval), so that a figure is
never read finer than the images that measured it.

Predictions come as probabilities ``[N, classes]`` or as top-k class indices
``[N, k]`` (best first), so a benchmark worker only sends back a few numbers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeport.errors import ConfigError
from edgeport.intervals import CONFIDENCE, paired_counts, paired_difference_interval, proportion_interval

#: top-1 minus top-2 probability above which the reference model counts as decided
DECIDED_MARGIN = 0.1
#: top-k reported besides top-1 (only when there are more classes than this)
TOP_K = 5


def top_k(probs: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Indices of the ``k`` largest scores per row, best first (ties: lower index first)."""
    p = np.asarray(probs)
    if p.ndim == 1:
        p = p[None, :]
    return np.argsort(-p, axis=1, kind="stable")[:, : min(k, p.shape[1])]


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row (how decided the model is)."""
    p = np.sort(np.asarray(probs, np.float64), axis=1)
    return p[:, -1] - p[:, -2] if p.shape[1] > 1 else np.ones(len(p))


def _rows(pred: np.ndarray | Sequence, labels: np.ndarray | Sequence | None = None) -> np.ndarray:
    a = np.asarray(pred)
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2:
        raise ConfigError(f"expected predictions as a 2-D array [images, k], received shape {a.shape}")
    if labels is not None and a.shape[0] != np.asarray(labels).reshape(-1).shape[0]:
        raise ConfigError(f"expected one row of predictions per label, received {a.shape[0]} rows "
                          f"for {np.asarray(labels).reshape(-1).shape[0]} labels")
    return a


def pct(numerator: float, denominator: float) -> float | None:
    """100 * numerator / denominator, None when there is nothing to divide by."""
    return 100.0 * float(numerator) / float(denominator) if denominator else None


def _hits(topk: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    preds = _rows(topk, labels)
    y = np.asarray(labels, np.int64).reshape(-1)
    return (preds[:, :k] == y[:, None]).any(axis=1)


def top_k_pct(topk: np.ndarray, labels: np.ndarray, k: int) -> float | None:
    """% of images whose label is among the first ``k`` predictions (all given, if fewer)."""
    hits = _hits(topk, labels, k)
    return pct(int(hits.sum()), hits.size)


def per_class_top1_pct(top1: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, float | None]:
    """Top-1 % per class name (None for a class without images)."""
    t = np.asarray(top1).reshape(-1)
    y = np.asarray(labels, np.int64).reshape(-1)
    return {c: pct(int((t[y == i] == i).sum()), int((y == i).sum())) for i, c in enumerate(classes)}


def per_class_top1_ci(top1: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                      confidence: float = CONFIDENCE) -> dict[str, list[float] | None]:
    """The interval of each class's top-1 % (None for a class without images)."""
    t = np.asarray(top1).reshape(-1)
    y = np.asarray(labels, np.int64).reshape(-1)
    return {c: _ci(int((t[y == i] == i).sum()), int((y == i).sum()), confidence) for i, c in enumerate(classes)}


def _ci(k: int, n: int, confidence: float) -> list[float] | None:
    interval = proportion_interval(k, n, confidence)
    return list(interval) if interval else None


def confusion_matrix(top1: np.ndarray, labels: np.ndarray, num_classes: int) -> list[list[int]]:
    """Counts [true][predicted]."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(labels, np.int64).reshape(-1), np.asarray(top1, np.int64).reshape(-1)), 1)
    return m.tolist()


def agreement_pct(top1: np.ndarray, reference_top1: np.ndarray) -> float | None:
    """% of images on which both give the same top-1 class."""
    a, b = np.asarray(top1).reshape(-1), np.asarray(reference_top1).reshape(-1)
    if a.shape != b.shape:
        raise ConfigError(f"expected predictions for the same images, received {a.size} and {b.size}")
    return pct(int((a == b).sum()), a.size)


def worst_class(per_class: dict[str, float | None], reference: dict[str, float | None]) -> tuple[str | None, float | None]:
    """The class that lost the most top-1 points against the reference: (name, drop in points, > 0 = worse)."""
    best: tuple[str | None, float | None] = (None, None)
    for name, v in per_class.items():
        r = reference.get(name)
        if v is None or r is None:
            continue
        if best[1] is None or r - v > best[1]:
            best = (name, r - v)
    return best


def accuracy(pred: np.ndarray, labels: np.ndarray, classes: Sequence[str], confusion: bool = False,
             confidence: float = CONFIDENCE) -> dict:
    """``images``, ``top1_pct`` (with ``top1_correct`` and ``top1_pct_ci``), ``top5_pct`` (when > 5 classes,
    with its interval), ``per_class_top1_pct`` and ``per_class_top1_ci`` (and the confusion matrix).

    ``pred`` is probabilities [N, classes] or top-k indices [N, k].
    """
    y = np.asarray(labels, np.int64).reshape(-1)
    p = _rows(pred, y)
    topk = top_k(p) if np.issubdtype(p.dtype, np.floating) else p.astype(np.int64)
    top1 = _hits(topk, y, 1)
    top5 = _hits(topk, y, TOP_K) if len(classes) > TOP_K else None
    out: dict = {"images": int(y.size), "top1_pct": pct(int(top1.sum()), y.size), "top1_correct": int(top1.sum()),
                 "top1_pct_ci": _ci(int(top1.sum()), int(y.size), confidence),
                 "top5_pct": pct(int(top5.sum()), y.size) if top5 is not None else None,
                 "top5_pct_ci": _ci(int(top5.sum()), int(y.size), confidence) if top5 is not None else None,
                 "per_class_top1_pct": per_class_top1_pct(topk[:, 0], y, classes),
                 "per_class_top1_ci": per_class_top1_ci(topk[:, 0], y, classes, confidence),
                 "confidence": confidence}
    if confusion:
        out["confusion_matrix"] = confusion_matrix(topk[:, 0], y, len(classes))
    return out


def compare(pred: np.ndarray, reference: np.ndarray, labels: np.ndarray, classes: Sequence[str],
            reference_margin: np.ndarray | None = None, confidence: float = CONFIDENCE) -> dict:
    """A model's figures against a reference model's on the same images (see the module doc).

    ``pred``/``reference``: probabilities [N, classes] or top-k indices [N, k].
    With probabilities on both sides ``max_abs_prob_diff`` is added. The
    reference's top-2 margin comes from its probabilities, or ``reference_margin``.
    """
    y = np.asarray(labels, np.int64).reshape(-1)
    p, r = _rows(pred, y), _rows(reference, y)
    mine, ref = accuracy(p, y, classes, confidence=confidence), accuracy(r, y, classes, confidence=confidence)
    p1 = top_k(p, 1)[:, 0] if np.issubdtype(p.dtype, np.floating) else p[:, 0]
    r1 = top_k(r, 1)[:, 0] if np.issubdtype(r.dtype, np.floating) else r[:, 0]
    if reference_margin is None and np.issubdtype(r.dtype, np.floating) and r.shape[1] == len(classes):
        reference_margin = margins(r)
    decided = np.asarray(reference_margin) > DECIDED_MARGIN if reference_margin is not None else None
    name, drop = worst_class(mine["per_class_top1_pct"], ref["per_class_top1_pct"])
    agree = p1 == r1
    pairs = paired_counts(p1 == y, r1 == y)
    delta_ci = paired_difference_interval(*pairs, level=confidence)
    out = {
        **mine,
        "reference_top1_pct": ref["top1_pct"],
        "reference_top1_pct_ci": ref["top1_pct_ci"],
        "delta_top1_pts": None if mine["top1_pct"] is None else mine["top1_pct"] - ref["top1_pct"],
        "delta_top1_pts_ci": list(delta_ci) if delta_ci else None,
        "top1_pairs": list(pairs),  #: images right by both, by this model only, by the reference only, by neither
        "agreement_pct": agreement_pct(p1, r1),
        "agreements": int(agree.sum()),
        "agreement_pct_ci": _ci(int(agree.sum()), int(agree.size), confidence),
        "decided_agreement_pct": pct(int(agree[decided].sum()), int(decided.sum())) if decided is not None else None,
        "decided_images": int(decided.sum()) if decided is not None else None,
        "decided_agreements": int(agree[decided].sum()) if decided is not None else None,
        "decided_agreement_pct_ci": _ci(int(agree[decided].sum()), int(decided.sum()), confidence)
        if decided is not None else None,
        "worst_class": name if drop is not None and drop > 0 else None,
        "worst_class_drop_pts": drop if drop is not None and drop > 0 else None,
    }
    if np.issubdtype(p.dtype, np.floating) and np.issubdtype(r.dtype, np.floating) and p.shape == r.shape:
        out["max_abs_prob_diff"] = float(np.abs(p.astype(np.float64) - r.astype(np.float64)).max()) if y.size else 0.0
        out["mean_prob_sum"] = float(p.sum(1).mean()) if y.size else None
    return out
