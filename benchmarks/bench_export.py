"""Time `edgeport export` on ResNet50V2: conversion (calibration included) and verification per scheme.

    python benchmarks/bench_export.py                     # untrained ResNet50V2 + head, 224 px, flowers
    python benchmarks/bench_export.py --run-dir runs/x    # an existing build run instead

Without --run-dir it writes a run directory (model.keras, labels.txt,
config.yaml, data_split.csv) with an untrained ResNet50V2 (weights=None) and
a GAP + softmax head, on ../shared/data/flowers when present (else a
synthetic set), then exports every scheme with 200 calibration images.
Goal: all schemes' conversion <= 3 minutes in total on 2 CPU cores.
Prints one table; --json writes the figures too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
FLOWERS = Path(os.environ.get("EDGEPORT_FLOWERS", ROOT.parent / "shared" / "data" / "flowers"))
GOAL_SECONDS = 180.0


def make_resnet_run(root: Path, image_size: int, data: Path | None) -> Path:
    """A run directory with an untrained ResNet50V2 + GAP/softmax head (no downloads)."""
    import keras
    import yaml

    from edgeport.data import scan, write_split_csv
    from edgeport.synthetic import make_dataset

    root.mkdir(parents=True, exist_ok=True)
    if data is None or not Path(data).exists():
        data = make_dataset(root / "data", per_class=60, size=256, seed=0)
    ds = scan(data, val_fraction=0.2, seed=0)
    run = root / "run"
    run.mkdir(exist_ok=True)
    write_split_csv(ds, run / "data_split.csv")
    (run / "labels.txt").write_text("\n".join(ds.classes) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"image_size": image_size, "backbone": "resnet50v2", "weights": "none", "resize": "area",
         "note": "untrained ResNet50V2 made by benchmarks/bench_export.py"}))
    keras.utils.set_random_seed(0)
    inp = keras.Input((image_size, image_size, 3), dtype="float32", name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    base = keras.applications.ResNet50V2(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(ds.classes), activation="softmax")(x)
    keras.Model(inp, out).save(run / "model.keras")
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default=None, help="an existing build run (default: make an untrained ResNet50V2 run)")
    p.add_argument("--work", default="/tmp/edgeport-bench-export", help="scratch folder")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--data", default=str(FLOWERS), help="images for the made run (default: flowers)")
    p.add_argument("--schemes", default="all")
    p.add_argument("--calibration-samples", type=int, default=200)
    p.add_argument("--verify-samples", type=int, default=200)
    p.add_argument("--verify-seconds", type=float, default=60.0)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    import platform

    from edgeport.export import ExportConfig, export

    work = Path(args.work)
    t0 = time.perf_counter()
    run = Path(args.run_dir) if args.run_dir else make_resnet_run(work, args.image_size, Path(args.data))
    make_s = time.perf_counter() - t0
    cfg = ExportConfig(run_dir=str(run), out=str(work / "export"), schemes=args.schemes,
                       calibration_samples=args.calibration_samples, verify_samples=args.verify_samples,
                       verify_seconds=args.verify_seconds)
    t1 = time.perf_counter()
    res = export(cfg)
    total_s = time.perf_counter() - t1
    m = res.manifest
    load_s = (m.get("calibration") or {}).get("load_seconds", 0.0)
    conv_total = sum(a.conversion_seconds or 0.0 for a in res.artifacts) + load_s
    cpu_total = sum(a.conversion_cpu_seconds or 0.0 for a in res.artifacts)
    verif_total = sum((a.verification or {}).get("seconds", 0.0) for a in res.artifacts)

    print(f"# bench_export: {m.get('backbone')} at {m['input']['height']} px, {os.cpu_count()} CPU cores, "
          f"{platform.processor() or platform.machine()}")
    print(f"run: {run}  (made in {make_s:.1f} s)" if not args.run_dir else f"run: {run}")
    print(f"calibration: {(m.get('calibration') or {}).get('samples')} images, loaded in {load_s:.1f} s; "
          f"verification: {(m.get('verification') or {}).get('samples')} {(m.get('verification') or {}).get('split')} images")
    print(f"{'scheme':<10} {'status':<6} {'MB':>7} {'convert s':>10} {'CPU s':>7} {'verify s':>9} {'n':>4} "
          f"{'ms/img':>8} {'agree %':>8} {'Δtop-1':>7}")
    for a in res.artifacts:
        v = a.verification or {}
        print(f"{a.scheme:<10} {a.status:<6} {(a.bytes or 0) / 1e6:>7.1f} {a.conversion_seconds or 0:>10.1f} "
              f"{a.conversion_cpu_seconds or 0:>7.1f} {v.get('seconds', 0):>9.1f} {v.get('images', 0):>4} "
              f"{v.get('ms_per_image', 0):>8.1f} {v.get('agreement_pct', float('nan')):>8.2f} "
              f"{v.get('delta_top1_pts', float('nan')):>+7.2f}")
        if a.reason:
            print(f"  {a.scheme} failed: {a.reason}")
    print(f"shared steps inside the first scheme that needs them: {m.get('shared_seconds')}")
    print(f"total conversion (calibration image loading + all schemes): {conv_total:.1f} s "
          f"(goal <= {GOAL_SECONDS:.0f} s: {'met' if conv_total <= GOAL_SECONDS else 'NOT met'})")
    print(f"conversion CPU time (all threads, independent of other load): {cpu_total:.1f} s, "
          f"i.e. >= {cpu_total / (os.cpu_count() or 1):.1f} s of wall time on {os.cpu_count()} idle cores; "
          f"load average during the run: {os.getloadavg()[0]:.1f}")
    print(f"total verification: {verif_total:.1f} s; whole export call: {total_s:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"conversion_total_s": conv_total, "conversion_cpu_s": cpu_total,
                                               "verification_total_s": verif_total,
                                               "export_total_s": total_s, "manifest": m}, indent=2))
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
