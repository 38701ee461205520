"""The training run behind :func:`edgeport.build.train` (imports TensorFlow).

Phase 1 trains the head with the backbone frozen, on cached backbone
features by default (computed once; RAM or a disk memmap). Phase 2 unfreezes
the top stages of the backbone (BatchNorm stays in inference mode) and trains
on augmented images at a lower learning rate. After every epoch the weights,
the optimizer state and a small ``state.json`` (phase, epoch, history) are
written under ``checkpoints/`` so ``--resume`` continues even after SIGKILL.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeport import data as epdata
from edgeport._lazy import require
from edgeport.build import inputs
from edgeport.build.backbones import BACKBONES
from edgeport.build.config import BuildConfig, RunResult
from edgeport.build.heads import HEADS
from edgeport.build.model import Models, build_models, freeze_backbone, unfreeze_top
from edgeport.build.precision import DEPLOY_POLICY, as_float32
from edgeport.build.report import plot_confusion, plot_history, write_history_csv
from edgeport.build.rundir import STATE_FILE, check_out_dir, read_state
from edgeport.config import to_dict
from edgeport.errors import ConfigError, ModelError
from edgeport.files import atomic_path, atomic_write_bytes, atomic_write_text, write_json
from edgeport.metrics import accuracy

tf = require("tensorflow", "training (edgeport build)")
keras = require("keras", "training (edgeport build)")

log = logging.getLogger("edgeport.build")



# ----------------------------------------------------------------------------- devices / precision
def setup_devices(cfg: BuildConfig) -> None:
    """Split the CPU into ``cfg.devices`` logical devices (before TF initialises them)."""
    if cfg.devices <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(cfg.devices)])
    except RuntimeError as exc:
        if len(tf.config.list_logical_devices("CPU")) != cfg.devices:
            raise ConfigError(
                f"expected to split the CPU into {cfg.devices} logical devices, but TensorFlow is already "
                f"initialised ({exc}); set --devices in a fresh process (e.g. the edgeport command)"
            ) from exc


def _tf_config() -> dict:
    """TensorFlow's multi-worker layout from the environment ({} when unset)."""
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def choose_strategy(cfg: BuildConfig) -> Any:
    """MultiWorkerMirrored for a multi-machine TF_CONFIG, Mirrored for several GPUs (or --devices N)."""
    cluster = _tf_config().get("cluster", {})
    workers = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
    if workers > 1:
        if not multi_worker_fit_supported():
            raise ConfigError(
                f"TF_CONFIG describes {workers} workers, but Keras {keras.__version__} cannot fit() under "
                "MultiWorkerMirroredStrategy (its pre-build and metric reductions fail: keras-team/keras#20585); "
                "unset TF_CONFIG to train on one machine (several GPUs there use MirroredStrategy), or train across "
                "processes and machines with --num-processes N --process-id I --coordinator HOST:PORT on each "
                "(Keras' JAX engine; docs/gpu-training.md)"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    if cfg.devices > 1:
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    return tf.distribute.get_strategy()


def multi_worker_fit_supported() -> bool:
    """Keras 3 (checked up to 3.15) breaks fit() under MultiWorkerMirroredStrategy; Keras 2 did not."""
    return int(keras.__version__.split(".")[0]) < 3 or os.environ.get("EDGEPORT_TRY_MULTI_WORKER") == "1"


def use_mixed_precision(cfg: BuildConfig) -> bool:
    """'auto': on when a GPU with compute capability >= 7.0 is visible."""
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision == "on"
    for gpu in tf.config.list_physical_devices("GPU"):
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if cc and tuple(cc) >= (7, 0):
            return True
    return False


def _worker_dir(out: Path) -> Path:
    """Non-chief workers of a multi-machine run write into a scratch folder."""
    tf_config = _tf_config()
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    chief = task.get("type") == "chief" or (task.get("type") in (None, "worker") and task.get("index", 0) == 0
                                              and not cluster.get("chief"))
    return out if chief or not task else out / f".worker-{task.get('type')}-{task.get('index')}"


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(ckdir: Path, models: Models, optimizer: Any, phase: int, epoch: int,
                    history: list[dict[str, Any]], engine: Any) -> None:
    """Weights + optimizer for (phase, epoch), then state.json pointing at them (atomic); the chief only."""
    opt_values = engine.values(optimizer.variables)  # on every worker: it may be a collective
    if not engine.chief:
        engine.save_weights(models.plain, None)  # a worker takes part, writes nothing
        return
    tag = f"phase{phase}-epoch{epoch:03d}"
    weights = ckdir / f"{tag}.weights.h5"
    opt = ckdir / f"{tag}.optimizer.npz"
    with atomic_path(weights) as tmp:  # whole files only: written under a temporary name, then renamed
        engine.save_weights(models.plain, tmp)  # the optimizer goes to its own file
    buf = io.BytesIO()
    np.savez(buf, *opt_values)
    atomic_write_bytes(opt, buf.getvalue())
    write_json(ckdir / STATE_FILE, {"phase": phase, "epoch": epoch, "weights": weights.name,
                                    "optimizer": opt.name, "history": history, "done": False})
    for old in ckdir.glob("phase*-epoch*"):
        if old.name not in (weights.name, opt.name):
            old.unlink(missing_ok=True)


def restore_optimizer(trainer: Any, path: Path, engine: Any) -> None:
    opt = trainer.optimizer
    opt.build(trainer.trainable_variables)
    arrays = engine.load_arrays(path)
    if len(arrays) != len(opt.variables):
        log.warning("optimizer state in %s does not match (%d vs %d variables); starting it afresh",
                    path, len(arrays), len(opt.variables))
        return
    engine.assign(opt.variables, arrays)


class EpochRecorder(keras.callbacks.Callback):
    """One history row per epoch, then a checkpoint and history.csv."""

    def __init__(self, phase: int, models: Models, out: Path, history: list[dict[str, Any]],
                 engine: Any, first_epoch_extra: float = 0.0) -> None:
        super().__init__()
        self.phase, self.models, self.out, self.history, self.engine = phase, models, out, history, engine
        self.extra = first_epoch_extra
        self._t0 = 0.0
        self._lr = float("nan")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t0 = time.perf_counter()
        self._lr = float(self.engine.values([self.model.optimizer.learning_rate])[0])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        seconds = time.perf_counter() - self._t0 + self.extra
        self.extra = 0.0
        row = {"phase": self.phase, "epoch": epoch + 1, "lr": self._lr, "seconds": round(seconds, 3)}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if key in logs:
                row[key] = float(logs[key])
        self.history.append(row)
        save_checkpoint(self.out / "checkpoints", self.models, self.model.optimizer, self.phase, epoch + 1,
                        self.history, self.engine)
        if self.engine.chief:
            write_history_csv(self.out / "history.csv", self.history)


# ----------------------------------------------------------------------------- helpers
def make_optimizer(name: str, lr: float, decay_steps: int) -> Any:
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, decay_steps))
    if name == "adam":
        return keras.optimizers.Adam(schedule)
    if name == "adamw":
        return keras.optimizers.AdamW(schedule)
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9)
    return keras.optimizers.RMSprop(schedule)


class ReplicaSafeLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras' loss-scale optimizer, with an overflow on any replica skipping the step on all of them.

    Under MirroredStrategy Keras (3.15) decides "the gradients are finite" from the first replica's
    gradients alone, assuming them all-reduced; they are not yet (the inner optimizer sums them
    later), so an inf on another replica is applied and the weights turn NaN, which happens on the
    very first steps, where the initial scale of 2^15 overflows float16. Here every replica's verdict
    is summed across replicas first, so all agree to skip the step and halve the scale.
    """

    def check_finite(self, grads: Any) -> Any:
        finite = super().check_finite(grads)
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return finite
        overflowed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.float32))
        return tf.equal(overflowed, 0.0)


def compile_for(trainer: Any, cfg: BuildConfig, lr: float, decay_steps: int, engine: Any) -> None:
    optimizer = make_optimizer(cfg.optimizer, lr, decay_steps)
    if trainer.dtype_policy.name == "mixed_float16":  # the condition on which compile() would wrap it
        optimizer = engine.loss_scale_optimizer(optimizer, name="loss_scale_optimizer")
    trainer.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing,
                                                  reduction=_reduction(cfg, engine)),
        # the JAX engine pads the last validation batch with rows of weight 0: its accuracy counts weights
        **{"weighted_metrics" if getattr(engine, "padded_validation", False) else "metrics":
           [keras.metrics.CategoricalAccuracy(name="accuracy")]},
        jit_compile=engine.jit_compile(),
    )


def _reduction(cfg: BuildConfig, engine: Any) -> str:
    """The loss's mean: over the batch, or over the weights of the JAX engine's padded validation batch.

    (Training batches carry weights only with --class-weights, whose loss stays the batch mean as here.)
    """
    padded = getattr(engine, "padded_validation", False) and cfg.class_weights == "none"
    return "mean_with_sample_weight" if padded else "sum_over_batch_size"


def extract_features(models: Models, ds: Any, n: int, disk_path: Path | None, jit: bool) -> np.ndarray:
    """Run the frozen backbone over ``ds`` once; RAM array, or an .npy memmap at ``disk_path``."""
    fn = tf.function(lambda x: models.features(x, training=False), jit_compile=jit, reduce_retracing=True)
    dtype = np.dtype(keras.backend.standardize_dtype(models.features.output.dtype))
    out = inputs.feature_store(disk_path, dtype, (n,) + tuple(models.feature_shape))
    i = 0
    for x, _ in ds:
        f = fn(x).numpy()
        out[i:i + len(f)] = f
        i += len(f)
    if isinstance(out, np.memmap):
        out.flush()
    return out


def _forget_optimizer(model: Any) -> None:
    """Drop a finished phase's optimizer so weights files and model.keras carry no optimizer state."""
    model.optimizer = None
    model.compiled = False


