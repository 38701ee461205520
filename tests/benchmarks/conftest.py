"""Fixtures of the benchmark tests."""

from __future__ import annotations

import pytest

from .handmade import make_report


@pytest.fixture
def hand_report() -> dict:
    """A two-class report: fp32, int8 at 1 and 2 threads, and an unavailable ONNX row."""
    return make_report()
