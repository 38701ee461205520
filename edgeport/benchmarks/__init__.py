"""The benchmarks stage: latency, size, memory and accuracy of each exported scheme, on the device.

    from edgeport.benchmarks import BenchConfig, run, compare
    report = run(BenchConfig(export_dir="export", data="flowers", threads=(1, 2), out="bench"))

TensorFlow-free: only numpy, OpenCV and the runtime's engines are used.
"""

from __future__ import annotations

from edgeport.benchmarks.config import BenchConfig

__all__ = ["BenchConfig", "run", "compare", "gate"]


def run(cfg: BenchConfig) -> dict:
    """Benchmark an export directory (see :func:`edgeport.benchmarks.bench.run`)."""
    from edgeport.benchmarks.bench import run as _run

    return _run(cfg)


def compare(paths, out=None, names=None) -> dict:  # type: ignore[no-untyped-def]
    """Merge bench.json reports of several devices (see :func:`edgeport.benchmarks.compare.compare`)."""
    from edgeport.benchmarks.compare import compare as _compare

    return _compare(paths, out, names)


def gate(report: dict, max_drop: float) -> list[str]:
    """Variants losing more than ``max_drop`` top-1 points vs fp32."""
    from edgeport.benchmarks.bench import gate as _gate

    return _gate(report, max_drop)
