"""``edgeport build``: argparse only at import (TensorFlow loads in the handler)."""

from __future__ import annotations

import argparse
from typing import Any

from edgeport.build.config import CHOICES, BuildConfig
from edgeport.flags import Flag, add_config_flags, add_shared

#: Help of every BuildConfig field (also used by ``edgeport pipeline``/``demo`` for the same options).
#: For a shared flag (edgeport.flags.SHARED) this is what it does here, after the shared meaning.
HELP: dict[str, str | Flag] = {
    "data": "the images to train on",
    "out": Flag("the run directory to write", default="none, required"),
    "backbone": "resnet50v2, mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0 or tiny "
                "(- or _ alike)",
    "weights": "imagenet (Keras download/cache), none, or the PATH of a local weights file",
    "head": "conv, conv-pool, conv-bn-dropout or gap",
    "image_size": "square input size in pixels",
    "resize": "how images are resized to --image-size (recorded in the export, so devices do the same)",
    "epochs": "phase 1 epochs (backbone frozen)",
    "fine_tune_epochs": "phase 2 epochs (top --unfreeze stages trained; 0 skips)",
    "unfreeze": "backbone stages to fine-tune, counted from the top",
    "batch_size": "images per training step",
    "lr": "phase 1 learning rate (cosine decay)",
    "fine_tune_lr": Flag("phase 2 learning rate", default="--lr / 10"),
    "optimizer": "optimizer of both phases",
    "label_smoothing": "label smoothing of the cross-entropy loss",
    "augment": "random flip, rotation, zoom and contrast of the training images",
    "class_weights": "'balanced' weights classes by inverse frequency",
    "val_fraction": "validation share when the data has no split",
    "seed": "of the split, initialisation, augmentation and shuffling",
    "num_filters": Flag("filters of the head's first conv", default="per head"),
    "dense_units": Flag("units of the conv-bn-dropout head's dense layer", default="256"),
    "dropout": Flag("head dropout rate", default="per head"),
    "cache_features": "train phase 1 on backbone features computed once (auto: on)",
    "cache_memory_mb": "RAM budget of the image/feature caches in MB; larger caches go to disk",
    "mixed_precision": "float16 compute (auto: on for GPUs that support it)",
    "jit": "XLA-compile the training step (the JAX engine of --num-processes always does)",
    "devices": "split the CPU into N logical devices (exercises the multi-device path)",
    "num_processes": Flag("data-parallel worker processes, on this and other machines, on Keras' JAX engine "
                          "(jax.distributed); start one per process with the same flags and its own --process-id "
                          "(0: one TensorFlow process, as without the flag)", metavar="N"),
    "process_id": Flag("this worker's index from 0 to N-1; worker 0 writes the run directory", metavar="I"),
    "coordinator": Flag("worker 0's HOST:PORT, the same on every worker (worker 0 listens on PORT)",
                        metavar="HOST:PORT", default="$JAX_COORDINATOR_ADDRESS"),
    "worker_timeout": Flag("seconds a worker waits for the others to arrive or to answer before it stops with an "
                           "error", metavar="SECONDS"),
    "resume": "here the run in --out (its checkpoints/); with --num-processes, on every worker",
    "progress": "in training, line is Keras' one line per epoch",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "build", help="train a classifier into a run directory",
        description="Train backbone + head in two phases (frozen backbone on cached features, then "
                    "fine-tuning) and write model.keras, labels.txt, metrics.json, plots and checkpoints.",
    )
    add_shared(p, "config", "any of the options below")
    add_config_flags(p, BuildConfig, HELP, choices=CHOICES)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import dataclasses

    from edgeport.build import train
    from edgeport.config import load_config

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(BuildConfig)}
    if overrides["progress"] is None and getattr(args, "quiet", False):
        overrides["progress"] = "off"
    cfg = load_config(BuildConfig, args.config, overrides)
    result = train(cfg)
    m = result.metrics
    if cfg.num_processes and cfg.process_id:
        print(f"worker {cfg.process_id} of {cfg.num_processes}: done (worker 0 wrote the run to {result.run_dir})")
        return 0
    print(f"run: {result.run_dir}")
    top5 = f", top-5 {m['val_top5_pct']:.2f} %" if m.get("val_top5_pct") is not None else ""
    ci = m.get("val_top1_pct_ci")
    interval = f" [{ci[0]:.1f}, {ci[1]:.1f}] (95 % interval)" if ci else ""
    print(f"val top-1 {m['val_top1_pct']:.2f} %{interval}{top5} (n={m['val']['images']}; "
          f"{m['data']['num_skipped']} images skipped)")
    return 0
