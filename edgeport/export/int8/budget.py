"""What a lossy artifact may lose against the Keras model: the budget, how it is decided, how the search aims.

``--max-drop``, ``--min-agreement`` and ``--min-decided-agreement`` make a
:class:`Budget`; with none given the export holds every lossy scheme to
:data:`DEFAULT_BUDGET`.

:meth:`Budget.decide` judges an artifact on the images nobody chose on, with
each figure's interval (:mod:`edgeport.intervals`): a limit is *met* when its
whole interval is on the good side, *missed* when wholly on the bad side, else
*undecided* at this many images. A scheme fails only on evidence that it
misses (``--undecided fail`` also fails the undecided ones).

The search aims higher on the images it chooses on (:func:`tightened`, by one
standard error of the limit at that many images, :func:`selection_margin`), so
that what it chooses is not the luckiest of its candidates on those images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgeport.errors import ConfigError
from edgeport.intervals import CONFIDENCE, MISSED, UNDECIDED, Decision, combine, decide_difference, decide_share

#: what ``--undecided`` may say a budget not decided at this many images does
UNDECIDED_ACTIONS = ("pass", "fail")


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

    def damage(self, figures: dict) -> float:
        """Points lost in the figures this budget judges, summed (what the search orders units and range
        rules by): agreement, agreement where Keras is decided, top-1 (only a drop) -- each only where the
        budget holds a limit on it."""
        lost = 0.0
        if self.min_agreement is not None:
            lost += 100.0 - float(figures["agreement_pct"])
        if self.min_decided_agreement is not None and figures.get("decided_agreement_pct") is not None:
            lost += 100.0 - float(figures["decided_agreement_pct"])
        if self.max_drop is not None:
            lost += max(0.0, -float(figures.get("delta_top1_pts") or 0.0))
        return lost

    def met(self, figures: dict) -> bool:
        """The point estimates meet every limit (what the search compares, on its own images)."""
        return self.shortfall(figures) == 0.0

    def decide(self, figures: dict, confidence: float = CONFIDENCE) -> "BudgetDecision":
        """Each limit decided on its interval (figures of :func:`edgeport.metrics.compare`, which carry the
        counts): met, missed or undecided, and together (missed if any is missed, met if all are met)."""
        decisions = []
        if self.max_drop is not None:
            decisions.append(decide_difference("max_drop", tuple(figures["top1_pairs"]), -self.max_drop, confidence))
        if self.min_agreement is not None:
            decisions.append(decide_share("min_agreement", int(figures["agreements"]), int(figures["images"]),
                                          self.min_agreement, confidence))
        if self.min_decided_agreement is not None and figures.get("decided_images"):
            decisions.append(decide_share("min_decided_agreement", int(figures["decided_agreements"]),
                                          int(figures["decided_images"]), self.min_decided_agreement, confidence))
        if not decisions:  # e.g. the default budget on images where Keras is never decided: nothing to judge on
            return BudgetDecision(UNDECIDED, (), confidence,
                                  note="no image to decide it on (Keras is decided on none of these images)")
        return BudgetDecision(combine(decisions), tuple(decisions), confidence)

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


_FIGURE_OF = {"max_drop": "Δtop-1", "min_agreement": "agreement", "min_decided_agreement": "agreement where Keras "
              "is decided"}


@dataclass(frozen=True)
class BudgetDecision:
    """:meth:`Budget.decide`'s verdict: ``outcome`` (met, missed, undecided) and each limit's :class:`Decision`."""

    outcome: str
    limits: tuple[Decision, ...] = field(default_factory=tuple)
    confidence: float = CONFIDENCE
    note: str = ""  #: why there is no limit to decide, when there is none

    def describe(self) -> str:
        """'agreement 96.20 % [94.1, 97.7] against 97: not decided at 368 images (about 2900 would decide it);
        Δtop-1 ...' (the limits that decided the outcome first)."""
        if not self.limits:
            return self.note
        order = {MISSED: 0, UNDECIDED: 1}
        parts = [f"{_FIGURE_OF.get(d.name, d.name)} {d.describe()}"
                 for d in sorted(self.limits, key=lambda d: order.get(d.outcome, 2))]
        return f"{'; '.join(parts)} ({100 * self.confidence:g} % intervals)"

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "confidence": self.confidence,
                "limits": {d.name: d.to_dict() for d in self.limits}, **({"note": self.note} if self.note else {})}


#: what a user who sets no limit gets: no int8 file that flips the float model's clear decisions
DEFAULT_BUDGET = Budget(max_drop=None, min_agreement=None, min_decided_agreement=98.0)


def budget_of(cfg) -> Budget:
    """The user's limits, or :data:`DEFAULT_BUDGET` when none is set."""
    if cfg.max_drop is None and cfg.min_agreement is None and cfg.min_decided_agreement is None:
        return DEFAULT_BUDGET
    return Budget(cfg.max_drop, cfg.min_agreement, cfg.min_decided_agreement)


def selection_margin(limit: float | None, images: int) -> float:
    """One standard error, in points, of an agreement near ``limit`` (97 % when unset) measured on
    ``images`` images (the binomial model behind every interval, at one sigma): what the search adds to an
    agreement limit on the selection images so that the candidate it picks among many is not merely the
    luckiest there (97 % on 368 images: 0.89 points)."""
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
