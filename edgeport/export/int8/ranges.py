"""Activation ranges for int8 from calibration histograms: the rules behind ``--calibration-method``.

TFLite's converter records each activation's min and max over the
calibration images and quantizes on them (``minmax``). One outlier pixel in
one image then sets a residual stream's int8 step for every image: on the
ResNet50V2 flowers model of the README's int8 section the conv5 outputs kept 3-4 dB SQNR and
full int8 agreed with Keras on 81 % of the photos. The other rules clip the
range to where the values are, trading a few clipped outliers for a finer
step everywhere else:

``percentile``  the [0.001, 99.999] percentiles (onnxruntime's default), each end
                kept at 0 when the tensor never goes past it (a ReLU output);
``entropy``     the clip of |x| whose 128-level quantized histogram is closest
                (KL divergence) to the original (TensorRT's rule, onnxruntime's
                ``entropy``);
``mse``         the common shrink factor of [min, max] that minimizes the mean
                squared int8 error (rounding plus clipping) over the histogram;
``narrowest``   each end the narrower of ``percentile``'s and ``mse``'s: percentile
                cuts a lone outlier that mse keeps (its squared error outweighs
                the rounding it saves), mse cuts a long tail percentile keeps.
                On the ResNet50V2 (full int8, 368 selection images) it agreed
                on 97.8 % against percentile's 96.5 % and mse's 97.0 %.

Every rule reads one histogram per tensor (:class:`Histogram`, fixed bins over
the tensor's recorded [min, max], so exact counts, no sampling) and returns a
``(lo, hi)`` with lo <= 0 <= hi, as the int8 zero point requires.

Under every rule, a SOFTMAX's input (the logits) keeps only what the int8
output can show (:func:`softmax_input_range`): TFLite's int8 SOFTMAX writes
probabilities in steps of 1/256, so a logit far enough below the image's
largest is 0 in the output however it is rounded, and the range need not
reach it. On the EfficientNet-B0 flowers model (the README's QAT section) the
logits span [-34.5, 19.3] over the calibration images, their low end set by
classes no image is near; [-7.55, 19.3] keeps every probability the output
shows, with a step 2x finer where answers are decided: rounding the logits
alone (a numpy simulation of the int8 step) then agrees with Keras on 94.0 % of
the 736 validation photos instead of 87.6 % (largest probability change 0.024
instead of 0.048). onnx-int8 floors onnxruntime's calibrated Softmax inputs the
same way (:func:`edgeport.export.onnx.floor_softmax_inputs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgeport.errors import ConfigError
from edgeport.schemes import ALL_SCHEMES, get_scheme

#: range rules
RANGE_RULES = ("minmax", "percentile", "entropy", "mse", "narrowest")
#: percentile kept by ``percentile`` (onnxruntime's default)
PERCENTILE = 99.999
#: histogram bins over a tensor's [min, max]
BINS = 8192


@dataclass
class Histogram:
    """Counts of one tensor's values in :data:`BINS` equal bins over its recorded [lo, hi]."""

    lo: float
    hi: float
    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    #: a SOFTMAX input's rows too (None for other tensors), for :func:`softmax_input_range`
    rows: RowPeak | None = None

    def add(self, values: np.ndarray) -> None:
        """``values``: a batch (samples on the first axis)."""
        if self.rows is not None:
            self.rows.add(values)
        if self.hi <= self.lo:
            return
        v = np.asarray(values, np.float64).ravel()
        idx = np.clip(((v - self.lo) / (self.hi - self.lo) * len(self.counts)).astype(np.int64), 0,
                      len(self.counts) - 1)
        self.counts += np.bincount(idx, minlength=len(self.counts))

    @property
    def centers(self) -> np.ndarray:
        edges = np.linspace(self.lo, self.hi, len(self.counts) + 1)
        return 0.5 * (edges[:-1] + edges[1:])


def _with_zero(lo: float, hi: float) -> tuple[float, float]:
    return min(float(lo), 0.0), max(float(hi), 0.0)


