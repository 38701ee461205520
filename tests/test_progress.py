"""Progress modes: a bar on a terminal, a few whole lines in logs, nothing when off."""

from __future__ import annotations

import io
import time

import pytest

import edgeport.progress as progress
from edgeport.errors import ConfigError
from edgeport.progress import Progress, as_mode, progress_mode


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_modes_and_their_spellings():
    assert progress_mode("auto", Tty()) == "bar" and progress_mode("auto", io.StringIO()) == "line"
    assert progress_mode(True, io.StringIO()) == "line" and progress_mode(False) == "off"
    assert as_mode(None) == "auto" and as_mode("bar") == "bar"
    with pytest.raises(ConfigError, match="expected --progress one of auto, bar, line, off, received 'fancy'"):
        as_mode("fancy")


def test_line_mode_short_task_is_one_line_with_its_duration():
    out = io.StringIO()
    with Progress(200, "verifying", "line", stream=out) as bar:
        for _ in range(200):
            bar.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verifying: 200/200 in ") and lines[0].endswith(" ms")


def test_line_mode_long_task_says_so_then_at_most_one_line_per_interval(monkeypatch):
    monkeypatch.setattr(progress, "LINE_FIRST_S", 0.05)
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.15)
    out = io.StringIO()
    t0 = time.perf_counter()
    with Progress(1000, "calibrating", "line", stream=out) as bar:
        while bar.n < 1000:
            bar.update()
            time.sleep(0.0005)
    took = time.perf_counter() - t0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("calibrating: ") and " after " in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("calibrating: 1000/1000 in ")
    # the first line after 0.05 s, then one per 0.15 s at most, and the end line: a few, not 1000
    assert 2 <= len(lines) <= 2 + int((took - 0.05) / 0.15) + 1, lines


def test_bar_mode_redraws_one_line_and_off_is_silent():
    out = Tty()
    with Progress(3, "loading", "auto", stream=out) as bar:
        for _ in range(3):
            bar.update(note="x.jpg")
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1 and "3/3" in text
    quiet = io.StringIO()
    with Progress(3, "loading", "off", stream=quiet) as bar:
        bar.update(3)
    with Progress(3, "loading", False, stream=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


def test_a_stopped_task_says_where_it_stopped():
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with Progress(10, "benchmarking", "line", stream=out) as bar:
            bar.update(4)
            raise KeyboardInterrupt
    assert out.getvalue().startswith("benchmarking: stopped at 4/10 in ")


def test_the_estimate_leaves_out_the_first_steps_setup(monkeypatch):
    """A first step that traces a graph (QAT: 22 s, then 0.6 s a step) must not make the estimate 100 minutes;
    an update(0) before any work (a note) does not start the clock of the rate."""
    clock = iter([0.0, 21.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    bar = Progress(100, "fine-tune", "off")  # __init__ reads 0.0
    bar.update(0)  # a note before the work: no rate starts here
    bar.update()  # the first step, setup included, ends at 21.0
    assert bar._left(22.0) is None  # one step, with the setup in it: no rate yet
    bar.update()  # n = 2
    assert bar._left(22.6) == pytest.approx((22.6 - 21.0) * 98 / 1)  # the one step after the first
    bar.update(200)  # past the total: nothing left, not a negative time
    assert bar._left(23.2) == 0.0
