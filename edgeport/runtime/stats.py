"""Timing statistics of the camera loop (pure functions)."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

#: per-frame timings recorded by the loop, in milliseconds. ``read`` is the wait in
#: ``source.read()``, ``output`` the ``on_result`` callback (drawing, saving, printing): both
#: only in the summary, not in a :class:`~edgeport.runtime.loop.FrameResult`;
#: ``total`` is preprocess + invoke + postprocess (the model's share of a frame).
STAGES = ("capture_age", "read", "preprocess", "invoke", "postprocess", "output", "total")

#: the loop thread's consecutive steps per frame: their means (plus ``other``) add up to 1/FPS
CYCLE = ("read", "preprocess", "invoke", "postprocess", "output")


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
    cycle: Iterable[Mapping[str, float]] | None = None,
    source_live: bool | None = None,
    **counters: int,
) -> dict:
    """Summary of a run: p50/p95 of each stage (ms), achieved FPS, 1/median(invoke) and the bound.

    ``timings`` are the per-frame dicts of milliseconds (keys of :data:`STAGES`);
    ``cycle`` the loop thread's own time per step (keys of :data:`CYCLE`; default
    ``timings``, which differ only when preprocessing ran in the reader thread).
    ``loop_ms`` is the mean time per frame of each step, ``other`` the rest of
    ``wall_seconds``; ``bound_by`` names the largest: what limits the FPS.
    ``source_live`` (a camera/stream that delivers at its own rate) is copied in, as
    are extra keyword counters (bad_frames, dropped, ...).
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
    steps = rows if cycle is None else list(cycle)
    loop_ms: dict[str, float] = {}
    for step in CYCLE:
        vals = [r[step] for r in steps if step in r]
        if vals:
            loop_ms[step] = float(np.mean(vals))
    if loop_ms and n > 0 and wall_seconds > 0:
        loop_ms["other"] = max(0.0, 1000.0 * wall_seconds / n - sum(loop_ms.values()))
    summary = {
        "frames": n,
        "wall_s": wall_seconds,
        "fps": fps,
        "invoke_fps": invoke_fps,
        "fps_ratio": fps / invoke_fps if invoke_fps and invoke_fps == invoke_fps else float("nan"),
        "preprocess_share": pre / invoke_p50 if invoke_p50 and invoke_p50 > 0 else float("nan"),
        "stages_ms": stages,
        "loop_ms": loop_ms,
        "bound_by": max(loop_ms, key=loop_ms.__getitem__) if loop_ms else None,
    }
    if source_live is not None:
        summary["source_live"] = bool(source_live)
    summary.update(counters)
    return summary


def describe_bound(summary: Mapping) -> str:
    """One clause naming what limits the loop's FPS, e.g. 'the loop is bound by the engine (...)'."""
    parts = summary.get("loop_ms") or {}
    bound = summary.get("bound_by")
    if not parts or bound not in parts:
        return ""
    per_frame = sum(parts.values())
    x = f"{parts[bound]:.2f} of {per_frame:.2f} ms per frame"
    if bound == "invoke":
        return f"the loop is bound by the engine (invoke takes {x})"
    if bound == "read":
        if summary.get("source_live"):
            return (f"the loop is bound by the source's frame rate (it waits {x} for the camera/stream "
                    f"to deliver the next frame)")
        return (f"the loop is bound by reading the source (it waits {x} for the reader thread "
                f"to decode the next frame)")
    if bound == "preprocess":
        return (f"the loop is bound by preprocessing: resizing and converting take {x} "
                f"(--pipeline overlaps it with the engine when a core is free)")
    if bound == "postprocess":
        return f"the loop is bound by postprocessing (dequantize, softmax, top-k: {x})"
    if bound == "output":
        return f"the loop is bound by its output: drawing, saving and printing results take {x}"
    return f"the loop is bound by its own overhead ({x})"


def format_summary(summary: Mapping) -> str:
    """A few human lines: one per stage with p50/p95, then FPS, what bounds it, and counters."""
    lines = [f"{'stage':<12} {'p50 ms':>9} {'p95 ms':>9}"]
    for stage, s in summary.get("stages_ms", {}).items():
        lines.append(f"{stage:<12} {s['p50']:9.2f} {s['p95']:9.2f}")
    head = f"frames {summary['frames']} in {summary['wall_s']:.2f} s: {summary['fps']:.1f} FPS achieved"
    if summary["invoke_fps"] == summary["invoke_fps"]:  # not NaN
        head += f"; the engine alone could do {summary['invoke_fps']:,.0f}/s (1 / median invoke)"
    bound = describe_bound(summary)
    lines.append(head + (f"; {bound}" if bound else ""))
    extra = {k: v for k, v in summary.items() if k not in
             {"frames", "wall_s", "fps", "invoke_fps", "fps_ratio", "preprocess_share", "stages_ms",
              "loop_ms", "bound_by", "source_live"}}
    if extra:
        lines.append(", ".join(f"{k} {v}" for k, v in extra.items()))
    return "\n".join(lines)