def _verbose(cfg: BuildConfig) -> int:
    if cfg.progress == "auto":
        return 1 if sys.stdout.isatty() else 2
    return {"bar": 1, "line": 2, "off": 0}[cfg.progress]


def _write_inputs(out: Path, cfg: BuildConfig, src: inputs.TrainingData, mixed: bool) -> None:
    import dataclasses

    import yaml

    # resolved like fine_tune_lr: 'auto' is stored as what it meant on this machine
    resolved = dataclasses.replace(cfg, mixed_precision="on" if mixed else "off")
    policy = "mixed_float16" if mixed else "float32"
    head = (f"# trained under the Keras dtype policy {policy}; model.keras computes in {DEPLOY_POLICY} "
            f"(every layer)\n")
    atomic_write_text(out / "labels.txt", "".join(f"{c}\n" for c in src.classes))
    atomic_write_text(out / "config.yaml", head + yaml.safe_dump(to_dict(resolved), sort_keys=False))
    if src.dataset is not None:
        epdata.write_split_csv(src.dataset, out / "data_split.csv")
    else:
        rows = ["path,label,split"] + [f"{cfg.data}:{s}[{i}],{src.classes[int(lab)]},{s}"
                                       for s, (_, labs) in src.splits.items() for i, lab in enumerate(labs)]
        atomic_write_text(out / "data_split.csv", "\n".join(rows) + "\n")
    atomic_write_text(out / "skipped.txt", "".join(f"{p}\t{r}\n" for p, r in src.skipped))


def _phase_summary(phase: int, what: str, rows: list[dict[str, Any]]) -> None:
    mine = [r for r in rows if r["phase"] == phase]
    if not mine:
        return
    last = mine[-1]
    log.info("phase %d (%s): %d epochs, %.1f s, loss %.4f, accuracy %.4f, val_accuracy %.4f",
             phase, what, len(mine), sum(r["seconds"] for r in mine), last.get("loss", float("nan")),
             last.get("accuracy", float("nan")), last.get("val_accuracy", float("nan")))


