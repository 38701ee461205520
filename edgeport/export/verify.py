"""Measure an artifact in its real engine: its predictions against the Keras model's, and its latency.

Verification runs each file through the runtime's own code (the engine from
:mod:`edgeport.runtime.engines`, ``to_input_tensor`` and ``to_probabilities``
from the classifier), so what is verified here is what runs on the device.
:func:`evaluate` (figures and p50 of a file, alone or timed together with
another) serves the export's table and every candidate of the int8 search.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeport.contract import InputContract
from edgeport.evalset import EvalSet
from edgeport.intervals import CONFIDENCE, median_interval, ratio_interval
from edgeport.metrics import compare
from edgeport.progress import track
from edgeport.runtime.classifier import to_input_tensor, to_probabilities
from edgeport.runtime.engines import Engine, create_engine

#: the engine that verifies each format on the export machine (ONNX on CPU: no TensorRT build here)
VERIFY_ENGINES = {".tflite": ("litert", {}), ".onnx": ("onnxruntime", {"providers": "cpu"})}


def open_engine(path: str | Path, threads: int | None = None) -> Engine:
    """``path`` loaded in its real engine (LiteRT for .tflite, onnxruntime CPU for .onnx)."""
    name, opts = VERIFY_ENGINES[Path(path).suffix.lower()]
    return create_engine(name, path, threads=threads or os.cpu_count() or 1, **opts)


def predict(engine: Engine, images: np.ndarray, contract: InputContract, progress: bool = True,
            desc: str = "predict", max_seconds: float | None = None) -> np.ndarray:
    """(N,H,W,3) uint8 RGB -> (N,classes) float32 probabilities, one image per invoke; with ``max_seconds``,
    those of the first images predicted within that time (at least one)."""
    out = []
    t0 = time.perf_counter()
    for img in track(images, desc, enabled=progress):
        out.append(to_probabilities(engine.invoke(to_input_tensor(img, contract, engine.input)), engine.output))
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
    return np.stack(out) if out else np.zeros((0, int(np.prod(engine.output.shape))), np.float32)


def verify_artifact(
    engine: Engine,
    contract: InputContract,
    images: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    classes: Sequence[str],
    progress: bool = True,
    desc: str = "verify",
    max_seconds: float | None = None,
    confidence: float = CONFIDENCE,
) -> dict:
    """Run ``images`` through ``engine`` as the runtime would and compare with the Keras ``reference``
    probabilities (:func:`edgeport.metrics.compare`: agreement, Δtop-1, max |Δp|, ..., with intervals).
    With ``max_seconds`` only the images done within that time count (put them in a stratified order)."""
    t0 = time.perf_counter()
    probs = predict(engine, images, contract, progress, desc, max_seconds)
    seconds = time.perf_counter() - t0
    n = len(probs)
    figures = compare(probs, reference[:n], labels[:n], classes, confidence=confidence)
    if n < len(images):
        figures["note"] = (f"{n} of {len(images)} images: the verification is capped at {max_seconds:g} s a scheme "
                           "(--verify-seconds)")
    figures.update(engine=engine.name, engine_version=engine.version(), threads=engine.threads,
                   seconds=round(seconds, 3), ms_per_image=round(1000.0 * seconds / max(n, 1), 3))
    return figures


def model_figures(probs: np.ndarray, data: EvalSet, confidence: float = CONFIDENCE) -> dict:
    """:func:`edgeport.metrics.compare` figures against Keras (agreement_pct, decided_agreement_pct,
    delta_top1_pts, ...) plus mean_kl (KL(Keras || artifact), nats: continuous, so it orders the search's units
    that flip no answer)."""
    fig = compare(probs, data.reference, data.labels, data.names, confidence=confidence)
    fig.pop("per_class_top1_pct", None)
    ref = data.reference.astype(np.float64)
    p = np.clip(probs.astype(np.float64), 1e-7, 1.0)
    q = np.clip(ref, 1e-7, 1.0)
    p, q = p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True)
    fig["mean_kl"] = round(float((q * (np.log(q) - np.log(p))).sum(1).mean()), 6)
    return fig


#: invokes per engine before switching to the other when two are timed together (the first not counted)
LATENCY_BLOCK = 5
#: a p50 keeps sampling past its ``runs`` until this many seconds of invokes (at most LATENCY_MAX_RUNS):
#: 20 invokes of a 3 ms model are 60 ms, which one burst of other work on the machine can cover
LATENCY_SECONDS = 0.5
LATENCY_MAX_RUNS = 400
#: ... and stops before its ``runs`` once this many seconds are spent (slow kernels: int16x8's ~0.4 s an
#: invoke), after at least LATENCY_MIN_RUNS (the fewest with an order-statistics interval of the median)
LATENCY_MAX_SECONDS = 5.0
LATENCY_MIN_RUNS = 6


def _timed(engines: list, image: np.ndarray, contract: InputContract, runs: int,
           warmup: int) -> tuple[list[list[float]], list[list[float]]]:
    """Wall and process-CPU seconds of each invoke of each engine (two: alternating blocks)."""
    from edgeport.runtime.classifier import to_input_tensor

    xs = [to_input_tensor(image, contract, e.input) for e in engines]
    for _ in range(warmup):
        for e, x in zip(engines, xs):
            e.invoke(x)
    wall: list[list[float]] = [[] for _ in engines]
    cpu: list[list[float]] = [[] for _ in engines]
    runs, alternate = max(1, runs), len(engines) > 1
    spent = 0.0

    def more() -> bool:
        n = len(wall[0])
        if n < LATENCY_MIN_RUNS:
            return True
        if n < runs:
            return spent < LATENCY_MAX_SECONDS
        return spent < LATENCY_SECONDS and n < LATENCY_MAX_RUNS

    while more():
        for k, (e, x) in enumerate(zip(engines, xs)):
            if alternate:
                e.invoke(x)  # not counted: the first after the other engine's block
            for _ in range(LATENCY_BLOCK - 1 if alternate else 1):
                t, c = time.perf_counter(), time.process_time()
                e.invoke(x)
                wall[k].append(time.perf_counter() - t)
                cpu[k].append(time.process_time() - c)
                spent += wall[k][-1]
    return wall, cpu


def _p50s(wall: list[float], cpu: list[float], confidence: float, prefix: str = "") -> dict:
    """p50 (wall and CPU) in ms with their order-statistics intervals."""
    def ms(v: float) -> float:
        return round(1000.0 * float(v), 4)

    out = {f"{prefix}p50_ms": ms(np.median(wall)), f"{prefix}cpu_p50_ms": ms(np.median(cpu))}
    for key, samples in ((f"{prefix}p50_ci_ms", wall), (f"{prefix}cpu_p50_ci_ms", cpu)):
        ci = median_interval(samples, confidence)
        out[key] = [ms(ci[0]), ms(ci[1])] if ci else None
    return out


def _slowdown(wall: list[float], ref_wall: list[float], cpu: list[float], ref_cpu: list[float],
              confidence: float, alternating: bool = True) -> dict:
    """One p50 over the other (``slowdown``, with a bootstrap ``slowdown_ci``; ``wall_slowdown`` and
    ``cpu_slowdown`` beside it). Timed alternating, the slowdown is the larger of the wall-clock and the
    CPU-time ratios. Wall clock is the latency, and CPU time alone misses it: it sums the threads, and a model
    whose float ops ran on one thread while full int8 ran on two used less CPU time per invoke and took longer
    (EfficientNet-B0 with 214 ops float, 2 threads: 0.72x full int8 in CPU time, 1.40x wall). Wall clock alone
    misses it too on a busy machine: beside a test run, alternating blocks measured full int8 against itself at
    0.44 to 1.23x and a model with 81 % of its MACs float at 0.98x (1.48x in CPU time). A fallback must be
    within the limit on both. Timed apart (onnxruntime sessions, one at a time), the ratio is CPU time alone,
    which a load that changes between the two runs moves far less than wall clock."""
    if not ref_cpu or np.median(ref_cpu) <= 0:
        return {}
    ratios = {"cpu": (cpu, ref_cpu)}
    if alternating and ref_wall and np.median(ref_wall) > 0:
        ratios["wall"] = (wall, ref_wall)
    value = {k: float(np.median(a) / np.median(b)) for k, (a, b) in ratios.items()}
    clock = max(value, key=value.get)
    ci = ratio_interval(*ratios[clock], confidence)
    out = {"slowdown": round(value[clock], 4), "slowdown_ci": [round(ci[0], 4), round(ci[1], 4)] if ci else None,
           "slowdown_clock": clock, "cpu_slowdown": round(value["cpu"], 4)}
    if "wall" in value:
        out["wall_slowdown"] = round(value["wall"], 4)
    return out


def latency_p50(engine, image: np.ndarray, contract: InputContract, runs: int = 20, warmup: int = 5,
                reference=None, confidence: float = CONFIDENCE) -> dict:
    """Median wall and process-CPU milliseconds of at least ``runs`` invokes of one image (after ``warmup``;
    more, up to :data:`LATENCY_MAX_RUNS`, until :data:`LATENCY_SECONDS` of them; fewer, not under
    :data:`LATENCY_MIN_RUNS`, past :data:`LATENCY_MAX_SECONDS`), each with its interval
    (``p50_ci_ms``, ``cpu_p50_ci_ms``: order statistics of the invokes).

    With ``reference`` (another open engine) the two run in alternating blocks of :data:`LATENCY_BLOCK`
    invokes and its medians are added (``ref_p50_ms``, ``ref_cpu_p50_ms``), with their wall-clock ratio
    (``slowdown``, ``slowdown_ci``: bootstrap; :func:`_slowdown`): that ratio holds on a machine whose load
    changes between two measurements made apart (20 separate invokes each gave a fallback that costs 1.01x full int8 1.41x
    on ResNet50V2). The first invoke of each block is not counted: it runs on caches the other model
    filled. (onnxruntime sessions are not timed this way: :func:`evaluate`.)
    """
    engines = [engine] if reference is None else [engine, reference]
    wall, cpu = _timed(engines, image, contract, runs, warmup)
    out = {**_p50s(wall[0], cpu[0], confidence), "runs": len(wall[0])}
    if reference is not None:
        out.update(_p50s(wall[1], cpu[1], confidence, prefix="ref_"))
        out.update(_slowdown(wall[0], wall[1], cpu[0], cpu[1], confidence))
    return out


def evaluate(path: str | Path, data: EvalSet, contract: InputContract, threads: int | None = None,
             latency_runs: int = 20, progress: bool = False, desc: str = "candidate",
             reference: str | Path | None = None, confidence: float = CONFIDENCE) -> dict:
    """``path`` in its verification engine: :func:`model_figures` on ``data`` (+ p50 when latency_runs > 0,
    and the p50 of the model at ``reference`` timed with it, see :func:`latency_p50`).

    LiteRT/tflite-runtime models are timed alternating with the reference; onnxruntime ones one after the
    other, each session alone: two sessions open at once slowed each other's runs (int8 6.6 -> 10.7 ms on
    2 cores, whatever the block length), their thread pools competing.
    """
    from contextlib import ExitStack

    timed = latency_runs > 0 and len(data) > 0
    with ExitStack() as stack:
        engine = stack.enter_context(open_engine(path, threads))
        t0 = time.perf_counter()
        probs = predict(engine, data.images, contract, progress, desc)
        fig: dict = model_figures(probs, data, confidence)
        fig["predict_seconds"] = round(time.perf_counter() - t0, 3)
        fig["threads"] = engine.threads
        if timed:
            together = reference is not None and engine.name != "onnxruntime"
            ref = stack.enter_context(open_engine(reference, threads)) if together else None
            wall, cpu = _timed([engine] if ref is None else [engine, ref], data.images[0], contract,
                               latency_runs, 5)
    if timed:
        fig.update(_p50s(wall[0], cpu[0], confidence), runs=len(wall[0]))
    if timed and reference is not None:
        if len(wall) == 1:  # onnxruntime: the reference session alone, right after
            with open_engine(reference, threads) as ref:
                ref_wall, ref_cpu = _timed([ref], data.images[0], contract, latency_runs, 5)
            wall, cpu = [wall[0], ref_wall[0]], [cpu[0], ref_cpu[0]]
        fig.update(_p50s(wall[1], cpu[1], confidence, prefix="ref_"))
        fig.update(_slowdown(wall[0], wall[1], cpu[0], cpu[1], confidence, alternating=together))
    return fig