def percentile_range(h: Histogram, pct: float = PERCENTILE) -> tuple[float, float]:
    """The [100 - pct, pct] percentiles of ``h``; an end the tensor never passes zero on stays at 0."""
    total = int(h.counts.sum())
    if total == 0 or h.hi <= h.lo:
        return _with_zero(h.lo, h.hi)
    cdf = np.cumsum(h.counts) / total
    edges = np.linspace(h.lo, h.hi, len(h.counts) + 1)
    hi = float(edges[min(int(np.searchsorted(cdf, pct / 100.0)) + 1, len(edges) - 1)])
    lo = float(edges[int(np.searchsorted(cdf, 1.0 - pct / 100.0))])
    return _with_zero(lo if h.lo < 0 else h.lo, hi if h.hi > 0 else h.hi)


def quant_error(h: Histogram, lo: float, hi: float, levels: int = 256) -> float:
    """Mean squared error of asymmetric ``levels``-step quantization on [lo, hi] over ``h`` (bin centres)."""
    lo, hi = _with_zero(lo, hi)
    if hi <= lo:
        return 0.0
    scale = (hi - lo) / (levels - 1)
    zp = np.round(-lo / scale)
    x = h.centers
    q = (np.clip(np.round(x / scale) + zp, 0, levels - 1) - zp) * scale
    n = h.counts.sum()
    return float(((q - x) ** 2 * h.counts).sum() / n) if n else 0.0


def mse_range(h: Histogram, steps: int = 80) -> tuple[float, float]:
    """[a * min, a * max] for the shrink factor a in (0, 1] with the least :func:`quant_error`."""
    lo, hi = _with_zero(h.lo, h.hi)
    if h.counts.sum() == 0 or hi <= lo:
        return lo, hi
    best = min(np.linspace(1.0 / steps, 1.0, steps), key=lambda a: (quant_error(h, a * lo, a * hi), -a))
    return float(best * lo), float(best * hi)