# ----------------------------------------------------------------------------- the engine
class TFEngine:
    """One TensorFlow process: the default strategy, MirroredStrategy over several GPUs or ``--devices N``.

    The trainer asks its engine for everything that differs when training spans processes
    (edgeport.build.jax_engine.JaxEngine): where variables live, the datasets each process reads, the
    feature cache, checkpoints and who writes them, and the final predictions.
    """

    chief = True  #: this process writes the run directory

    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg
        self.strategy = choose_strategy(cfg)
        self.replicas = int(self.strategy.num_replicas_in_sync)
        self.name = type(self.strategy).__name__
        self.loss_scale_optimizer = ReplicaSafeLossScaleOptimizer

    def scope(self) -> Any:
        return self.strategy.scope()

    def local(self) -> Any:
        """Objects of this process alone (the augmentation's seed state): nothing to leave here."""
        return contextlib.nullcontext()

    def run_dir(self, out: Path) -> Path:
        return _worker_dir(out)

    def jit_compile(self) -> bool:
        return bool(self.cfg.jit)

    def read_state(self, ckdir: Path) -> dict[str, Any] | None:
        return read_state(ckdir) if self.cfg.resume else None

    def values(self, tensors: Sequence[Any]) -> list[np.ndarray]:
        """Variables or tensors as numpy arrays."""
        return [np.asarray(t.numpy() if hasattr(t, "numpy") else keras.ops.convert_to_numpy(t)) for t in tensors]

    def save_weights(self, model: Any, path: Path) -> None:
        model.save_weights(str(path))

    def load_weights(self, model: Any, path: Path) -> None:
        model.load_weights(str(path))

    def save_model(self, model: Any, path: Path) -> None:
        model.save(str(path))

    def check_replicas(self, values: Sequence[np.ndarray]) -> None:
        """(Several processes: every one holds the same weights.)"""

    def assign(self, variables: Sequence[Any], arrays: Sequence[np.ndarray]) -> None:
        for var, value in zip(variables, arrays):
            var.assign(value)

    def load_arrays(self, path: Path) -> list[np.ndarray]:
        with np.load(str(path)) as saved:
            return [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def use_cache(self) -> bool:
        if self.cfg.cache_features == "off":
            return False
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # every worker would compute the whole cache; train phase 1 through the backbone instead
            log.warning("--cache-features %s: not used with several workers (TF_CONFIG); phase 1 runs the backbone",
                        self.cfg.cache_features)
            return False
        return True

    def cache_dir(self, out: Path) -> Path:
        return out / "cache"

    def steps(self, n: int) -> int:
        return inputs.steps(n, self.cfg.batch_size)

    def images(self, src: inputs.TrainingData, split: str, *, shuffle: bool, seed: int, augment: Any = None,
               cache_bytes: int = 0, phase: int = 0, first_epoch: int = 0) -> Any:
        return inputs.image_dataset(src, split, self.cfg.image_size, self.cfg.batch_size, shuffle=shuffle, seed=seed,
                                    augment=augment, cache_bytes=cache_bytes)

    def feature_data(self, features: np.ndarray, labels: np.ndarray, k: int, *, shuffle: bool, seed: int,
                     phase: int = 0, first_epoch: int = 0) -> Any:
        return inputs.feature_dataset(features, labels, k, self.cfg.batch_size, shuffle=shuffle, seed=seed)

    def extract_features(self, models: Models, src: inputs.TrainingData, split: str,
                         disk_path: Path | None) -> np.ndarray:
        ds = inputs.image_dataset(src, split, self.cfg.image_size, self.cfg.batch_size, shuffle=False,
                                  seed=self.cfg.seed, cache_bytes=0)
        return extract_features(models, ds, src.count(split), disk_path, self.cfg.jit)

    def fit(self, trainer: Any, train_ds: Any, val_ds: Any, epochs: int, initial_epoch: int, callbacks: list[Any],
            **common: Any) -> None:
        trainer.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
                    callbacks=callbacks, **common)

    def deploy_model(self, models: Models) -> Any:
        return as_float32(models.plain)

    def predict(self, model: Any, src: inputs.TrainingData, split: str, ds: Any = None) -> np.ndarray:
        if ds is None:
            ds = inputs.image_dataset(src, split, self.cfg.image_size, self.cfg.batch_size, shuffle=False,
                                      seed=self.cfg.seed)
        return np.asarray(model.predict(ds, verbose=0), np.float64)


