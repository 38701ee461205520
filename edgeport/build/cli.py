"""``edgeport build``: argparse only at import (TensorFlow loads in the handler)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from edgeport.build.config import CHOICES, BuildConfig

_HELP = {
    "data": "image folder (class folders or train/val split folders), a CSV (path,label[,split]) or tfds:NAME",
    "out": "run directory to write",
    "backbone": "resnet50v2 (default), mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0, tiny",
    "weights": "imagenet (Keras download/cache), none, or the PATH of a local weights file",
    "head": "conv, conv-pool, conv-bn-dropout (default), gap",
    "image_size": "square input size in pixels",
    "resize": "how images are resized to --image-size (recorded in the export, so devices do the same)",
    "epochs": "phase 1 epochs (backbone frozen)",
    "fine_tune_epochs": "phase 2 epochs (top --unfreeze stages trained; 0 skips)",
    "unfreeze": "backbone stages to fine-tune, counted from the top",
    "fine_tune_lr": "phase 2 learning rate (default --lr / 10)",
    "class_weights": "'balanced' weights classes by inverse frequency",
    "val_fraction": "validation share when the data has no split",
    "num_filters": "filters of the head's first conv",
    "dense_units": "units of the conv-bn-dropout head's dense layer",
    "dropout": "head dropout rate",
    "cache_features": "train phase 1 on backbone features computed once (auto = on)",
    "cache_memory_mb": "RAM budget of the image/feature caches; larger caches go to disk",
    "mixed_precision": "float16 compute (auto: on for GPUs that support it)",
    "jit": "XLA-compile the training step",
    "devices": "split the CPU into N logical devices (exercises the multi-device path)",
    "resume": "continue an interrupted run in --out from its last completed epoch",
    "progress": "auto (bar on a terminal, a line per epoch otherwise), bar, line, off",
}


def _add_field(p: argparse.ArgumentParser, f: dataclasses.Field) -> None:
    flag = "--" + f.name.replace("_", "-")
    help_ = _HELP.get(f.name, "")
    default = f.default
    if f.name in CHOICES:
        p.add_argument(flag, choices=CHOICES[f.name], default=None, help=f"{help_} (default {default})")
    elif isinstance(default, bool):
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                       help=f"{help_} (default {'on' if default else 'off'})")
    else:
        kind: Any = str
        if isinstance(default, bool):
            kind = str
        elif isinstance(default, int) or f.name in ("num_filters", "dense_units"):
            kind = int
        elif isinstance(default, float) or f.name in ("fine_tune_lr", "dropout"):
            kind = float
        p.add_argument(flag, type=kind, default=None, metavar=f.name.upper(),
                       help=f"{help_} (default {default})" if default not in ("", None) else help_)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "build", help="train a classifier into a run directory",
        description="Train backbone + head in two phases (frozen backbone on cached features, then "
                    "fine-tuning) and write model.keras, labels.txt, metrics.json, plots and checkpoints.",
    )
    p.add_argument("--config", metavar="FILE", help="YAML/JSON file with any of these options (flags override it)")
    for f in dataclasses.fields(BuildConfig):
        _add_field(p, f)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeport.build import train
    from edgeport.config import load_config

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(BuildConfig)}
    cfg = load_config(BuildConfig, args.config, overrides)
    result = train(cfg)
    m = result.metrics
    print(f"run: {result.run_dir}")
    top5 = f", top-5 {m['val_top5_pct']:.2f} %" if m.get("val_top5_pct") is not None else ""
    print(f"val top-1 {m['val_top1_pct']:.2f} %{top5} (n={m['val']['images']}; "
          f"{m['data']['num_skipped']} images skipped)")
    return 0
