"""How sure is a figure: confidence intervals and the three-outcome budget decision (pure Python + numpy).

Every accuracy edgeport prints is a proportion measured on a finite set of
images, every latency a median of a finite set of invokes. This module gives
each its interval, so that a budget is decided on evidence, not on noise:

* :func:`proportion_interval`: a share (top-1, agreement with a reference) as an
  exact Clopper-Pearson interval. Exact rather than Wilson because the shares
  edgeport decides on sit near 100 % (agreement 97-100 %), where Wilson's
  coverage dips below its nominal level for some n; Clopper-Pearson never
  covers less than the level asked for.
* :func:`paired_difference_interval`: a difference of two shares measured on
  the *same* images (Δtop-1 of an artifact against Keras or fp32; the same
  artifact on two devices). Built from the paired counts: Tango's score
  interval (the McNemar score test inverted, Tango 1998) with a continuity
  correction of half a discordant pair. Two independent intervals would ignore
  that the models agree on most images and be several times too wide; Newcombe's
  method 10 and plain Tango covered only 92.5-93.9 % when all flips go one way
  (simulated: 1 % of 736 images lost, none gained), with the correction >= 95 %.
* :func:`median_interval`: a p50 from raw times, by order statistics
  (distribution-free); :func:`ratio_interval`: a ratio of two p50s (the search's
  slowdown, two devices) by a seeded bootstrap.
* :func:`decide`: *met*, *missed* or *undecided* for a limit, and the number of
  images that would decide it.

The decision rule: a limit is **met** when the whole interval is on its good
side, **missed** when the whole interval is on its bad side, and otherwise
**undecided** at this many images. At a true value exactly on the limit a
two-sided 95 % interval lies wholly below it (a false "missed") at most 2.5 %
of the time, less with the exact intervals (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

from edgeport.errors import ConfigError

#: the default confidence level of every interval edgeport reports (``--confidence``)
CONFIDENCE = 0.95

MET, MISSED, UNDECIDED = "met", "missed", "undecided"


def check_confidence(level: float) -> float:
    """``level`` when it is a usable confidence level (0.5-0.9999), else a ConfigError."""
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0.5 <= float(level) <= 0.9999:
        raise ConfigError(f"expected --confidence between 0.5 and 0.9999 (e.g. 0.95), received {level!r}")
    return float(level)


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + check_confidence(level) / 2.0)


# --------------------------------------------------------------------------- binomial tails (exact)


_LOG_FACTORIALS = np.zeros(1)


def _log_factorials(n: int) -> np.ndarray:
    """log(k!) for k = 0..n (a growing table)."""
    global _LOG_FACTORIALS
    if _LOG_FACTORIALS.size <= n:
        _LOG_FACTORIALS = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, max(n, 2 * _LOG_FACTORIALS.size) + 1)))])
    return _LOG_FACTORIALS


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    lf = _log_factorials(n)
    ks = np.arange(0, k + 1)
    logs = lf[n] - lf[ks] - lf[n - ks] + ks * math.log(p) + (n - ks) * math.log1p(-p)
    return float(min(1.0, np.exp(logs).sum()))


def _solve(f, target: float, increasing: bool) -> float:
    """p in [0, 1] with f(p) = target, f monotone (bisection to 1e-10)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def clopper_pearson(k: int, n: int, level: float = CONFIDENCE) -> tuple[float, float]:
    """The exact two-sided interval of a binomial proportion k/n (as fractions 0-1)."""
    if n <= 0:
        raise ConfigError("expected at least one image for an interval, received none")
    if not 0 <= k <= n:
        raise ConfigError(f"expected 0 <= successes <= trials, received {k} of {n}")
    alpha = 1.0 - check_confidence(level)
    lower = 0.0 if k == 0 else _solve(lambda p: 1.0 - _binom_cdf(k - 1, n, p), alpha / 2.0, increasing=True)
    upper = 1.0 if k == n else _solve(lambda p: _binom_cdf(k, n, p), alpha / 2.0, increasing=False)
    return lower, upper


