"""Is `edgeport bench`'s latency honest? Compare it with a plain loop of engine.invoke().

    python benchmarks/bench_honest_latency.py EXPORT_DIR/model_int8.tflite [--engine litert] [--threads 1]
        [--image some.jpg] [--blocks 60] [--block 10]

Prints, for one model, engine, thread count and input:
  plain loop      total time of N back-to-back engine.invoke(x) calls / N (this process)
  bench loop      edgeport.benchmarks.worker.measure_latency (this process), mean and p50
  bench worker    the same job in a fresh worker process, as `edgeport bench` runs it
and exits 1 when the bench loop is more than --tolerance (10 %) away from the
plain loop. The two loops run in alternating blocks of --block calls and the
medians of the per-block means are compared, so load from other processes
hits both alike and a stray preemption cannot decide the result.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def interleaved_blocks(invoke, x: np.ndarray, blocks: int, block: int, warmup: int) -> tuple[list[float], list[float]]:
    """Per-call ms of alternating blocks: a plain loop of ``block`` invokes, then the bench's timed loop.

    Alternating small blocks exposes both to the same background load; the
    medians over blocks are then compared.
    """
    from edgeport.benchmarks.worker import measure_latency

    for _ in range(warmup):
        invoke(x)
    plain, timed = [], []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(block):
            invoke(x)
        plain.append((time.perf_counter() - t0) * 1000.0 / block)
        timed.append(float(np.mean(measure_latency(invoke, [x], 0, block))))
    return plain, timed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a .tflite or .onnx artifact exported by edgeport")
    ap.add_argument("--engine", help="engine name (default: the best installed for the file)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--image", help="an image file (default: a drawn synthetic image)")
    ap.add_argument("--blocks", type=int, default=60, help="interleaved blocks of each kind")
    ap.add_argument("--block", type=int, default=10, help="invokes per block")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--tolerance", type=float, default=0.10)
    args = ap.parse_args(argv)

    from edgeport.benchmarks.metrics import latency_stats
    from edgeport.benchmarks.runner import run_worker
    from edgeport.benchmarks.worker import model_info
    from edgeport.imaging import load_resized, resize
    from edgeport.runtime import Classifier, create_engine, engines_for

    engine = args.engine or (engines_for(args.model) or [None])[0]
    if engine is None:
        print(f"no installed engine runs {args.model}", file=sys.stderr)
        return 2
    info = model_info(args.model)
    size = (info.input.height, info.input.width)
    if args.image:
        img = load_resized(args.image, size, info.input.resize)
    else:
        from edgeport.synthetic import draw

        img = resize(draw("star", 96, np.random.default_rng(0)), size, info.input.resize)

    with Classifier(create_engine(engine, args.model, threads=args.threads), info) as clf:
        x = clf.prepare(img)
        plain, timed = interleaved_blocks(clf.engine.invoke, x, args.blocks, args.block, args.warmup)

    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "img.npy"
        np.save(npy, img[None])
        res = run_worker({"kind": "latency", "model": str(Path(args.model).resolve()), "engine": engine,
                          "threads": args.threads, "images": str(npy), "warmup": args.warmup,
                          "runs": args.blocks * args.block}, Path(tmp), timeout=1800)
    if not res.get("ok"):
        print(f"worker failed: {res.get('reason')}", file=sys.stderr)
        return 2
    worker = latency_stats(res["times_ms"])

    p_med, t_med = float(np.median(plain)), float(np.median(timed))
    ratio = t_med / p_med
    print(f"model {args.model}  engine {engine}  threads {args.threads}  input {x.dtype}{list(x.shape)}  "
          f"{args.blocks} interleaved blocks of {args.block} calls")
    print(f"  plain loop   (this process)  median block mean {p_med:9.4f} ms   overall mean {np.mean(plain):.4f} ms")
    print(f"  bench loop   (this process)  median block mean {t_med:9.4f} ms   overall mean {np.mean(timed):.4f} ms")
    print(f"  bench worker (fresh process) p50 {worker['p50']:9.4f} ms   mean {worker['mean']:.4f} ms   "
          f"peak RSS {res.get('peak_rss_mb') or 0:.0f} MB   ({len(res['times_ms'])} runs)")
    print(f"  bench loop / plain loop = {ratio:.3f};  worker p50 / plain = {worker['p50'] / p_med:.3f}")
    honest = abs(ratio - 1.0) <= args.tolerance
    print(f"OK: within {args.tolerance:.0%}" if honest else f"NOT OK: differs by more than {args.tolerance:.0%}")
    return 0 if honest else 1


if __name__ == "__main__":
    sys.exit(main())