# ----------------------------------------------------------------------------- the run
def run(cfg: BuildConfig, callbacks: Sequence[Any] = (), src: inputs.TrainingData | None = None,
        engine: Any = None) -> RunResult:
    """Train as configured (cfg already resolved and validated); write the run directory.

    ``engine`` is a :class:`TFEngine` (made here) or, in a worker of several processes, the JAX engine.
    """
    BACKBONES.get(cfg.backbone)
    HEADS.get(cfg.head)
    if engine is None or engine.chief:
        check_out_dir(cfg)
    out = Path(cfg.out).expanduser().resolve()
    if src is None:
        src = inputs.load_source(cfg)
    if engine is None:
        setup_devices(cfg)
    mixed = use_mixed_precision(cfg) if engine is None else engine.use_mixed_precision()
    previous_policy = keras.config.dtype_policy().name
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return _train(cfg, out, src, mixed, list(callbacks), engine)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


class _Run:
    """What both training phases and the finish share."""

    def __init__(self, cfg: BuildConfig, out: Path, src: inputs.TrainingData, mixed: bool, callbacks: list[Any],
                 engine: Any) -> None:
        self.cfg, self.src, self.mixed, self.callbacks, self.engine = cfg, src, mixed, callbacks, engine
        self.out = engine.run_dir(out)
        self.ckdir = self.out / "checkpoints"
        self.k = len(src.classes)
        self.n_train = src.count("train")
        self.steps = engine.steps(self.n_train)
        self.cache_bytes = cfg.cache_memory_mb * 2 ** 20
        self.cw = inputs.class_weights(src.labels("train"), self.k) if cfg.class_weights == "balanced" else None
        with engine.local():  # each worker's own random augmentation, not a variable shared by the processes
            self.aug = inputs.augmenter(cfg.seed + getattr(engine, "process_id", 0)) if cfg.augment else None
        self.timing: dict[str, Any] = {}
        self.fit_common = dict(verbose=_verbose(cfg) if engine.chief else 0, class_weight=self.cw, shuffle=False)
        self.state: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.s_phase, self.s_epoch = 1, 0
        self.models: Models | None = None
        self.val_images: Any = None

    def resume_point(self) -> None:
        """Weights and history of --resume's checkpoint (if any) into the models."""
        self.state = self.engine.read_state(self.ckdir)
        if not self.state:
            return
        self.history = list(self.state["history"])
        self.s_phase, self.s_epoch = int(self.state["phase"]), int(self.state["epoch"])
        self.engine.load_weights(self.models.plain, self.ckdir / self.state["weights"])
        log.info("resuming %s after phase %d epoch %d", self.out, self.s_phase, self.s_epoch)

    def compile(self, trainer: Any, phase: int, lr: float, epochs: int) -> None:
        """Compile ``trainer`` for ``phase`` and give it the optimizer state of the checkpoint it resumes."""
        with self.engine.scope():
            compile_for(trainer, self.cfg, lr, epochs * self.steps, self.engine)
            if self.state and self.s_phase == phase and self.s_epoch > 0:
                restore_optimizer(trainer, self.ckdir / self.state["optimizer"], self.engine)


def _train(cfg: BuildConfig, out: Path, src: inputs.TrainingData, mixed: bool, callbacks: list[Any],
           engine: Any = None) -> RunResult:
    t_start = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    engine = engine or TFEngine(cfg)
    r = _Run(cfg, out, src, mixed, callbacks, engine)
    if engine.chief:
        r.ckdir.mkdir(parents=True, exist_ok=True)
        _write_inputs(r.out, cfg, src, mixed)
    log.info("data: %s layout, %d classes, %d train / %d val images, %d skipped; %d replica(s)%s",
             src.summary.get("layout"), r.k, r.n_train, src.count("val"), len(src.skipped),
             engine.replicas, ", mixed precision" if mixed else "")
    with engine.scope():
        r.models = build_models(cfg, r.k)
    r.resume_point()
    r.val_images = engine.images(src, "val", shuffle=False, seed=cfg.seed, cache_bytes=r.cache_bytes)
    _phase1(r)
    _phase2(r)
    metrics = _finish(cfg, r.out, src, r.models, r.history, r.val_images, r.timing, mixed, engine, t_start)
    return RunResult(run_dir=str(r.out), metrics=metrics, history=r.history, config=cfg)


