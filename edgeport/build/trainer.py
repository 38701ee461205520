"""The training run behind :func:`edgeport.build.train` (imports TensorFlow).

Phase 1 trains the head with the backbone frozen, on cached backbone
features by default (computed once; RAM or a disk memmap). Phase 2 unfreezes
the top stages of the backbone (BatchNorm stays in inference mode) and trains
on augmented images at a lower learning rate. After every epoch the weights,
the optimizer state and a small ``state.json`` (phase, epoch, history) are
written under ``checkpoints/`` so ``--resume`` continues even after SIGKILL.
"""

from __future__ import annotations

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
from edgeport.build.rundir import STATE_FILE, check_out_dir, read_state
from edgeport.build.report import plot_confusion, plot_history, write_history_csv
from edgeport.files import atomic_write_bytes, atomic_write_text, write_json
from edgeport.metrics import accuracy
from edgeport.config import to_dict
from edgeport.errors import ConfigError, ModelError

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


def choose_strategy(cfg: BuildConfig) -> Any:
    """MultiWorkerMirrored for a multi-machine TF_CONFIG, Mirrored for several GPUs (or --devices N)."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster = tf_config.get("cluster", {})
    workers = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
    if workers > 1:
        if not multi_worker_fit_supported():
            raise ConfigError(
                f"TF_CONFIG describes {workers} workers, but Keras {keras.__version__} cannot fit() under "
                "MultiWorkerMirroredStrategy (its pre-build and metric reductions fail: keras-team/keras#20585); "
                "unset TF_CONFIG to train on one machine (several GPUs there use MirroredStrategy)"
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
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    chief = task.get("type") == "chief" or (task.get("type") in (None, "worker") and task.get("index", 0) == 0
                                              and not cluster.get("chief"))
    return out if chief or not task else out / f".worker-{task.get('type')}-{task.get('index')}"


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(ckdir: Path, models: Models, optimizer: Any, phase: int, epoch: int,
                    history: list[dict[str, Any]]) -> None:
    """Weights + optimizer for (phase, epoch), then state.json pointing at them (atomic)."""
    tag = f"phase{phase}-epoch{epoch:03d}"
    weights = ckdir / f"{tag}.weights.h5"
    opt = ckdir / f"{tag}.optimizer.npz"
    tmp = ckdir / f".{tag}.tmp.weights.h5"  # whole files only: written under a temporary name, then renamed
    models.plain.save_weights(str(tmp))  # the optimizer goes to its own file
    os.replace(tmp, weights)
    buf = io.BytesIO()
    np.savez(buf, *[np.asarray(v.numpy()) for v in optimizer.variables])
    atomic_write_bytes(opt, buf.getvalue())
    write_json(ckdir / STATE_FILE, {"phase": phase, "epoch": epoch, "weights": weights.name,
                                    "optimizer": opt.name, "history": history, "done": False})
    for old in ckdir.glob("phase*-epoch*"):
        if old.name not in (weights.name, opt.name):
            old.unlink(missing_ok=True)


def restore_optimizer(trainer: Any, path: Path) -> None:
    opt = trainer.optimizer
    opt.build(trainer.trainable_variables)
    with np.load(str(path)) as saved:
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if len(arrays) != len(opt.variables):
        log.warning("optimizer state in %s does not match (%d vs %d variables); starting it afresh",
                    path, len(arrays), len(opt.variables))
        return
    for var, value in zip(opt.variables, arrays):
        var.assign(value)


class EpochRecorder(keras.callbacks.Callback):
    """One history row per epoch, then a checkpoint and history.csv."""

    def __init__(self, phase: int, models: Models, out: Path, history: list[dict[str, Any]],
                 first_epoch_extra: float = 0.0) -> None:
        super().__init__()
        self.phase, self.models, self.out, self.history = phase, models, out, history
        self.extra = first_epoch_extra
        self._t0 = 0.0
        self._lr = float("nan")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t0 = time.perf_counter()
        self._lr = float(np.asarray(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

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
                        self.history)
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


def compile_for(trainer: Any, cfg: BuildConfig, lr: float, decay_steps: int) -> None:
    optimizer = make_optimizer(cfg.optimizer, lr, decay_steps)
    if trainer.dtype_policy.name == "mixed_float16":  # the condition on which compile() would wrap it
        optimizer = ReplicaSafeLossScaleOptimizer(optimizer, name="loss_scale_optimizer")
    trainer.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=bool(cfg.jit),
    )


def extract_features(models: Models, ds: Any, n: int, disk_path: Path | None, jit: bool) -> np.ndarray:
    """Run the frozen backbone over ``ds`` once; RAM array, or an .npy memmap at ``disk_path``."""
    fn = tf.function(lambda x: models.features(x, training=False), jit_compile=jit, reduce_retracing=True)
    dtype = np.dtype(keras.backend.standardize_dtype(models.features.output.dtype))
    shape = (n,) + tuple(models.feature_shape)
    if disk_path is not None:
        disk_path.parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(str(disk_path), mode="w+", dtype=dtype, shape=shape)
    else:
        out = np.empty(shape, dtype)
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


# ----------------------------------------------------------------------------- the run
def run(cfg: BuildConfig, callbacks: Sequence[Any] = (), src: inputs.TrainingData | None = None) -> RunResult:
    """Train as configured (cfg already resolved and validated); write the run directory."""
    BACKBONES.get(cfg.backbone)
    HEADS.get(cfg.head)
    check_out_dir(cfg)
    out = Path(cfg.out).expanduser().resolve()
    if src is None:
        src = inputs.load_source(cfg)
    setup_devices(cfg)
    mixed = use_mixed_precision(cfg)
    previous_policy = keras.config.dtype_policy().name
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return _train(cfg, out, src, mixed, list(callbacks))
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(cfg: BuildConfig, out: Path, src: inputs.TrainingData, mixed: bool, callbacks: list[Any]) -> RunResult:
    t_start = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    strategy = choose_strategy(cfg)
    out = _worker_dir(out)
    ckdir = out / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    state = read_state(ckdir) if cfg.resume else None
    _write_inputs(out, cfg, src, mixed)

    k = len(src.classes)
    n_train = src.count("train")
    bs = cfg.batch_size
    steps = inputs.steps(n_train, bs)
    cache_bytes = cfg.cache_memory_mb * 2 ** 20
    verbose = _verbose(cfg)
    cw = inputs.class_weights(src.labels("train"), k) if cfg.class_weights == "balanced" else None
    aug = inputs.augmenter(cfg.seed) if cfg.augment else None
    log.info("data: %s layout, %d classes, %d train / %d val images, %d skipped; %d replica(s)%s",
             src.summary.get("layout"), k, n_train, src.count("val"), len(src.skipped),
             strategy.num_replicas_in_sync, ", mixed precision" if mixed else "")

    with strategy.scope():
        models = build_models(cfg, k)
    history: list[dict[str, Any]] = list(state["history"]) if state else []
    s_phase, s_epoch = (int(state["phase"]), int(state["epoch"])) if state else (1, 0)
    if state:
        models.plain.load_weights(str(ckdir / state["weights"]))
        log.info("resuming %s after phase %d epoch %d", out, s_phase, s_epoch)

    val_images = inputs.image_dataset(src, "val", cfg.image_size, bs, shuffle=False, seed=cfg.seed,
                                      cache_bytes=cache_bytes)
    timing: dict[str, Any] = {}
    fit_common = dict(verbose=verbose, class_weight=cw, shuffle=False)

    # ---- phase 1: frozen backbone, head only
    p1_start = s_epoch if s_phase == 1 else cfg.epochs
    use_cache = cfg.cache_features != "off"
    if use_cache and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # every worker would compute the whole cache; train phase 1 through the backbone instead
        log.warning("--cache-features %s: not used with several workers (TF_CONFIG); phase 1 runs the backbone",
                    cfg.cache_features)
        use_cache = False
    if cfg.epochs > 0 and p1_start < cfg.epochs:
        freeze_backbone(models)
        extra = 0.0
        if use_cache:
            t0 = time.perf_counter()
            plain = dict(shuffle=False, seed=cfg.seed, cache_bytes=0)
            itemsize = np.dtype(keras.backend.standardize_dtype(models.features.output.dtype)).itemsize
            feat_bytes = (n_train + src.count("val")) * int(np.prod(models.feature_shape)) * itemsize
            disk = feat_bytes > cache_bytes
            cache_dir = out / "cache"
            shutil.rmtree(cache_dir, ignore_errors=True)  # a run killed in phase 1 left its (partial) cache
            tr_f = extract_features(models, inputs.image_dataset(src, "train", cfg.image_size, bs, **plain),
                                    n_train, cache_dir / "train.npy" if disk else None, cfg.jit)
            va_f = extract_features(models, inputs.image_dataset(src, "val", cfg.image_size, bs, **plain),
                                    src.count("val"), cache_dir / "val.npy" if disk else None, cfg.jit)
            extra = time.perf_counter() - t0
            timing["feature_cache_seconds"] = round(extra, 3)
            timing["feature_cache"] = {"where": "disk" if disk else "ram", "bytes": int(tr_f.nbytes + va_f.nbytes),
                                       "shape": list(models.feature_shape), "dtype": str(tr_f.dtype)}
            log.info("feature cache: %d+%d images through the frozen backbone in %.1f s (%s, %.1f MB)",
                     n_train, src.count("val"), extra, "disk" if disk else "RAM", (tr_f.nbytes + va_f.nbytes) / 2**20)
            train_ds = inputs.feature_dataset(tr_f, src.labels("train"), k, bs, shuffle=True, seed=cfg.seed)
            val_ds = inputs.feature_dataset(va_f, src.labels("val"), k, bs, shuffle=False, seed=cfg.seed)
            trainer = models.head
        else:
            train_ds = inputs.image_dataset(src, "train", cfg.image_size, bs, shuffle=True, seed=cfg.seed,
                                            augment=aug, cache_bytes=cache_bytes)
            val_ds = val_images
            trainer = models.full
        with strategy.scope():
            compile_for(trainer, cfg, cfg.lr, cfg.epochs * steps)
            if state and s_phase == 1 and s_epoch > 0:
                restore_optimizer(trainer, ckdir / state["optimizer"])
        rec = EpochRecorder(1, models, out, history, first_epoch_extra=extra if p1_start == 0 else 0.0)
        trainer.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=p1_start,
                    callbacks=[rec, *callbacks], **fit_common)
        _phase_summary(1, "head on cached features" if use_cache else "head, backbone frozen", history)
        _forget_optimizer(trainer)
        if use_cache and (out / "cache").exists():
            del tr_f, va_f, train_ds, val_ds
            shutil.rmtree(out / "cache", ignore_errors=True)

    # ---- phase 2: fine-tune the top stages
    p2_start = s_epoch if s_phase == 2 else 0
    if cfg.fine_tune_epochs > 0 and p2_start < cfg.fine_tune_epochs:
        with strategy.scope():
            unfreeze_top(models, cfg.unfreeze)
        train_ds = inputs.image_dataset(src, "train", cfg.image_size, bs, shuffle=True, seed=cfg.seed + 1,
                                        augment=aug, cache_bytes=cache_bytes)
        trainer = models.full
        with strategy.scope():
            compile_for(trainer, cfg, float(cfg.fine_tune_lr or cfg.lr / 10), cfg.fine_tune_epochs * steps)
            if state and s_phase == 2 and s_epoch > 0:
                restore_optimizer(trainer, ckdir / state["optimizer"])
        rec = EpochRecorder(2, models, out, history)
        trainer.fit(train_ds, validation_data=val_images, epochs=cfg.fine_tune_epochs,
                        initial_epoch=p2_start, callbacks=[rec, *callbacks], **fit_common)
        _phase_summary(2, f"fine-tune top {cfg.unfreeze} stage(s)", history)
        _forget_optimizer(trainer)

    # ---- evaluate and write the run directory
    metrics = _finish(cfg, out, src, models, history, val_images, timing, mixed, strategy, t_start)
    return RunResult(run_dir=str(out), metrics=metrics, history=history, config=cfg)


def _check_finite_weights(model: Any, history: list[dict[str, Any]]) -> None:
    """A diverged run (NaN/inf weights) is no model: say so instead of writing one that outputs NaN."""
    bad = [w.path for w in model.weights if not np.isfinite(np.asarray(w.numpy(), np.float64)).all()]
    if not bad:
        return
    first = next((r for r in history if not np.isfinite(r.get("loss", 0.0))), None)
    when = f"; the loss was first NaN/inf in phase {first['phase']} epoch {first['epoch']}" if first else ""
    raise ModelError(
        f"training diverged: expected finite weights, found NaN/inf in {len(bad)} weight(s) ({', '.join(bad[:3])}"
        f"{', ...' if len(bad) > 3 else ''}){when}; no model.keras was written. Lower --lr (and --fine-tune-lr), "
        "raise --batch-size, or train without --mixed-precision")


def _finish(cfg: BuildConfig, out: Path, src: inputs.TrainingData, models: Models, history: list[dict[str, Any]],
            val_images: Any, timing: dict[str, Any], mixed: bool, strategy: Any, t_start: float) -> dict[str, Any]:
    # what ships: float32 in every layer whatever the training policy (export converts it as is),
    # never compiled (no optimizer state inside); the metrics below are this model's
    _check_finite_weights(models.plain, history)
    deploy = as_float32(models.plain)
    tmp = out / ".model.tmp.keras"  # written whole, then renamed: a kill never leaves half a model.keras
    deploy.save(str(tmp))
    os.replace(tmp, out / "model.keras")
    probs = deploy.predict(val_images, verbose=0)
    val = accuracy(np.asarray(probs, np.float64), src.labels("val"), src.classes, confusion=True)
    metrics: dict[str, Any] = {
        "val_top1_pct": val["top1_pct"], "val_top1_pct_ci": val["top1_pct_ci"], "val_top5_pct": val["top5_pct"],
        "val": val,
    }
    if src.count("test"):
        test_ds = inputs.image_dataset(src, "test", cfg.image_size, cfg.batch_size, shuffle=False, seed=cfg.seed)
        metrics["test"] = accuracy(np.asarray(deploy.predict(test_ds, verbose=0), np.float64),
                                   src.labels("test"), src.classes, confusion=True)
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
                    "model_dtype_policy": DEPLOY_POLICY, "replicas": int(strategy.num_replicas_in_sync),
                    "strategy": type(strategy).__name__, "jit": bool(cfg.jit),
                    "feature_cache": "feature_cache_seconds" in timing,
                    "tensorflow": tf.__version__, "keras": keras.__version__},
        "timing": timing,
    })
    write_json(out / "metrics.json", metrics)
    write_history_csv(out / "history.csv", history)
    plot_history(out / "history.png", history)
    plot_confusion(out / "confusion.png", val["confusion_matrix"], src.classes)
    state = read_state(out / "checkpoints") or {}
    state.update({"history": history, "done": True})
    write_json(out / "checkpoints" / STATE_FILE, state)
    log.info("run written to %s: val top-1 %.2f %% of %d images", out, val["top1_pct"], val["images"])
    return metrics
