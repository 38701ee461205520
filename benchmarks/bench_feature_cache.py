"""Phase-1 seconds per epoch with and without the feature cache (same data, same model).

    python benchmarks/bench_feature_cache.py                      # ResNet50V2, 96 px, 300+100 flowers
    python benchmarks/bench_feature_cache.py --train 600 --val 150 --epochs 4 --json out.json

Trains phase 1 only (--fine-tune-epochs 0, --weights none, --no-augment so
the two runs do the same work apart from the cache) twice through
``edgeport.build.train``: ``--cache-features on`` (the backbone runs once over
the images, then every epoch trains only the head on stored features) and
``--cache-features off`` (every epoch runs the frozen backbone again). The
figures come from each run's history.csv (``seconds`` per epoch; the cached
run's first epoch includes computing the cache).
Goal: epochs after the first >= 10x faster with the cache.
Uses a seeded stratified subset of ../shared/data/flowers (else a synthetic set).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
FLOWERS = Path(os.environ.get("EDGEPORT_FLOWERS", ROOT.parent / "shared" / "data" / "flowers"))
GOAL_RATIO = 10.0


def subset_csv(root: Path, n_train: int, n_val: int, seed: int) -> Path:
    """A split.csv with absolute paths: n_train/n_val images drawn per the flowers split, stratified."""
    import numpy as np

    if not (FLOWERS / "split.csv").is_file():
        from edgeport.synthetic import make_dataset

        data = make_dataset(root / "synthetic", per_class=(n_train + n_val) // 5 + 1, size=128, seed=seed)
        rows = [(str(p), p.parent.name) for p in sorted(data.rglob("*.jpg"))]
        rng = np.random.default_rng(seed)
        rng.shuffle(rows)
        picked = [(p, lab, "val" if i < n_val else "train") for i, (p, lab) in enumerate(rows[: n_train + n_val])]
    else:
        with open(FLOWERS / "split.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        rng = np.random.default_rng(seed)
        picked = []
        for split, n in (("train", n_train), ("val", n_val)):
            pool = [r for r in rows if r["split"] == split]
            idx = rng.permutation(len(pool))[:n]
            picked += [(str((FLOWERS / pool[i]["path"]).resolve()), pool[i]["label"], split) for i in idx]
    out = root / "split.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows(picked)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet50v2")
    ap.add_argument("--head", default="conv-bn-dropout")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--train", type=int, default=300, help="training images")
    ap.add_argument("--val", type=int, default=100, help="validation images")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--jit", action="store_true", help="XLA-compile the train step in both runs")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    from edgeport.build import BuildConfig, train

    work = Path(tempfile.mkdtemp(prefix="bench-feature-cache-"))
    data = subset_csv(work, args.train, args.val, seed=0)
    results = {}
    for mode in ("on", "off"):
        cfg = BuildConfig(data=str(data), out=str(work / f"cache-{mode}"), backbone=args.backbone, weights="none",
                          head=args.head, image_size=args.image_size, epochs=args.epochs, fine_tune_epochs=0,
                          batch_size=args.batch_size, augment=False, cache_features=mode, jit=args.jit,
                          seed=0, progress="off")
        t0 = time.perf_counter()
        res = train(cfg)
        secs = [float(r["seconds"]) for r in res.history if r["phase"] == 1]
        results[mode] = {
            "epoch_seconds": secs,
            "first_epoch_seconds": secs[0],
            "later_epoch_seconds_mean": statistics.mean(secs[1:]) if len(secs) > 1 else float("nan"),
            "feature_cache_seconds": res.metrics["timing"].get("feature_cache_seconds"),
            "val_top1_pct": res.metrics["val_top1_pct"],
            "run_seconds": round(time.perf_counter() - t0, 1),
        }
    on, off = results["on"], results["off"]
    ratio_later = off["later_epoch_seconds_mean"] / on["later_epoch_seconds_mean"]
    ratio_total = sum(off["epoch_seconds"]) / sum(on["epoch_seconds"])
    print(f"feature cache benchmark: {args.backbone} + {args.head} at {args.image_size} px, "
          f"{args.train} train + {args.val} val images ({'flowers' if (FLOWERS / 'split.csv').is_file() else 'synthetic'}), "
          f"batch {args.batch_size}, {args.epochs} phase-1 epochs, {os.cpu_count()} CPU cores")
    print(f"{'':24}{'cache on':>12}{'cache off':>12}")
    for i in range(args.epochs):
        print(f"{'epoch ' + str(i + 1) + ' seconds':24}{on['epoch_seconds'][i]:>12.2f}{off['epoch_seconds'][i]:>12.2f}")
    print(f"{'later epochs, mean s':24}{on['later_epoch_seconds_mean']:>12.2f}{off['later_epoch_seconds_mean']:>12.2f}")
    print(f"{'(cache computed in s)':24}{on['feature_cache_seconds']:>12.2f}{'-':>12}")
    print(f"{'val top-1 %':24}{on['val_top1_pct']:>12.2f}{off['val_top1_pct']:>12.2f}")
    print(f"speed-up per epoch after the first: {ratio_later:.1f}x (goal >= {GOAL_RATIO:.0f}x: "
          f"{'met' if ratio_later >= GOAL_RATIO else 'NOT met'}); all {args.epochs} epochs incl. caching: {ratio_total:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                         "ratio_later_epochs": ratio_later, "ratio_all_epochs": ratio_total}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
