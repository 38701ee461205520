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
            desc: str = "predict") -> np.ndarray:
    """(N,H,W,3) uint8 RGB -> (N,classes) float32 probabilities, one image per invoke."""
    out = [to_probabilities(engine.invoke(to_input_tensor(img, contract, engine.input)), engine.output)
           for img in track(images, desc, enabled=progress)]
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
) -> dict:
    """Run ``images`` through ``engine`` as the runtime would and compare with the Keras ``reference``
    probabilities (:func:`edgeport.metrics.compare`: agreement, Δtop-1, max |Δp|, ...)."""
    t0 = time.perf_counter()
    probs = predict(engine, images, contract, progress, desc)
    seconds = time.perf_counter() - t0
    figures = compare(probs, reference, labels, classes)
    figures.update(engine=engine.name, engine_version=engine.version(), threads=engine.threads,
                   seconds=round(seconds, 3), ms_per_image=round(1000.0 * seconds / max(len(images), 1), 3))
    return figures


def model_figures(probs: np.ndarray, data: EvalSet) -> dict:
    """:func:`edgeport.metrics.compare` figures against Keras (agreement_pct, decided_agreement_pct,
    delta_top1_pts, ...) plus mean_kl (KL(Keras || artifact), nats: continuous, so it ranks units that
    differ by a single image of agreement)."""
    fig = compare(probs, data.reference, data.labels, data.names)
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


def latency_p50(engine, image: np.ndarray, contract: InputContract, runs: int = 20, warmup: int = 5,
                reference=None) -> dict:
    """Median wall and process-CPU milliseconds of at least ``runs`` invokes of one image (after ``warmup``;
    more, up to :data:`LATENCY_MAX_RUNS`, until :data:`LATENCY_SECONDS` of them).

    With ``reference`` (another open engine) the two run in alternating blocks of :data:`LATENCY_BLOCK`
    invokes and its medians are added (``ref_p50_ms``, ``ref_cpu_p50_ms``): their ratio holds on a machine
    whose load changes between two measurements made apart (20 separate invokes each gave a fallback that
    costs 1.01x full int8 1.41x on ResNet50V2). The first invoke of each block is not counted: it runs
    on caches the other model filled. (onnxruntime sessions are not timed this way: :func:`evaluate`.)
    """
    from edgeport.runtime.classifier import to_input_tensor

    engines = [engine] if reference is None else [engine, reference]
    xs = [to_input_tensor(image, contract, e.input) for e in engines]
    for _ in range(warmup):
        for e, x in zip(engines, xs):
            e.invoke(x)
    wall: list[list[float]] = [[] for _ in engines]
    cpu: list[list[float]] = [[] for _ in engines]
    runs = max(1, runs)
    spent = 0.0
    while len(wall[0]) < runs or (spent < LATENCY_SECONDS and len(wall[0]) < LATENCY_MAX_RUNS):
        for k, (e, x) in enumerate(zip(engines, xs)):
            if reference is not None:
                e.invoke(x)  # not counted: the first after the other engine's block
            for _ in range(LATENCY_BLOCK - 1 if reference is not None else 1):
                t, c = time.perf_counter(), time.process_time()
                e.invoke(x)
                wall[k].append(time.perf_counter() - t)
                cpu[k].append(time.process_time() - c)
                spent += wall[k][-1]
    ms = [(round(1000.0 * float(np.median(w)), 4), round(1000.0 * float(np.median(c)), 4)) for w, c in zip(wall, cpu)]
    out = {"p50_ms": ms[0][0], "cpu_p50_ms": ms[0][1], "runs": len(wall[0])}
    if reference is not None:
        out["ref_p50_ms"], out["ref_cpu_p50_ms"] = ms[1]
    return out


def evaluate(path: str | Path, data: EvalSet, contract: InputContract, threads: int | None = None,
             latency_runs: int = 20, progress: bool = False, desc: str = "candidate",
             reference: str | Path | None = None) -> dict:
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
        fig: dict = model_figures(probs, data)
        fig["predict_seconds"] = round(time.perf_counter() - t0, 3)
        fig["threads"] = engine.threads
        if timed:
            together = reference is not None and engine.name != "onnxruntime"
            ref = stack.enter_context(open_engine(reference, threads)) if together else None
            fig.update(latency_p50(engine, data.images[0], contract, latency_runs, reference=ref))
    if timed and reference is not None and "ref_p50_ms" not in fig:
        with open_engine(reference, threads) as ref:
            alone = latency_p50(ref, data.images[0], contract, latency_runs)
        fig["ref_p50_ms"], fig["ref_cpu_p50_ms"] = alone["p50_ms"], alone["cpu_p50_ms"]
    return fig
