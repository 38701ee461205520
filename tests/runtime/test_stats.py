"""Timing statistics (pure)."""

from __future__ import annotations

import math

import pytest

from edgeport.runtime.stats import format_summary, percentiles, summarize


def test_percentiles():
    assert percentiles(list(range(1, 101))) == {"p50": pytest.approx(50.5), "p95": pytest.approx(95.05)}
    assert all(math.isnan(v) for v in percentiles([]).values())


def test_summarize_fps_and_ratios():
    rows = [{"capture_age": 1.0, "preprocess": 0.5, "invoke": 10.0, "postprocess": 0.1, "total": 10.6}] * 10
    s = summarize(rows, wall_seconds=0.2, bad_frames=2)
    assert s["frames"] == 10 and s["fps"] == pytest.approx(50.0)
    assert s["invoke_fps"] == pytest.approx(100.0) and s["fps_ratio"] == pytest.approx(0.5)
    assert s["preprocess_share"] == pytest.approx(0.05)
    assert s["stages_ms"]["invoke"] == {"p50": 10.0, "p95": 10.0, "mean": 10.0}
    assert s["bad_frames"] == 2
    text = format_summary(s)
    assert "invoke" in text and "50.0 FPS achieved" in text and "bad_frames 2" in text


def test_summarize_empty_run():
    s = summarize([], wall_seconds=0.0)
    assert s["frames"] == 0 and s["fps"] == 0.0 and s["stages_ms"] == {}
    assert "frames 0" in format_summary(s)
