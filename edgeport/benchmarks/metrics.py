"""Latency figures of the benchmark (pure numpy). Accuracy figures are shared: :mod:`edgeport.metrics`."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeport.errors import ConfigError
from edgeport.intervals import CONFIDENCE, median_interval


def latency_stats(times_ms: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> dict:
    """mean, std, p50 (with ``p50_ci``, its order-statistics interval; None under 6 runs), p90, p99, min, max
    (ms) and images/s of single-inference times.

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
        "p50_ci": list(median_interval(t, confidence) or ()) or None,
        "p90": float(np.percentile(t, 90)),
        "p99": float(np.percentile(t, 99)),
        "min": float(t.min()),
        "max": float(t.max()),
        "images_per_s": 1000.0 / mean if mean > 0 else float("inf"),
    }
