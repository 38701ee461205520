"""edgeport.build: train a Keras image classifier into a run directory.

    from edgeport.build import BuildConfig, train
    result = train(BuildConfig(data="photos/", out="runs/r1", backbone="resnet50v2"))
    result.run_dir, result.metrics["val_top1_pct"]

Importing this package does not import TensorFlow; :func:`train` does.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from edgeport.build.config import BuildConfig, RunResult

__all__ = ["BuildConfig", "RunResult", "train"]


def train(config: BuildConfig | str | None = None, callbacks: Sequence[Any] = (), **options: Any) -> RunResult:
    """Train as ``config`` says and write the run directory (see edgeport.build.trainer).

    ``train(BuildConfig(data="photos/", out="runs/r1"))``, or the same fields as keyword
    arguments: ``train(data="photos/", out="runs/r1", backbone="mobilenet_v2")``.
    ``callbacks`` are extra Keras callbacks added to both training phases
    (after edgeport's own checkpointing callback; not with ``num_processes``).
    With ``num_processes`` this process is one worker of a data-parallel build on Keras' JAX
    engine (edgeport.build.distributed); worker 0 writes the run directory.
    """
    from edgeport.config import make_config

    config = make_config(BuildConfig, config, "data", options)
    cfg = config.resolved()
    cfg.validate()
    # everything that can be checked without TensorFlow first: bad input fails in a moment
    # (nothing is written to --out before all of them pass)
    from edgeport.build.backbones import check_backbone
    from edgeport.build.heads import HEADS
    from edgeport.build.inputs import load_source
    from edgeport.build.rundir import STATE_FILE, check_out_dir, nothing_to_resume

    check_backbone(cfg.backbone, cfg.image_size, cfg.weights)
    HEADS.get(cfg.head)
    if cfg.num_processes:  # a worker on Keras' JAX engine, in a process of its own (edgeport.build.distributed)
        if callbacks:
            from edgeport.errors import ConfigError

            raise ConfigError(f"expected no callbacks with --num-processes (the worker trains in its own process), "
                              f"received {len(callbacks)}")
        if cfg.process_id == 0:
            check_out_dir(cfg)
        from edgeport.build.distributed import launch

        return launch(cfg)
    check_out_dir(cfg)
    src = load_source(cfg)
    if nothing_to_resume(cfg):  # allowed (a restart loop can always pass --resume), but said plainly
        logging.getLogger("edgeport.build").warning(
            "--resume: nothing to resume in %s (no checkpoints/%s); starting a new run from epoch 1",
            cfg.out, STATE_FILE)
    from edgeport.build.trainer import run

    return run(cfg, callbacks, src)