def _phase1(r: _Run) -> None:
    """Frozen backbone, head only: on cached backbone features, or through the backbone."""
    cfg, src, engine, models = r.cfg, r.src, r.engine, r.models
    first = r.s_epoch if r.s_phase == 1 else cfg.epochs
    if cfg.epochs == 0 or first >= cfg.epochs:
        return
    freeze_backbone(models)
    use_cache = engine.use_cache()
    extra = 0.0
    cache_dir = engine.cache_dir(r.out)
    if use_cache:
        t0 = time.perf_counter()
        itemsize = np.dtype(keras.backend.standardize_dtype(models.features.output.dtype)).itemsize
        n_val = src.count("val")
        feat_bytes = (r.n_train + n_val) * int(np.prod(models.feature_shape)) * itemsize
        disk = feat_bytes > r.cache_bytes
        shutil.rmtree(cache_dir, ignore_errors=True)  # a run killed in phase 1 left its (partial) cache
        tr_f = engine.extract_features(models, src, "train", cache_dir / "train.npy" if disk else None)
        va_f = engine.extract_features(models, src, "val", cache_dir / "val.npy" if disk else None)
        extra = time.perf_counter() - t0
        r.timing["feature_cache_seconds"] = round(extra, 3)
        r.timing["feature_cache"] = {"where": "disk" if disk else "ram", "bytes": int(tr_f.nbytes + va_f.nbytes),
                                     "shape": list(models.feature_shape), "dtype": str(tr_f.dtype)}
        log.info("feature cache: %d+%d images through the frozen backbone in %.1f s (%s, %.1f MB)",
                 r.n_train, n_val, extra, "disk" if disk else "RAM", (tr_f.nbytes + va_f.nbytes) / 2**20)
        train_ds = engine.feature_data(tr_f, src.labels("train"), r.k, shuffle=True, seed=cfg.seed, phase=1,
                                       first_epoch=first)
        val_ds = engine.feature_data(va_f, src.labels("val"), r.k, shuffle=False, seed=cfg.seed)
        trainer = models.head
    else:
        train_ds = engine.images(src, "train", shuffle=True, seed=cfg.seed, augment=r.aug, cache_bytes=r.cache_bytes,
                                 phase=1, first_epoch=first)
        val_ds = r.val_images
        trainer = models.full
    r.compile(trainer, 1, cfg.lr, cfg.epochs)
    rec = EpochRecorder(1, models, r.out, r.history, engine, first_epoch_extra=extra if first == 0 else 0.0)
    engine.fit(trainer, train_ds, val_ds, cfg.epochs, first, [rec, *r.callbacks], **r.fit_common)
    _phase_summary(1, "head on cached features" if use_cache else "head, backbone frozen", r.history)
    _forget_optimizer(trainer)
    if use_cache and cache_dir.exists():
        del tr_f, va_f, train_ds, val_ds
        shutil.rmtree(cache_dir, ignore_errors=True)


def _phase2(r: _Run) -> None:
    """Fine-tune the top --unfreeze stages on augmented images."""
    cfg, engine, models = r.cfg, r.engine, r.models
    first = r.s_epoch if r.s_phase == 2 else 0
    if cfg.fine_tune_epochs == 0 or first >= cfg.fine_tune_epochs:
        return
    with engine.scope():
        unfreeze_top(models, cfg.unfreeze)
    train_ds = engine.images(r.src, "train", shuffle=True, seed=cfg.seed + 1, augment=r.aug,
                             cache_bytes=r.cache_bytes, phase=2, first_epoch=first)
    trainer = models.full
    r.compile(trainer, 2, float(cfg.fine_tune_lr or cfg.lr / 10), cfg.fine_tune_epochs)
    rec = EpochRecorder(2, models, r.out, r.history, engine)
    engine.fit(trainer, train_ds, r.val_images, cfg.fine_tune_epochs, first, [rec, *r.callbacks], **r.fit_common)
    _phase_summary(2, f"fine-tune top {cfg.unfreeze} stage(s)", r.history)
    _forget_optimizer(trainer)


