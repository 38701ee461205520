"""Timing statistics of the camera loop (pure functions)."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

#: per-frame timings recorded by the loop, in milliseconds
STAGES = ("capture_age", "preprocess", "invoke", "postprocess", "total")


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95)) -> dict[str, float]:
    """{'p50': ..., 'p95': ...} of ``values`` (NaN when empty)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {f"p{q:g}": float("nan") for q in qs}
    return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}


def summarize(
    timings: Iterable[Mapping[str, float]],
    wall_seconds: float,
    frames: int | None = None,
    **counters: int,
) -> dict:
    """Summary of a run: p50/p95 of each stage (ms), achieved FPS and 1/median(invoke).

    ``timings`` are the per-frame dicts of milliseconds (keys of :data:`STAGES`);
    extra keyword counters (bad_frames, dropped, ...) are copied in.
    """
    rows = list(timings)
    n = len(rows) if frames is None else frames
    stages = {}
    for stage in STAGES:
        vals = [r[stage] for r in rows if stage in r]
        if vals:
            stages[stage] = {**percentiles(vals), "mean": float(np.mean(vals))}
    invoke_p50 = stages.get("invoke", {}).get("p50", float("nan"))
    fps = n / wall_seconds if wall_seconds > 0 and n > 0 else 0.0
    invoke_fps = 1000.0 / invoke_p50 if invoke_p50 and invoke_p50 > 0 else float("nan")
    pre = stages.get("preprocess", {}).get("p50", float("nan"))
    return {
        "frames": n,
        "wall_s": wall_seconds,
        "fps": fps,
        "invoke_fps": invoke_fps,
        "fps_ratio": fps / invoke_fps if invoke_fps and invoke_fps == invoke_fps else float("nan"),
        "preprocess_share": pre / invoke_p50 if invoke_p50 and invoke_p50 > 0 else float("nan"),
        "stages_ms": stages,
        **counters,
    }


def format_summary(summary: Mapping) -> str:
    """A few human lines: one per stage with p50/p95, then FPS and counters."""
    lines = [f"{'stage':<12} {'p50 ms':>9} {'p95 ms':>9}"]
    for stage, s in summary.get("stages_ms", {}).items():
        lines.append(f"{stage:<12} {s['p50']:9.2f} {s['p95']:9.2f}")
    lines.append(
        f"frames {summary['frames']} in {summary['wall_s']:.2f} s: {summary['fps']:.1f} FPS achieved, "
        f"{summary['invoke_fps']:.1f} FPS = 1/median invoke (ratio {summary['fps_ratio']:.2f})"
    )
    extra = {k: v for k, v in summary.items() if k not in
             {"frames", "wall_s", "fps", "invoke_fps", "fps_ratio", "preprocess_share", "stages_ms"}}
    if extra:
        lines.append(", ".join(f"{k} {v}" for k, v in extra.items()))
    return "\n".join(lines)
