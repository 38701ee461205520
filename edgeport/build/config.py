"""BuildConfig (every ``edgeport build`` flag) and RunResult; no TensorFlow here."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from edgeport.contract import DEFAULT_RESIZE, RESIZE_METHODS
from edgeport.errors import ConfigError
from edgeport.progress import PROGRESS_MODES

CHOICES = {
    "resize": RESIZE_METHODS,
    "optimizer": ("adam", "adamw", "sgd", "rmsprop"),
    "cache_features": ("auto", "on", "off"),
    "mixed_precision": ("auto", "on", "off"),
    "class_weights": ("none", "balanced"),
    "progress": PROGRESS_MODES,
}


@dataclass(frozen=True)
class BuildConfig:
    """Everything one training run needs; each field is a ``--kebab-case`` flag and a config key."""

    data: str = ""  #: folder, CSV or tfds:NAME
    out: str = ""  #: run directory to write
    backbone: str = "resnet50v2"
    weights: str = "imagenet"  #: imagenet | none | PATH to a weights file
    head: str = "conv-bn-dropout"
    image_size: int = 224
    resize: str = DEFAULT_RESIZE  #: how images are resized to image_size; devices resize the same way
    epochs: int = 10  #: phase 1: backbone frozen, head trained
    fine_tune_epochs: int = 5  #: phase 2: top --unfreeze stages trained too (0 skips)
    unfreeze: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    fine_tune_lr: float | None = None  #: default lr / 10
    optimizer: str = "adam"
    label_smoothing: float = 0.0
    augment: bool = True
    class_weights: str = "none"  #: none | balanced
    val_fraction: float = 0.2
    seed: int = 0
    num_filters: int | None = None  #: first conv of the head (default per head)
    dense_units: int | None = None  #: dense layer of conv-bn-dropout (default 256)
    dropout: float | None = None  #: head dropout (default per head)
    cache_features: str = "auto"  #: auto | on | off
    cache_memory_mb: int = 2048  #: feature/image caches larger than this go to disk
    mixed_precision: str = "auto"  #: auto | on | off
    jit: bool = False  #: XLA-compile the train step
    devices: int = 0  #: split the CPU into N logical devices (tests the distributed path)
    num_processes: int = 0  #: data-parallel worker processes on the JAX engine (0: one TensorFlow process)
    process_id: int = 0  #: this worker's index, 0..num_processes-1 (0 writes the run directory)
    coordinator: str = ""  #: HOST:PORT of worker 0's coordination service (several processes)
    worker_timeout: int = 60  #: seconds to wait for workers to arrive or to answer before stopping
    resume: bool = False
    progress: str = "auto"  #: auto | bar | line | off (Keras verbose 1/2/0)

    def validate(self) -> None:
        """Raise ConfigError for an out-of-range or inconsistent value."""
        if not self.data:
            raise ConfigError("expected --data (a folder, a CSV or tfds:NAME), received nothing")
        if not self.out:
            raise ConfigError("expected --out (the run directory to write), received nothing")
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(
                    f"expected --{key.replace('_', '-')} one of {', '.join(allowed)}, "
                    f"received '{getattr(self, key)}'"
                )
        positive = {"image_size": 8, "batch_size": 1, "epochs": 0, "fine_tune_epochs": 0, "unfreeze": 0,
                    "cache_memory_mb": 0, "devices": 0, "num_processes": 0, "process_id": 0, "worker_timeout": 1}
        for key, low in positive.items():
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"expected --{key.replace('_', '-')} an integer >= {low}, received {value!r}")
        if self.epochs + self.fine_tune_epochs == 0:
            raise ConfigError("expected --epochs or --fine-tune-epochs above 0, received 0 for both")
        if not self.lr > 0 or (self.fine_tune_lr is not None and not self.fine_tune_lr > 0):
            raise ConfigError(f"expected positive learning rates, received --lr {self.lr} --fine-tune-lr {self.fine_tune_lr}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"expected --label-smoothing in [0, 1), received {self.label_smoothing}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"expected --dropout in [0, 1), received {self.dropout}")
        self._validate_processes()
        for key in ("num_filters", "dense_units"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"expected --{key.replace('_', '-')} a positive integer, received {value!r}")

    def _validate_processes(self) -> None:
        if not self.num_processes:
            given = [f"--{k.replace('_', '-')} {getattr(self, k)}" for k in ("process_id", "coordinator")
                     if getattr(self, k)]
            if given:
                raise ConfigError(f"expected --num-processes N with {' and '.join(given)}, received none; "
                                  "give every worker --num-processes N --process-id I --coordinator HOST:PORT")
            return
        if self.process_id >= self.num_processes:
            raise ConfigError(f"expected --process-id between 0 and {self.num_processes - 1} (--num-processes "
                              f"{self.num_processes}), received {self.process_id}")
        if self.devices > 1:
            raise ConfigError(f"expected either --devices or --num-processes, received --devices {self.devices} "
                              f"--num-processes {self.num_processes}; the processes' devices are the real ones")
        if self.batch_size % self.num_processes:
            raise ConfigError(f"expected --batch-size (the global batch) a multiple of --num-processes "
                              f"{self.num_processes}, received {self.batch_size}")
        if self.num_processes > 1:
            host, _, port = self.coordinator.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"expected --coordinator HOST:PORT (worker 0's address and a free port, the same "
                                  f"on every worker; or JAX_COORDINATOR_ADDRESS), received '{self.coordinator}'")

    def resolved(self) -> "BuildConfig":
        """A copy with defaults that depend on other fields filled in.

        Several processes without --coordinator take JAX's own ``JAX_COORDINATOR_ADDRESS`` (as
        ``jax.distributed.initialize`` would).
        """
        ft = self.fine_tune_lr if self.fine_tune_lr is not None else self.lr / 10.0
        coordinator = self.coordinator
        if isinstance(self.num_processes, int) and self.num_processes > 1 and not coordinator:
            coordinator = os.environ.get("JAX_COORDINATOR_ADDRESS", "").strip()
        return dataclasses.replace(self, fine_tune_lr=ft, coordinator=coordinator)


@dataclass(frozen=True)
class RunResult:
    """What :func:`edgeport.build.train` returns."""

    run_dir: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  #: one dict per epoch (history.csv rows)
    config: BuildConfig | None = None
