"""Hand-made benchmark reports for the report/compare/CLI tests (known numbers, no engines)."""

from __future__ import annotations

from edgeport.benchmarks import report as rep
from edgeport.intervals import paired_difference_interval

CLASSES = ["a", "b"]


def make_row(artifact: str, scheme: str, top1: float | None, delta: float | None, p50: float = 10.0,
             engine: str = "litert", threads: int = 1, status: str = rep.OK, fmt: str = "tflite") -> dict:
    acc = None
    if top1 is not None:
        # 1000 images, the fp32 reference right on 900; the artifact's losses (or gains) all on images fp32 got
        # right (or wrong): counts whose intervals the gate decides on
        lost, won = max(0, round(-10 * (delta or 0))), max(0, round(10 * (delta or 0)))
        pairs = [900 - lost, won, lost, 100 - won]
        acc = {"images": 1000, "top1_pct": top1, "top1_pct_ci": [top1 - 2, top1 + 2], "top5_pct": None,
               "per_class_top1_pct": {"a": top1, "b": top1}, "reference_top1_pct": 90.0, "delta_top1_pts": delta,
               "delta_top1_pts_ci": list(paired_difference_interval(*pairs)), "top1_pairs": pairs,
               "agreement_pct": 90.0, "agreement_pct_ci": [88.0, 91.8], "decided_agreement_pct": 95.0,
               "decided_images": 800, "worst_class": "a", "worst_class_drop_pts": -delta if delta else None,
               "reference": "model_fp32.tflite@litert"}
    lat = None
    if status == rep.OK:
        lat = {"mean": p50 + 1, "std": 0.5, "p50": p50, "p50_ci": [p50 - 0.5, p50 + 0.5], "p90": p50 + 2,
               "p99": p50 + 3, "min": p50 - 1, "max": p50 + 4}
    return rep.empty_row(
        artifact=artifact, scheme=scheme, precision=scheme, format=fmt, engine=engine, engine_version="1.0",
        threads=threads, status=status, reason="" if status == rep.OK else "broken", bytes=1048576 * (4 if scheme == "fp32" else 1),
        load_s=0.1 if lat else None, first_inference_ms=20.0 if lat else None, warmup=2, runs=5 if lat else None,
        latency_ms=lat, images_per_s=1000.0 / (p50 + 1) if lat else None, peak_rss_mb=50.0 if lat else None,
        baseline_rss_mb=30.0 if lat else None, pid=123 if lat else None, accuracy=acc,
    )


def make_report(device: str = "pi5", int8_delta: float = -1.5) -> dict:
    rows = [
        make_row("model_fp32.tflite", "fp32", 90.0, 0.0, p50=20.0),
        make_row("model_int8.tflite", "int8", 90.0 + int8_delta, int8_delta, p50=8.0),
        make_row("model_int8.tflite", "int8", 90.0 + int8_delta, int8_delta, p50=5.0, threads=2),
        make_row("model.onnx", "fp32", None, None, engine="onnxruntime", status=rep.NOT_AVAILABLE, fmt="onnx"),
    ]
    env = {"device": device, "cpu": "Cortex-A76", "machine": "aarch64", "cores": 4, "usable_cores": 4,
           "memory_mb": 8000.0, "os": "Linux", "python": "3.11.2", "numpy": "1.26.4", "opencv": "4.10.0",
           "engines": {"tflite-runtime": {"available": True, "version": "2.14.0"}}, "timestamp": "2026-01-01T00:00:00+00:00"}
    return {"schema_version": rep.SCHEMA_VERSION, "kind": rep.KIND, "environment": env,
            "config": {"warmup": 2, "runs": 5, "max_seconds": 20.0, "limit": None},
            "export": {"dir": "/x"}, "data": {"classes": CLASSES, "images": 10, "split": "val", "root": "/d"},
            "rows": rows}
