"""What an int8 artifact may lose against the Keras model: the budget and how the search holds to it.

``--max-drop``, ``--min-agreement`` and ``--min-decided-agreement`` make a
:class:`Budget`; with none given the export holds every searchable scheme to
:data:`DEFAULT_BUDGET`. The search holds candidates to a stricter
:func:`tightened` budget on the images it chooses on, so that what it chooses
also meets the real one on images it has not seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeport.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    """What a calibrated artifact may lose against the Keras model (figures of :func:`edgeport.metrics.compare`).

    ``max_drop``: top-1 points below Keras' top-1 (``delta_top1_pts >= -max_drop``);
    ``min_agreement``: % of images on which it gives Keras' top-1 class;
    ``min_decided_agreement``: the same, counted only on the images where Keras
    is decided (top-2 margin > :data:`edgeport.metrics.DECIDED_MARGIN`): rounding
    cannot honestly be blamed for flipping those. None = not checked.
    """

    max_drop: float | None = 1.0
    min_agreement: float | None = 97.0
    min_decided_agreement: float | None = None

    def __post_init__(self) -> None:
        if self.max_drop is not None and self.max_drop < 0:
            raise ConfigError(f"expected --max-drop >= 0 top-1 points, received {self.max_drop}")
        for name in ("min_agreement", "min_decided_agreement"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 100:
                raise ConfigError(f"expected --{name.replace('_', '-')} between 0 and 100 %, received {v}")

    def shortfall(self, figures: dict) -> float:
        """Points missing to meet the budget (0.0 = met): the sum over the limits (no decided images:
        that limit holds)."""
        miss = 0.0
        if self.max_drop is not None:
            miss += max(0.0, -float(figures["delta_top1_pts"]) - self.max_drop)
        if self.min_agreement is not None:
            miss += max(0.0, self.min_agreement - float(figures["agreement_pct"]))
        if self.min_decided_agreement is not None and figures.get("decided_agreement_pct") is not None:
            miss += max(0.0, self.min_decided_agreement - float(figures["decided_agreement_pct"]))
        return round(miss, 6)

    def met(self, figures: dict) -> bool:
        return self.shortfall(figures) == 0.0

    def describe(self) -> str:
        parts = []
        if self.max_drop is not None:
            parts.append(f"Δtop-1 >= -{self.max_drop:g} points")
        if self.min_agreement is not None:
            parts.append(f"agreement >= {self.min_agreement:g} %")
        if self.min_decided_agreement is not None:
            parts.append(f"agreement where Keras is decided >= {self.min_decided_agreement:g} %")
        return " and ".join(parts) or "no budget"

    def to_dict(self) -> dict:
        return asdict(self)


#: what a user who sets no limit gets: no int8 file that flips the float model's clear decisions
DEFAULT_BUDGET = Budget(max_drop=None, min_agreement=None, min_decided_agreement=98.0)


def budget_of(cfg) -> Budget:
    """The user's limits, or :data:`DEFAULT_BUDGET` when none is set."""
    if cfg.max_drop is None and cfg.min_agreement is None and cfg.min_decided_agreement is None:
        return DEFAULT_BUDGET
    return Budget(cfg.max_drop, cfg.min_agreement, cfg.min_decided_agreement)


def selection_margin(limit: float | None, images: int) -> float:
    """One standard error, in points, of an agreement near ``limit`` (97 % when unset) measured on
    ``images`` images: what the search adds to an agreement limit on the selection images so that a
    candidate chosen there also meets it on images it has not seen (97 % on 368 images: 0.89 points)."""
    a = (limit if limit is not None else 97.0) / 100.0
    a = min(max(a, 0.5), 0.999)
    return round(100.0 * float(np.sqrt(a * (1.0 - a) / max(images, 1))), 4)


def tightened(budget: Budget, agreement_margin: float, decided_margin: float | None = None) -> Budget:
    """``budget`` with its agreement limits raised by a margin (clamped to 100 %).

    The Δtop-1 limit is left as it is: on the selection images of a model
    with many near-ties, its standard error is about a point, and raising it
    by that much sent the search on to keep most of a network float for no
    measurable gain (ResNet50V2 flowers, README's int8 section).
    """
    decided_margin = agreement_margin if decided_margin is None else decided_margin
    return Budget(
        max_drop=budget.max_drop,
        min_agreement=None if budget.min_agreement is None else min(100.0, budget.min_agreement + agreement_margin),
        min_decided_agreement=(None if budget.min_decided_agreement is None
                               else min(100.0, budget.min_decided_agreement + decided_margin)),
    )