def wilson(k: int, n: int, level: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval of k/n (fractions); the building block of the paired difference."""
    if n <= 0:
        raise ConfigError("expected at least one image for an interval, received none")
    z = _z(level)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_interval(k: int, n: int, level: float = CONFIDENCE) -> tuple[float, float] | None:
    """The interval of k/n in percent (Clopper-Pearson), None for n = 0."""
    if not n:
        return None
    lo, hi = clopper_pearson(int(k), int(n), level)
    return round(100.0 * lo, 4), round(100.0 * hi, 4)


def paired_difference_interval(both: int, only_first: int, only_second: int, neither: int,
                               level: float = CONFIDENCE) -> tuple[float, float] | None:
    """The interval, in percentage points, of (first's share - second's share) on the same images.

    ``both``: images where both are right (or both agree with the reference); ``only_first``/``only_second``:
    the discordant pairs; ``neither``. Tango's score interval: every difference D whose McNemar-type score
    statistic (b - c - nD) / sqrt(n (2 p21(D) + D (1 - D))), with p21(D) the restricted maximum-likelihood
    share of second-only pairs and |b - c - nD| reduced by 1/2, stays within +-z.
    """
    a, b, c, d = (int(x) for x in (both, only_first, only_second, neither))
    n = a + b + c + d
    if n == 0:
        return None
    z = _z(level)

    def score(delta: float) -> float:
        qa, qb, qc = 2.0 * n, -b - c + (2.0 * n - b + c) * delta, -c * delta * (1.0 - delta)
        p21 = (math.sqrt(max(qb * qb - 4.0 * qa * qc, 0.0)) - qb) / (2.0 * qa)
        var = n * (2.0 * p21 + delta * (1.0 - delta))
        diff = b - c - n * delta
        diff = math.copysign(max(abs(diff) - 0.5, 0.0), diff)
        if var <= 0.0:
            return 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
        return diff / math.sqrt(var)

    def root(target: float) -> float:  # the score falls as delta rises
        lo, hi = -1.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2.0
            if score(mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2.0

    return round(100.0 * root(z), 4), round(100.0 * root(-z), 4)


def independent_difference_interval(k1: int, n1: int, k2: int, n2: int,
                                    level: float = CONFIDENCE) -> tuple[float, float] | None:
    """The interval, in points, of k1/n1 - k2/n2 measured on unrelated images (or when the pairing is unknown:
    wider than the paired one whenever the two agree on most images). Newcombe's hybrid score (method 10)."""
    if not n1 or not n2:
        return None
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, level)
    l2, u2 = wilson(k2, n2, level)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return round(100.0 * lower, 4), round(100.0 * upper, 4)


def paired_counts(first: np.ndarray, second: np.ndarray) -> tuple[int, int, int, int]:
    """(both, only first, only second, neither) of two boolean arrays over the same images."""
    f, s = np.asarray(first, bool).reshape(-1), np.asarray(second, bool).reshape(-1)
    if f.shape != s.shape:
        raise ConfigError(f"expected results for the same images, received {f.size} and {s.size}")
    return int((f & s).sum()), int((f & ~s).sum()), int((~f & s).sum()), int((~f & ~s).sum())


# --------------------------------------------------------------------------- latency


def median_interval(samples: Sequence[float] | np.ndarray, level: float = CONFIDENCE) -> tuple[float, float] | None:
    """A distribution-free interval of the median of ``samples`` (order statistics: the ranks whose
    binomial(n, 1/2) tails hold (1 - level) / 2 each). None for fewer than 6 samples (no such ranks)."""
    x = np.sort(np.asarray(samples, np.float64).reshape(-1))
    n = x.size
    if n < 6:
        return None
    alpha = 1.0 - check_confidence(level)
    lo = 0
    while lo + 1 < n and _binom_cdf(lo, n, 0.5) <= alpha / 2.0:
        lo += 1
    # P(X <= lo - 1) <= alpha/2: the (lo)-th order statistic (0-based lo - 1) bounds the median below
    k = max(lo - 1, 0)
    return float(x[k]), float(x[n - 1 - k])


