"""The timed loop and memory readings a worker reports (no engine needed)."""

from __future__ import annotations

import time

import numpy as np

from edgeport.benchmarks.worker import current_rss_mb, measure_latency, peak_rss_mb


def test_measure_latency_counts_and_cycles_inputs():
    seen = []
    inputs = [np.full(1, i) for i in range(3)]
    times = measure_latency(lambda x: seen.append(int(x[0])), inputs, warmup=2, runs=5)
    assert len(times) == 5 and all(t >= 0 for t in times)
    assert seen == [0, 1, 0, 1, 2, 0, 1]  # 2 warm-up calls, then 5 timed ones from the first input


def test_measure_latency_times_the_call():
    times = measure_latency(lambda x: time.sleep(0.01), [np.zeros(1)], warmup=0, runs=3)
    assert all(9.0 <= t < 2000.0 for t in times)


def test_measure_latency_stops_at_the_time_cap():
    times = measure_latency(lambda x: time.sleep(0.02), [np.zeros(1)], warmup=0, runs=1000, max_seconds=0.1)
    # it stops at the first run that brings the timed total to the cap
    assert len(times) < 1000 and sum(times[:-1]) < 100.0 <= sum(times)


def test_rss_readings_see_new_memory():
    before = current_rss_mb()
    block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, touched
    peak = peak_rss_mb()
    assert peak is not None and peak >= 40
    if before is not None:  # Linux: the peak includes the block on top of what was resident
        assert peak >= before + 40 and current_rss_mb() >= before + 40
    del block


def test_run_worker_turns_errors_and_timeouts_into_failed_results(tmp_path):
    from edgeport.benchmarks.runner import run_worker

    np.save(tmp_path / "imgs.npy", np.zeros((1, 8, 8, 3), np.uint8))
    job = {"kind": "latency", "model": str(tmp_path / "missing.tflite"), "engine": "litert",
           "images": str(tmp_path / "imgs.npy")}
    res = run_worker(job, tmp_path, timeout=120)
    assert res["ok"] is False and res["reason"] and res["pid"] > 0
    res = run_worker(job, tmp_path, timeout=0.01)
    assert res["ok"] is False and res["reason"].startswith("timed out after 0.01 s")
