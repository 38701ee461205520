"""The benchmarks stage: latency, size, memory and accuracy of each exported scheme, on the device.

    from edgeport.benchmarks import bench
    report = bench("runs/r1/export", data="photos/", threads=(1, 2), out="bench")   # -> BenchReport
    report.row("int8")["latency_ms"]["p50"], report.table(), report.files

TensorFlow-free: only numpy, OpenCV and the runtime's engines are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeport.benchmarks.config import BenchConfig

if TYPE_CHECKING:
    from edgeport.benchmarks.report import BenchReport

__all__ = ["BenchConfig", "BenchReport", "bench", "run", "compare", "gate"]


def bench(config: BenchConfig | str, **options: object) -> "BenchReport":
    """Benchmark an export directory: ``bench(BenchConfig(...))`` or ``bench("export", data=..., threads=(1, 2))``
    with :class:`BenchConfig`'s fields as keyword arguments; the :class:`~edgeport.benchmarks.report.BenchReport`."""
    from edgeport.benchmarks.report import BenchReport
    from edgeport.config import make_config

    return BenchReport(run(make_config(BenchConfig, config, "export_dir", dict(options))))


def __getattr__(name: str) -> object:
    if name == "BenchReport":
        from edgeport.benchmarks.report import BenchReport

        return BenchReport
    raise AttributeError(f"module 'edgeport.benchmarks' has no attribute '{name}'")


def run(cfg: BenchConfig) -> dict:
    """Benchmark an export directory (see :func:`edgeport.benchmarks.runner.run`)."""
    from edgeport.benchmarks.runner import run as _run

    return _run(cfg)


def compare(paths, out=None, names=None) -> dict:  # type: ignore[no-untyped-def]
    """Merge bench.json reports of several devices (see :func:`edgeport.benchmarks.comparison.compare`)."""
    from edgeport.benchmarks.comparison import compare as _compare

    return _compare(paths, out, names)


def gate(report: dict, max_drop: float) -> list[str]:
    """Variants losing more than ``max_drop`` top-1 points vs fp32."""
    from edgeport.benchmarks.runner import gate as _gate

    return _gate(report, max_drop)
