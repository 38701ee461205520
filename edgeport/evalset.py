"""Labelled images with a reference model's probabilities: what every check of an artifact runs on.

One type for the export's verification images, the budget search's selection
and report halves, the golden set being written and the one a device reads
(pure numpy: no engines, no TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from edgeport.sampling import split_selection, stratified_indices


@dataclass(frozen=True)
class EvalSet:
    """Images (HxWx3 uint8 RGB each: an array [N,H,W,3], or a list when their sizes differ) with their true
    class indices and the reference model's probabilities [N, classes] on them."""

    images: np.ndarray | Sequence[np.ndarray]
    labels: np.ndarray
    reference: np.ndarray
    classes: tuple[str, ...] = ()  #: class names (default: their indices)
    info: dict = field(default_factory=dict, compare=False)  #: where they come from (a manifest entry)
    ids: tuple[str, ...] = ()  #: which image each is (its path relative to the data), when known

    def __len__(self) -> int:
        return int(len(self.labels))

    @property
    def names(self) -> tuple[str, ...]:
        return self.classes or tuple(str(i) for i in range(self.reference.shape[1]))

    def take(self, idx: np.ndarray, **info: object) -> "EvalSet":
        """The images at ``idx`` (``info`` updated with the given entries)."""
        idx = np.asarray(idx, dtype=np.int64)
        images = self.images[idx] if isinstance(self.images, np.ndarray) else [self.images[i] for i in idx]
        ids = tuple(self.ids[i] for i in idx) if self.ids else ()
        return EvalSet(images, self.labels[idx], self.reference[idx], self.classes, {**self.info, **info}, ids)

    def subset(self, n: int, seed: int) -> "EvalSet":
        """All of them, or a stratified seeded ``n`` of them."""
        return self if n >= len(self) else self.take(stratified_indices(self.labels, n, seed))

    def split(self, fraction: float, seed: int) -> tuple["EvalSet", "EvalSet"]:
        """Disjoint stratified (selection, report) halves: ``fraction`` of each class chooses (the budget
        search), the rest reports, so nothing reported was used to choose."""
        selection, report = split_selection(self.labels, fraction, seed)
        return self.take(selection), self.take(report)

    def decided(self) -> int:
        """Images on which the reference model is decided (its top-2 margin above DECIDED_MARGIN)."""
        from edgeport.metrics import DECIDED_MARGIN, margins

        return int((margins(self.reference) > DECIDED_MARGIN).sum()) if len(self) else 0

    @property
    def reference_top1_pct(self) -> float | None:
        """The reference model's top-1 % on these images."""
        if not len(self):
            return None
        return round(100.0 * float((np.asarray(self.reference).argmax(1) == self.labels).mean()), 4)
