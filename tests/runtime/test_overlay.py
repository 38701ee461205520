"""Overlay drawing (pure)."""

from __future__ import annotations

import numpy as np

from edgeport.runtime.overlay import draw_overlay


def test_overlay_draws_on_a_copy():
    frame = np.full((240, 320, 3), 200, np.uint8)
    out = draw_overlay(frame, [("rose", 0.91), ("tulip", 0.05)], fps=12.3, latency_ms=45.6)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (frame == 200).all()  # input untouched
    assert (out[:40, :100] != 200).any()  # something drawn top-left
    assert (out[200:, 200:] == 200).all()  # the rest untouched


def test_overlay_without_results_is_a_plain_copy():
    frame = np.zeros((10, 10, 3), np.uint8)
    out = draw_overlay(frame, [])
    assert out is not frame and np.array_equal(out, frame)