def entropy_range(h: Histogram, start: int = 128) -> tuple[float, float]:
    """The clip T of |x| whose quantized histogram (128 levels per side; 256 for a one-sided tensor such as
    a ReLU output) has the least KL divergence from the clipped original (TensorRT's calibration; outliers
    beyond T are folded into the last bin)."""
    lo, hi = _with_zero(h.lo, h.hi)
    if h.counts.sum() == 0 or hi <= lo:
        return lo, hi
    levels = 256 if lo == 0 or hi == 0 else 128
    amax = max(-lo, hi)
    # |x| histogram on [0, amax]
    nb = len(h.counts)
    edges = np.abs(h.centers)
    absc = np.bincount(np.minimum((edges / amax * nb).astype(np.int64), nb - 1), weights=h.counts,
                       minlength=nb).astype(np.float64)
    # a ReLU's exact zeros are one spike in the first bin that outweighs everything else, and the clip that keeps
    # it best is the shortest: counted as its neighbour instead, as TensorRT's calibrator does (on MobileNetV2's
    # ReLU6 outputs the spike chose a clip of 0.2 of 6, and full int8 agreed with Keras on 23 %)
    absc[0] = absc[1]
    best_kl, best_i = np.inf, nb
    for i in range(max(start, levels), nb + 1, max(1, nb // 512)):
        p = absc[:i].copy()
        p[-1] += absc[i:].sum()
        nz = p > 0
        # quantize the first i bins into `levels` groups, spread each group's mass over its non-empty bins
        starts = np.linspace(0, i, levels + 1).astype(np.int64)
        size = np.diff(starts)
        mass = np.add.reduceat(absc[:i], starts[:-1])
        filled = np.add.reduceat(nz.astype(np.float64), starts[:-1])
        q = np.repeat(mass / np.maximum(filled, 1.0), size) * nz
        ps, qs = p.sum(), q.sum()
        if qs == 0:
            continue
        pn, qn = p[nz] / ps, q[nz] / qs
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = float(np.sum(pn * np.log(pn / np.where(qn > 0, qn, 1e-12))))
        if kl < best_kl:
            best_kl, best_i = kl, i
    t = amax * best_i / nb
    return max(lo, -t), min(hi, t)


def clip_range(h: Histogram, rule: str) -> tuple[float, float]:
    """``h``'s range under ``rule`` (one of :data:`RANGE_RULES`)."""
    if rule == "minmax":
        return _with_zero(h.lo, h.hi)
    if rule == "percentile":
        return percentile_range(h)
    if rule == "entropy":
        return entropy_range(h)
    if rule == "mse":
        return mse_range(h)
    if rule == "narrowest":
        (plo, phi), (mlo, mhi) = percentile_range(h), mse_range(h)
        return max(plo, mlo), min(phi, mhi)
    raise ConfigError(f"expected a range rule, one of {', '.join(RANGE_RULES)}, received '{rule}'")


#: TFLite's int8 SOFTMAX output: scale 1/256 (zero point -128), whatever the calibration saw
SOFTMAX_STEP = 1.0 / 256.0


@dataclass
class RowPeak:
    """What :func:`softmax_input_range` reads of a softmax input over the calibration images: the lowest of the
    rows' largest values (rows along the last axis: each image's, or each pixel's, top logit) and the rows'
    length (the classes). Batches of fewer than two dimensions are not rows and are left out."""

    peak: float = math.inf
    width: int = 0

    def add(self, values: np.ndarray) -> None:
        v = np.asarray(values, np.float64)
        if v.ndim >= 2 and v.size:
            self.peak = min(self.peak, float(v.reshape(-1, v.shape[-1]).max(axis=1).min()))
            self.width = int(v.shape[-1])

    def range(self, lo: float, hi: float) -> tuple[float, float]:
        """``(lo, hi)`` (by any rule) under :func:`softmax_input_range` from these rows."""
        return softmax_input_range(lo, hi, self.peak, self.width)


def softmax_input_range(lo: float, hi: float, peak_min: float, classes: int) -> tuple[float, float]:
    """A SOFTMAX input's range (the logits, ``(lo, hi)`` by any rule) with its low end raised to
    ``min(peak_min, hi) - ln(2 (classes - 1) / SOFTMAX_STEP)``, ``peak_min`` the lowest top logit over the
    calibration images (of any softmax row), ``hi`` where a clipping rule may have cut the top logits.

    A logit at or below that floor has probability below ``SOFTMAX_STEP / (2 (classes - 1))`` on every such
    row, and all of them together less than half an output step: clipped to the floor or not, the int8
    output shows 0 for each, and the others' probabilities change by less than half a step. A row whose top
    logit is lower than any calibration row's, by d, may see a clipped class's probability rise to at most
    ``e**d * SOFTMAX_STEP / (2 (classes - 1))``. No finite ``peak_min`` or fewer than two classes: unchanged."""
    if not math.isfinite(peak_min) or classes < 2:
        return lo, hi
    floor = min(peak_min, hi) - math.log(2.0 * (classes - 1) / SOFTMAX_STEP)
    return _with_zero(max(lo, floor), hi)


def range_rules(scheme: str, method: str) -> tuple[str, ...]:
    """The activation-range rules ``scheme`` may use under ``--calibration-method method``: all it offers,
    min/max first, for ``auto``; the one named otherwise (ConfigError when the scheme does not offer it)."""
    offered = get_scheme(scheme).range_rules
    if not offered:
        return ()
    if method == "auto":
        return offered
    if method not in offered:
        others = [s for s in ALL_SCHEMES if method in get_scheme(s).range_rules]
        raise ConfigError(f"expected --calibration-method for {scheme} to be one of auto, {', '.join(offered)}; "
                          f"received '{method}' (offered by {', '.join(others) or 'no scheme'}). Use auto, or "
                          f"export {scheme} in a separate run with --schemes")
    return (method,)
