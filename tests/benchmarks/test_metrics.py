"""Latency figures on known times (accuracy figures: tests/test_metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.benchmarks.metrics import latency_stats
from edgeport.errors import ConfigError


def test_latency_stats_on_known_times():
    t = [1.0, 2.0, 3.0, 4.0, 10.0]
    s = latency_stats(t)
    assert s["mean"] == pytest.approx(4.0)
    assert s["std"] == pytest.approx(np.std(t))
    assert s["p50"] == pytest.approx(3.0)
    assert s["p90"] == pytest.approx(4.0 + 0.6 * 6.0)  # linear between 4 (p75) and 10 (p100)
    assert s["p99"] == pytest.approx(4.0 + 0.96 * 6.0)
    assert s["min"] == 1.0 and s["max"] == 10.0
    assert s["images_per_s"] == pytest.approx(250.0)


def test_latency_stats_rejects_empty():
    with pytest.raises(ConfigError):
        latency_stats([])
