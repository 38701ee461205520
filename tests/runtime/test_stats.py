"""Timing statistics (pure)."""

from __future__ import annotations

import math

import pytest

from edgeport.runtime.stats import describe_bound, format_summary, percentiles, summarize


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
    assert "the engine alone could do 100/s" in text
    # without read/output timings, the engine's 10 of 20 ms per frame bound the loop
    assert s["bound_by"] == "invoke" and s["loop_ms"]["other"] == pytest.approx(20.0 - 10.6)
    assert "bound by the engine (invoke takes 10.00 of 20.00 ms per frame)" in text


def test_bound_names_the_largest_step_of_the_loop():
    rows = [{"read": 30.0, "preprocess": 1.0, "invoke": 0.3, "postprocess": 0.1, "output": 2.0}] * 10
    cam = summarize(rows, wall_seconds=0.334, source_live=True)
    assert cam["bound_by"] == "read" and cam["source_live"] is True
    assert "frame rate" in describe_bound(cam) and "30.00 of 33.40 ms" in describe_bound(cam)
    video = summarize(rows, wall_seconds=0.334, source_live=False)
    assert "reader thread to decode" in describe_bound(video)
    drawn = summarize([{**r, "read": 0.1, "output": 5.0} for r in rows], wall_seconds=0.066)
    assert drawn["bound_by"] == "output" and "drawing, saving and printing" in format_summary(drawn)
    # the loop thread's own steps (cycle) decide, not preprocessing done in the reader thread
    piped = summarize([{**r, "read": 0.1, "preprocess": 9.0} for r in rows], wall_seconds=0.04,
                      cycle=[{**r, "read": 0.1, "preprocess": 0.01} for r in rows])
    assert piped["bound_by"] == "output" and piped["stages_ms"]["preprocess"]["p50"] == 9.0


def test_summarize_empty_run():
    s = summarize([], wall_seconds=0.0)
    assert s["frames"] == 0 and s["fps"] == 0.0 and s["stages_ms"] == {}
    assert s["loop_ms"] == {} and s["bound_by"] is None and describe_bound(s) == ""
    assert "frames 0" in format_summary(s) and "bound" not in format_summary(s)