def _check_finite_weights(model: Any, history: list[dict[str, Any]],
                          values: Sequence[np.ndarray] | None = None) -> None:
    """A diverged run (NaN/inf weights) is no model: say so instead of writing one that outputs NaN."""
    values = [w.numpy() for w in model.weights] if values is None else values
    bad = [w.path for w, v in zip(model.weights, values) if not np.isfinite(np.asarray(v, np.float64)).all()]
    if not bad:
        return
    first = next((r for r in history if not np.isfinite(r.get("loss", 0.0))), None)
    when = f"; the loss was first NaN/inf in phase {first['phase']} epoch {first['epoch']}" if first else ""
    raise ModelError(
        f"training diverged: expected finite weights, found NaN/inf in {len(bad)} weight(s) ({', '.join(bad[:3])}"
        f"{', ...' if len(bad) > 3 else ''}){when}; no model.keras was written. Lower --lr (and --fine-tune-lr), "
        "raise --batch-size, or train without --mixed-precision")


def _finish(cfg: BuildConfig, out: Path, src: inputs.TrainingData, models: Models, history: list[dict[str, Any]],
            val_images: Any, timing: dict[str, Any], mixed: bool, engine: Any, t_start: float) -> dict[str, Any]:
    # what ships: float32 in every layer whatever the training policy (export converts it as is),
    # never compiled (no optimizer state inside); the metrics below are this model's
    values = engine.values(models.plain.weights)
    _check_finite_weights(models.plain, history, values)
    engine.check_replicas(values)
    deploy = engine.deploy_model(models)
    if engine.chief:
        with atomic_path(out / "model.keras") as tmp:  # written whole, then renamed: never half a model.keras
            engine.save_model(deploy, tmp)
    val = accuracy(engine.predict(deploy, src, "val", val_images), src.labels("val"), src.classes, confusion=True)
    metrics: dict[str, Any] = {
        "val_top1_pct": val["top1_pct"], "val_top1_pct_ci": val["top1_pct_ci"], "val_top5_pct": val["top5_pct"],
        "val": val,
    }
    if src.count("test"):
        metrics["test"] = accuracy(engine.predict(deploy, src, "test"), src.labels("test"), src.classes,
                                   confusion=True)
    for phase in (1, 2):
        rows = [r for r in history if r["phase"] == phase]
        timing[f"phase{phase}_seconds"] = round(sum(r["seconds"] for r in rows), 3)
        timing[f"phase{phase}_epoch_seconds"] = [r["seconds"] for r in rows]
    timing["total_seconds_this_session"] = round(time.perf_counter() - t_start, 3)
    metrics.update({
        "classes": list(src.classes),
        "data": src.summary,
        "model": {"backbone": cfg.backbone, "head": cfg.head, "image_size": cfg.image_size,
                  "weights": cfg.weights, "params": int(models.full.count_params()),
                  "feature_shape": list(models.feature_shape)},
        "runtime": {"mixed_precision": mixed, "training_dtype_policy": "mixed_float16" if mixed else "float32",
                    "model_dtype_policy": DEPLOY_POLICY, "replicas": engine.replicas,
                    "strategy": engine.name, "jit": bool(cfg.jit),
                    "feature_cache": "feature_cache_seconds" in timing,
                    "tensorflow": tf.__version__, "keras": keras.__version__, **getattr(engine, "runtime", {})},
        "timing": timing,
    })
    if not engine.chief:
        return metrics
    write_json(out / "metrics.json", metrics)
    write_history_csv(out / "history.csv", history)
    plot_history(out / "history.png", history)
    plot_confusion(out / "confusion.png", val["confusion_matrix"], src.classes)
    state = read_state(out / "checkpoints") or {}
    state.update({"history": history, "done": True})
    write_json(out / "checkpoints" / STATE_FILE, state)
    log.info("run written to %s: val top-1 %.2f %% of %d images", out, val["top1_pct"], val["images"])
    return metrics
