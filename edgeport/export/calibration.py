"""Pick and load images for calibration and verification (deterministic, stratified)."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from edgeport.contract import InputContract
from edgeport.data import Sample
from edgeport.imaging import ImageDecodeError, load_resized
from edgeport.progress import Progress

log = logging.getLogger(__name__)


def stratified_pick(samples: list[Sample], n: int, seed: int) -> list[Sample]:
    """Up to ``n`` samples spread evenly over classes (round robin), fixed for a seed."""
    idx = stratified_indices(np.array([s.label for s in samples], np.int64), n, seed)
    return sorted((samples[i] for i in idx), key=lambda s: (s.label, s.path))


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a stratified (round robin over classes), seeded subset of ``n`` of ``labels``
    (all of them when ``n`` >= their number)."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    per = {int(k): list(rng.permutation(np.flatnonzero(labels == k))) for k in np.unique(labels)}
    picked: list[int] = []
    while len(picked) < n:
        for k in sorted(per):
            if per[k] and len(picked) < n:
                picked.append(int(per[k].pop(0)))
    return np.array(sorted(picked), dtype=np.int64)


def load_images(
    samples: list[Sample], contract: InputContract, desc: str, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Sample]]:
    """(N,H,W,3 uint8 RGB, labels, kept samples), decoded/resized as in training.

    Undecodable files are skipped with a warning.
    """
    images, kept = [], []
    with Progress(len(samples), desc, enabled=progress) as bar:
        for s in samples:
            try:
                images.append(load_resized(s.path, (contract.height, contract.width), contract.resize))
                kept.append(s)
            except ImageDecodeError as exc:
                log.warning("skipping %s", exc)
            bar.update()
    h, w = contract.height, contract.width
    arr = np.stack(images) if images else np.zeros((0, h, w, 3), np.uint8)
    return arr, np.array([s.label for s in kept], dtype=np.int64), kept


def per_class_counts(samples: list[Sample], labels: tuple[str, ...]) -> dict[str, int]:
    """Images per class name (classes absent from ``labels`` keep their index)."""
    c = Counter(s.label for s in samples)
    return {(labels[k] if k < len(labels) else str(k)): int(v) for k, v in sorted(c.items())}
