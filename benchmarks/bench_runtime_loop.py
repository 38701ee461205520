"""Does the camera loop keep up with the model? Achieved FPS vs 1/(median invoke time).

Runs the real `edgeport run` loop (video file source with its prefetching reader,
Classifier preprocessing, engine invoke, postprocessing) on a video, once per
scheme, and prints from the same run: achieved FPS, 1000/median(invoke ms), their
ratio (goal >= 0.95) and preprocessing as a share of invoke (goal <= 5 %).
Also: r(mean) = achieved FPS x mean(invoke), i.e. the loop's own overhead without
invoke jitter (on a shared, busy CPU the median and mean invoke differ), and the
per-frame overhead in ms (wall time per frame minus mean invoke), and top-1 of the
per-frame labels against the photos' true labels (meaningful for a trained export).

    python benchmarks/bench_runtime_loop.py EXPORT_DIR [--video V] [--frames 90] [--threads 2]
    python benchmarks/bench_runtime_loop.py            # builds an untrained ResNet50V2 export
                                                       # (needs TensorFlow) in --work

Without --video, a 640x480 video is made from the flowers validation photos
(../shared/data/flowers) or, when absent, from synthetic shapes.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FLOWERS = ROOT.parent / "shared" / "data" / "flowers"


def make_video(out: Path, frames: int, size=(640, 480), fps: float = 30.0,
               frames_per_image: int = 3) -> tuple[Path, list[str]]:
    """An mp4 of flowers val photos (or synthetic shapes), each held for a few frames;
    returns the path and the true label of every frame."""
    from edgeport.imaging import load_rgb

    w, h = size
    images: list[np.ndarray] = []
    labels: list[str] = []
    split = FLOWERS / "split.csv"
    need = -(-frames // frames_per_image)
    if split.is_file():
        with open(split) as f:
            rows = [r for r in csv.DictReader(f) if r["split"] == "val"]
        rng = np.random.default_rng(0)
        for i in rng.permutation(len(rows))[:need]:
            path = Path(rows[i]["path"])
            images.append(load_rgb(path if path.is_absolute() else FLOWERS / path))
            labels.append(rows[i]["label"])
    else:
        from edgeport.synthetic import CLASSES, draw

        rng = np.random.default_rng(0)
        images = [draw(CLASSES[i % len(CLASSES)], 256, rng) for i in range(need)]
        labels = [CLASSES[i % len(CLASSES)] for i in range(need)]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    truth: list[str] = []
    for img, label in zip(images, labels):
        frame = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)[:, :, ::-1]
        for _ in range(frames_per_image):
            if len(truth) < frames:
                writer.write(np.ascontiguousarray(frame))
                truth.append(label)
    writer.release()
    return out, truth


def build_untrained_export(work: Path, size: int) -> Path:
    """A ResNet50V2 export (fp32 + int8) from a 1-epoch run on a few synthetic images (TensorFlow)."""
    export = work / f"resnet50v2-{size}" / "export"
    if (export / "manifest.json").is_file():
        return export
    from edgeport.build import BuildConfig, train
    from edgeport.export import ExportConfig
    from edgeport.export import export as run_export
    from edgeport.synthetic import make_dataset

    data = make_dataset(work / "data", per_class=8, size=size, seed=0)
    run = train(BuildConfig(data=str(data), out=str(export.parent / "run"), backbone="resnet50v2",
                            weights="none", image_size=size, epochs=1, fine_tune_epochs=0,
                            batch_size=8, seed=0, progress="off")).run_dir
    run_export(ExportConfig(run_dir=str(run), out=str(export), schemes=("fp32", "int8"),
                            calibration_samples=16, verify_samples=8, progress=False))
    return export


def bench(export: Path, video: Path, scheme: str, threads: int | None, frames: int, engine: str | None,
          truth: list[str] | None = None, pipeline: bool = False) -> dict:
    from edgeport.runtime.classifier import Classifier
    from edgeport.runtime.loop import run_loop
    from edgeport.runtime.sources import open_source

    with Classifier.open(export, scheme=scheme, threads=threads, engine=engine) as clf:
        for _ in range(3):  # warm-up: first invokes allocate/pack weights
            clf.engine.invoke(np.zeros(clf.engine.input.shape, clf.engine.input.dtype))
        top1: dict[int, str] = {}
        with open_source(str(video)) as src:
            s = run_loop(clf, src, max_frames=frames, pipeline=pipeline,
                         on_result=lambda f, r: top1.__setitem__(r.index, r.top[0][0]))
        st = s["stages_ms"]
        acc = (float(np.mean([top1[i] == truth[i] for i in top1 if i < len(truth)]))
               if truth and set(truth) <= set(clf.labels) else float("nan"))
        return {
            "scheme": clf.info.scheme + ("/pipe" if pipeline else ""), "engine": clf.engine.name, "file": clf.engine.model_path.name,
            "input": f"{clf.engine.input.dtype}{list(clf.engine.input.shape)}", "frames": s["frames"],
            "fps": s["fps"], "invoke_p50_ms": st["invoke"]["p50"], "invoke_p95_ms": st["invoke"]["p95"],
            "invoke_fps": s["invoke_fps"], "fps_ratio": s["fps_ratio"],
            "invoke_mean_ms": st["invoke"]["mean"],
            # loop overhead alone: achieved FPS vs 1/mean(invoke) (insensitive to invoke jitter)
            "fps_ratio_vs_mean": s["fps"] * st["invoke"]["mean"] / 1000.0,
            "overhead_ms_per_frame": 1000.0 * s["wall_s"] / max(1, s["frames"]) - st["invoke"]["mean"],
            "preprocess_p50_ms": st["preprocess"]["p50"], "postprocess_p50_ms": st["postprocess"]["p50"],
            "capture_age_p50_ms": st["capture_age"]["p50"], "preprocess_share": s["preprocess_share"],
            "top1_vs_truth": acc,
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export", nargs="?", help="export directory (default: build an untrained ResNet50V2 one)")
    p.add_argument("--video", help="video file (default: made from flowers val photos)")
    p.add_argument("--frames", type=int, default=90, help="frames per scheme (default 90)")
    p.add_argument("--schemes", default="int8,fp32")
    p.add_argument("--engine", help="engine (default: best installed)")
    p.add_argument("--threads", type=int, default=None, help="engine threads (default: engine's own)")
    p.add_argument("--size", type=int, default=224, help="image size of the built ResNet50V2 (96 or 224)")
    p.add_argument("--work", default="/tmp/edgeport-bench-runtime", help="where built artifacts/videos go")
    p.add_argument("--json", help="write the rows as JSON here")
    p.add_argument("--compare-pipeline", action="store_true",
                   help="also run each scheme with `edgeport run --pipeline` (preprocessing in the reader thread)")
    args = p.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    export = Path(args.export) if args.export else build_untrained_export(work, args.size)
    video, truth = (Path(args.video), None) if args.video else make_video(work / f"loop-{args.frames}.mp4", args.frames)
    print(f"export {export}\nvideo {video} ({args.frames} frames, "
          f"{'flowers val photos' if FLOWERS.is_dir() and not args.video else 'given/synthetic'})", flush=True)
    rows = []
    for scheme in args.schemes.split(","):
        for pipeline in ((False, True) if args.compare_pipeline else (False,)):
            t0 = time.monotonic()
            rows.append(bench(export, video, scheme, args.threads, args.frames, args.engine, truth, pipeline))
            rows[-1]["seconds"] = time.monotonic() - t0
    hdr = (f"{'scheme':<12} {'engine':<14} {'input':<22} {'frames':>6} {'FPS':>7} {'1/inv':>7} {'ratio':>6} "
           f"{'inv p50':>8} {'inv p95':>8} {'pre p50':>8} {'pre/inv':>8} {'post p50':>8} {'age p50':>8} "
           f"{'r(mean)':>7} {'ovh ms':>7} {'top1':>5}")
    print(hdr)
    for r in rows:
        print(f"{r['scheme']:<12} {r['engine']:<14} {r['input']:<22} {r['frames']:>6} {r['fps']:7.2f} "
              f"{r['invoke_fps']:7.2f} {r['fps_ratio']:6.3f} {r['invoke_p50_ms']:8.2f} {r['invoke_p95_ms']:8.2f} "
              f"{r['preprocess_p50_ms']:8.3f} {r['preprocess_share'] * 100:7.2f}% {r['postprocess_p50_ms']:8.3f} "
              f"{r['capture_age_p50_ms']:8.2f} {r['fps_ratio_vs_mean']:7.3f} {r['overhead_ms_per_frame']:7.2f} {r['top1_vs_truth']:5.2f}")
    ok = all(r["fps_ratio"] >= 0.95 and r["preprocess_share"] <= 0.05 for r in rows if "/pipe" not in r["scheme"])
    print(f"goal (ratio >= 0.95, preprocess <= 5 % of invoke): {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
