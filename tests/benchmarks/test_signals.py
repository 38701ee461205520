"""A killed `edgeport bench` leaves no worker process and no temporary folder behind.

A real ``edgeport bench`` subprocess (TMPDIR pointed at the test's folder)
is signalled while one of its worker processes is timing a model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeport.benchmarks.runner import SCRATCH_PREFIX, sweep_stale_scratch

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    kids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            kids.append(int(status.parent.name))
    return kids


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT], ids=["TERM", "KILL", "INT"])
def test_signal_during_a_worker_leaves_no_worker_and_no_temp_folder(tiny_export_dir, tiny_data_dir, tmp_path, sig):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "2"}
    # a latency job that would run for a minute: the signal comes while the worker is timing
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeport", "bench", str(tiny_export_dir), "--data", str(tiny_data_dir),
         "--schemes", "fp32", "--no-accuracy", "--warmup", "0", "--runs", "1000000", "--max-seconds", "60",
         "--limit", "4", "--progress", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
        # a suite started in the background (`make test &`, CI runners) inherits SIGINT ignored, and so would the
        # bench: give it the default disposition, so that Python installs its KeyboardInterrupt handler as in a
        # terminal, which is what this test is about
        preexec_fn=_default_sigint)
    try:
        worker, deadline = None, time.monotonic() + 90
        while worker is None and time.monotonic() < deadline and proc.poll() is None:
            worker = next((c for c in _children(proc.pid) if "edgeport.benchmarks.worker" in _cmdline(c)), None)
            time.sleep(0.1)
        assert worker is not None, proc.communicate(timeout=30)
        assert list(tmp.glob(f"{SCRATCH_PREFIX}{proc.pid}-*")), "the run's scratch folder should exist now"
        time.sleep(1.0)  # the worker is past its start-up, inside the timed loop
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    expected = {signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130}[sig]
    assert proc.returncode == expected, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    deadline = time.monotonic() + 15
    while (_running(worker) or list(tmp.glob(f"{SCRATCH_PREFIX}*"))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(worker), f"worker {worker} still running after the benchmark got {sig.name}"
    assert not list(tmp.iterdir()), f"left behind: {[p.name for p in tmp.iterdir()]}"


def test_stale_scratch_folders_of_dead_benchmarks_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{SCRATCH_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-abc"
    other = tmp_path / f"{SCRATCH_PREFIX}notapid"
    for d in (stale, live, other):
        d.mkdir()
        (d / "images.npy").write_bytes(b"x")
    assert sweep_stale_scratch(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
