"""Measure one variant in a fresh process: ``python -m edgeport.benchmarks.worker JOB.json``.

The benchmark runs every artifact x engine x threads variant in its own
process so model memory, thread pools and caches never bleed from one
variant into the next, and peak RSS belongs to that variant alone. The job
is a JSON file; the result is one JSON object on stdout (anything an engine
prints is redirected to stderr).

Jobs (``kind``):

* ``latency``: open the model, time the first inference, ``warmup`` untimed
  runs, then time ``engine.invoke`` ``runs`` times (or until ``max_seconds``)
  on real preprocessed images, cycling through them;
* ``accuracy``: top-k class indices for every image (or for as many as
  ``max_seconds`` allows, in order).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Callable, Sequence

import numpy as np

#: stderr lines starting with this report progress ("edgeport-progress 120/736") to the parent.
PROGRESS_PREFIX = "edgeport-progress "
#: environment: the pid of the ``edgeport bench`` that started this worker, and its scratch folder
PARENT_ENV, SCRATCH_ENV = "EDGEPORT_BENCH_PARENT", "EDGEPORT_BENCH_SCRATCH"


def _orphaned(parent: int) -> None:
    """The benchmark that started this worker is gone: remove its scratch folder and stop now."""
    import shutil
    from pathlib import Path

    scratch = os.environ.get(SCRATCH_ENV, "")
    if scratch and Path(scratch).name.startswith("edgeport-bench-"):
        shutil.rmtree(scratch, ignore_errors=True)
    os._exit(128 + signal.SIGTERM)


def watch_parent() -> None:
    """Stop with the parent benchmark, even when it is SIGKILLed (Linux: PR_SET_PDEATHSIG).

    The kernel sends this process SIGTERM when its parent dies; the handler
    (or the check right after, when the parent died before it was set) removes
    the parent's scratch folder and exits.
    """
    text = os.environ.get(PARENT_ENV, "")
    if not text.isdigit() or not sys.platform.startswith("linux"):
        return
    parent = int(text)

    def on_term(signum: int, _frame: object) -> None:
        # the death signal can come while the parent's last threads are still exiting (getppid()
        # unchanged): give the kernel a moment to hand this process to its new parent
        deadline = time.monotonic() + 2.0
        while os.getppid() == parent and time.monotonic() < deadline:
            time.sleep(0.02)
        if os.getppid() != parent:
            _orphaned(parent)
        os._exit(128 + signum)  # stopped by someone else: the parent records a failed variant

    signal.signal(signal.SIGTERM, on_term)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the death signal was armed
        _orphaned(parent)


def _proc_status_mb(key: str) -> float | None:
    """A kB field of /proc/self/status (e.g. VmHWM, VmRSS) in MiB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MiB (VmHWM, else ru_maxrss)."""
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def current_rss_mb() -> float | None:
    """Resident memory of this process now in MiB (Linux), else None."""
    return _proc_status_mb("VmRSS")


def measure_latency(invoke: Callable[[np.ndarray], object], inputs: Sequence[np.ndarray], warmup: int,
                    runs: int, max_seconds: float = float("inf")) -> list[float]:
    """Milliseconds of each of up to ``runs`` timed ``invoke`` calls after ``warmup`` untimed ones.

    Inputs are cycled. Only the call itself is inside the timer; the loop
    stops early once ``max_seconds`` of timed runs have passed (at least one
    run is always timed).
    """
    n = len(inputs)
    for i in range(warmup):
        invoke(inputs[i % n])
    times: list[float] = []
    clock = time.perf_counter
    spent = 0.0
    for i in range(runs):
        x = inputs[i % n]
        t0 = clock()
        invoke(x)
        dt = clock() - t0
        times.append(dt * 1000.0)
        spent += dt
        if spent >= max_seconds:
            break
    return times


def run_job(job: dict) -> dict:
    """Run one job in this process and return the JSON-ready result."""
    from edgeport.runtime import Classifier, create_engine
    from edgeport.runtime.classifier import load_model_info

    baseline = current_rss_mb()
    images = np.load(job["images"], mmap_mode="r")
    indices = job.get("indices")
    if indices is not None:
        images = images[np.asarray(indices, dtype=np.int64)]
    info = load_model_info(job["model"], verify_hash=False)  # the parent verified the hash before
    t0 = time.perf_counter()
    eng = create_engine(job["engine"], job["model"], threads=job.get("threads"))
    load_s = time.perf_counter() - t0  # the engine loading the model, nothing else
    try:
        clf = Classifier(eng, info)
    except Exception:
        eng.close()
        raise
    with clf:
        engine = clf.engine
        result: dict = {
            "pid": os.getpid(),
            "engine_version": _safe_version(engine),
            "providers": list(getattr(engine, "providers", None) or []) or None,  # onnxruntime: CPU/CUDA/TensorRT
            "input": engine.input.to_dict(),
            "output": engine.output.to_dict(),
            "load_s": load_s,
            "baseline_rss_mb": baseline,
        }
        if job["kind"] == "latency":
            inputs = [clf.prepare(np.asarray(img)) for img in images]
            t1 = time.perf_counter()
            engine.invoke(inputs[0])
            result["first_inference_ms"] = (time.perf_counter() - t1) * 1000.0
            result["times_ms"] = measure_latency(engine.invoke, inputs, int(job.get("warmup", 10)),
                                                 int(job.get("runs", 100)), float(job.get("max_seconds", 1e9)))
        elif job["kind"] == "accuracy":
            k = int(job.get("top_k", 5))
            topk, topk_probs = [], []
            budget = float(job.get("max_seconds") or float("inf"))
            t1 = last = time.perf_counter()
            for i, img in enumerate(images):
                if i and time.perf_counter() - t1 > budget:  # seeded random order: a prefix is a random subset
                    break
                probs = np.asarray(clf.predict(clf.prepare(np.asarray(img))), dtype=np.float32).reshape(-1)
                best = np.argsort(-probs, kind="stable")[:k]
                topk.append(best.tolist())
                topk_probs.append([round(float(v), 6) for v in probs[best]])
                if time.perf_counter() - last > 1.0:  # the parent shows it in its progress bar
                    last = time.perf_counter()
                    sys.stderr.write(f"{PROGRESS_PREFIX}{i + 1}/{len(images)}\n")
                    sys.stderr.flush()
            result["seconds"] = time.perf_counter() - t1
            result["topk"] = topk
            result["topk_probs"] = topk_probs  # the fp32 reference's margins: decided agreement
            result["images_total"] = len(images)
        else:
            raise ValueError(f"unknown job kind {job['kind']!r}")
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _safe_version(engine: object) -> str | None:
    try:
        return str(type(engine).version())
    except Exception:  # noqa: BLE001 - a version is nice to have, never fatal
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    watch_parent()
    # Engines may print to stdout; keep the real stdout for the one JSON result.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        with open(argv[0]) as f:
            job = json.load(f)
        result = {"ok": True, **run_job(job)}
        code = 0
    except Exception as exc:  # noqa: BLE001 - every failure becomes a "failed" row in the parent
        from edgeport.errors import EdgeportError

        result = {"ok": False, "pid": os.getpid(), "error_type": type(exc).__name__,
                  "reason": str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                  "user_error": isinstance(exc, EdgeportError)}
        code = 1
    out.write(json.dumps(result) + "\n")
    out.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
