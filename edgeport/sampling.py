"""Seeded, stratified picks of images: the one copy every stage uses (pure numpy).

* :func:`stratified_fraction` / :func:`split_selection`: a share of every class
  (build's validation split, the export's selection/report halves);
* :func:`round_robin`: ``n`` images taking one class after another, so that any
  prefix is balanced (calibration, verification and golden images, the search's
  ranking subset, the demo's video).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeport.errors import ConfigError


def stratified_fraction(labels: Sequence[int] | np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask choosing ``fraction`` of each class's images (rounded; at least one and never all of a
    class of two or more; none of a class of one), deterministic for a seed."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"expected a fraction between 0 and 1, received {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        n = int(round(len(idx) * fraction))
        n = min(max(n, 1), len(idx) - 1) if len(idx) >= 2 else 0
        chosen[rng.permutation(idx)[:n]] = True
    return chosen


def split_selection(labels: Sequence[int] | np.ndarray, fraction: float = 0.5,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint stratified (selection, report) index arrays over ``labels`` (:func:`stratified_fraction`)."""
    chosen = stratified_fraction(labels, fraction, seed)
    return np.flatnonzero(chosen), np.flatnonzero(~chosen)


def round_robin(labels: Sequence[int] | np.ndarray, n: int | None = None, seed: int | None = 0) -> np.ndarray:
    """Up to ``n`` indices (all when None) in pick order: the next image of each class in turn (classes in
    sorted order), each class's images in a seeded random order (their own order when ``seed`` is None)."""
    labels = np.asarray(labels)
    n = len(labels) if n is None else min(int(n), len(labels))
    rng = np.random.default_rng(seed) if seed is not None else None
    per = [list(rng.permutation(np.flatnonzero(labels == k)) if rng is not None else np.flatnonzero(labels == k))
           for k in np.unique(labels)]
    picked: list[int] = []
    depth = 0
    while len(picked) < n:
        for queue in per:
            if depth < len(queue) and len(picked) < n:
                picked.append(int(queue[depth]))
        depth += 1
    return np.array(picked, dtype=np.int64)


def stratified_indices(labels: Sequence[int] | np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded subset of ``n`` of ``labels`` (:func:`round_robin`; all of them
    when ``n`` >= their number)."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    return np.sort(round_robin(labels, n, seed))
