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
    if n >= len(samples):
        return list(samples)
    rng = np.random.default_rng(seed)
    per_class: dict[int, list[Sample]] = {}
    for s in samples:
        per_class.setdefault(s.label, []).append(s)
    queues = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(per_class.items())}
    picked: list[Sample] = []
    while len(picked) < n:
        for k in sorted(queues):
            if queues[k] and len(picked) < n:
                picked.append(queues[k].pop(0))
    return sorted(picked, key=lambda s: (s.label, s.path))


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