def ratio_interval(numerator: Sequence[float] | np.ndarray, denominator: Sequence[float] | np.ndarray,
                   level: float = CONFIDENCE, resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """A percentile-bootstrap interval of median(numerator) / median(denominator) (seeded: the same samples
    give the same interval). None when either has fewer than 6 samples or a median of 0."""
    a = np.asarray(numerator, np.float64).reshape(-1)
    b = np.asarray(denominator, np.float64).reshape(-1)
    if a.size < 6 or b.size < 6 or np.median(b) <= 0:
        return None
    rng = np.random.default_rng(seed)
    ra = np.median(a[rng.integers(0, a.size, (resamples, a.size))], axis=1)
    rb = np.median(b[rng.integers(0, b.size, (resamples, b.size))], axis=1)
    ratios = ra / np.where(rb > 0, rb, np.nan)
    alpha = 1.0 - check_confidence(level)
    lo, hi = np.nanpercentile(ratios, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    """One limit decided on an interval: ``outcome`` is met, missed or undecided; ``images_to_decide``: about
    how many images would decide it were the rates to stay as measured (None when decided, or when no number
    would: a value exactly on the limit)."""

    name: str  #: which limit (max_drop, min_agreement, ...)
    outcome: str
    value: float
    interval: tuple[float, float]
    limit: float
    images: int
    images_to_decide: int | None = None
    unit: str = "%"  #: "%" for a share, "points" for a difference

    def describe(self) -> str:
        lo, hi = self.interval
        what = {MET: "met", MISSED: "missed", UNDECIDED: "not decided"}[self.outcome]
        if self.unit == "points":
            text = f"{self.value:+.2f} [{lo:+.2f}, {hi:+.2f}] points vs limit {self.limit:+g}: {what}"
        else:
            text = f"{self.value:.2f} % [{lo:.2f}, {hi:.2f}] vs limit {self.limit:g} %: {what}"
        if self.outcome == UNDECIDED:
            text += (f" at {self.images} images" + (f" (about {self.images_to_decide} would decide it)"
                                                     if self.images_to_decide else " (it sits on the limit)"))
        return text

    def to_dict(self) -> dict:
        return {"limit": self.limit, "value": self.value, "interval": list(self.interval),
                "outcome": self.outcome, "images": self.images, "images_to_decide": self.images_to_decide}


def outcome_of(interval: tuple[float, float], limit: float, higher_is_better: bool = True) -> str:
    """met when the whole interval is on the good side of ``limit``, missed when wholly on the bad side."""
    lo, hi = interval
    if higher_is_better:
        return MET if lo >= limit else MISSED if hi < limit else UNDECIDED
    return MET if hi <= limit else MISSED if lo > limit else UNDECIDED


#: the most images :func:`images_to_decide` looks for (beyond: "about this many would not decide it")
MAX_IMAGES = 1_000_000


def images_to_decide(interval_at, n: int, limit: float, higher_is_better: bool = True) -> int | None:
    """The smallest image count m > n at which ``interval_at(m)`` (the interval of the same rates measured on
    m images) is decided; None when none up to :data:`MAX_IMAGES` is."""
    def decided(m: int) -> bool:
        return outcome_of(interval_at(m), limit, higher_is_better) != UNDECIDED

    hi = max(2 * n, n + 1)
    while not decided(hi):
        if hi >= MAX_IMAGES:
            return None
        hi = min(MAX_IMAGES, hi * 2)
    lo = n
    while hi - lo > max(1, lo // 100):  # to 1 %
        mid = (lo + hi) // 2
        if decided(mid):
            hi = mid
        else:
            lo = mid
    return hi


#: above this many images the count that would decide a share is Wilson's estimate alone (exact is slow there)
EXACT_UP_TO = 20_000


def decide_share(name: str, k: int, n: int, limit: float, level: float = CONFIDENCE,
                 estimate: bool = True) -> Decision:
    """A lower limit on a share k/n (in %), e.g. agreement >= 97 %. ``estimate``: also find about how many
    images would decide an undecided one (off for simulations that only need the outcome)."""
    interval = proportion_interval(k, n, level)
    if interval is None:
        raise ConfigError(f"expected images to decide {name} on, received none")
    outcome = outcome_of(interval, limit)
    need = None
    if outcome == UNDECIDED and estimate:
        p = k / n

        def at(m: int) -> tuple[float, float]:  # Wilson's closed form: "about" this many, found fast
            lo, hi = wilson(round(p * m), m, level)
            return 100.0 * lo, 100.0 * hi

        need = images_to_decide(at, n, limit)
        while (need is not None and need <= EXACT_UP_TO
               and outcome_of(proportion_interval(round(p * need), need, level), limit) == UNDECIDED):
            need = int(need * 1.05) + 1  # the exact interval is a little wider than Wilson's
    return Decision(name, outcome, round(100.0 * k / n, 4), interval, limit, n, need)


def decide_difference(name: str, counts: tuple[int, int, int, int], limit: float,
                      level: float = CONFIDENCE, estimate: bool = True) -> Decision:
    """A lower limit on a paired difference in points (first - second), e.g. Δtop-1 >= -1 (``estimate``: as in
    :func:`decide_share`)."""
    interval = paired_difference_interval(*counts, level=level)
    if interval is None:
        raise ConfigError(f"expected images to decide {name} on, received none")
    n = sum(counts)
    value = 100.0 * (counts[1] - counts[2]) / n
    outcome = outcome_of(interval, limit)
    need = None
    if outcome == UNDECIDED and estimate:
        shares = [c / n for c in counts]

        def at(m: int) -> tuple[float, float]:
            scaled = [round(s * m) for s in shares]
            return paired_difference_interval(*scaled, level=level) or (0.0, 0.0)

        need = images_to_decide(at, n, limit)
    return Decision(name, outcome, round(value, 4), interval, limit, n, need, unit="points")


def combine(decisions: Sequence[Decision]) -> str:
    """Several limits together: missed if any is missed, met if all are met, else undecided."""
    outcomes = [d.outcome for d in decisions]
    if MISSED in outcomes:
        return MISSED
    return MET if all(o == MET for o in outcomes) else UNDECIDED
