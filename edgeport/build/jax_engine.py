"""The engine of ``edgeport build --num-processes N``: Keras' distribution API on JAX (one worker of N).

Keras 3's ``keras.distribution.DataParallel`` replicates every variable over all devices of all
processes (``jax.distributed`` joins them; on CPUs the collectives run over gloo) and shards each
batch over them; XLA computes the gradient of the global batch's loss, all-reduces included. This
module feeds it: every worker reads only its rows of each global batch, computes its share of the
feature cache, and worker 0 alone writes the run directory. It runs in a process whose Keras backend
is JAX (``edgeport.build.distributed`` starts it so); TensorFlow is there for tf.data only.

The order of the data depends on ``--seed`` and the epoch, never on N: global batch t of an epoch
holds the same images whatever the number of processes (each takes its consecutive slice of it), so
N processes train exactly what one process (``--num-processes 1``) trains, up to float rounding.
The last incomplete global batch of an epoch is dropped (every step needs ``--batch-size`` rows);
validation and prediction pad it with rows of weight 0 and drop their outputs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgeport._lazy import require
from edgeport.build import inputs
from edgeport.build.config import BuildConfig
from edgeport.build.distributed import broadcast_arrays, broadcast_json, gather_bytes
from edgeport.build.model import Models
from edgeport.build.precision import float32_twin, set_twin_weights
from edgeport.build.rundir import read_state
from edgeport.errors import ConfigError, ModelError
from edgeport.imaging import load_resized

jax = require("jax", "training across processes (edgeport build --num-processes)")
keras = require("keras", "training (edgeport build)")
tf = require("tensorflow", "the training input pipeline")

from jax.experimental import multihost_utils  # noqa: E402 - after require() has said how to install jax
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402 - likewise

log = logging.getLogger("edgeport.build")

# ----------------------------------------------------------------------------- the engine
class JaxEngine:
    """One worker of ``--num-processes N`` (see the module's doc); the trainer's TFEngine counterpart."""

    padded_validation = True  #: the last validation batch is padded with rows of weight 0

    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg
        self.processes = jax.process_count()
        self.process_id = jax.process_index()
        self.chief = self.process_id == 0
        devices = jax.devices()
        if cfg.batch_size % len(devices):
            raise ConfigError(f"expected --batch-size (the global batch) a multiple of the {len(devices)} devices "
                              f"of the {self.processes} process(es), received {cfg.batch_size}")
        self.replicas = len(devices)
        self.local_batch = cfg.batch_size // self.processes
        self.distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        keras.distribution.set_distribution(self.distribution)
        mesh = self.distribution.device_mesh.backend_mesh
        self.batch_sharding = NamedSharding(mesh, PartitionSpec(self.distribution.batch_dim_name))
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.name = "DataParallel"
        self.loss_scale_optimizer = keras.optimizers.LossScaleOptimizer  # gradients are global: see the docs
        self.runtime = {"engine": "keras.distribution on jax", "jax": jax.__version__, "processes": self.processes,
                        "devices": sorted({d.platform for d in devices})}
        self._steps = 0
        self._twin: Any = None
        self._scratch: Path | None = None

    # -- set-up
    def scope(self) -> Any:
        return self.distribution.scope()

    @contextlib.contextmanager
    def local(self) -> Iterator[None]:
        """No distribution for a while: models made here live on this process's first device only."""
        before = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(before)

    def run_dir(self, out: Path) -> Path:
        return out

    def jit_compile(self) -> bool:
        return True  # JAX always compiles the step with XLA (jit_compile=False would run it op by op)

    def use_mixed_precision(self) -> bool:
        if self.cfg.mixed_precision != "auto":
            return self.cfg.mixed_precision == "on"
        ccs = [getattr(d, "compute_capability", None) for d in jax.local_devices() if d.platform == "gpu"]
        return any(cc and tuple(int(v) for v in str(cc).split(".")[:2]) >= (7, 0) for cc in ccs)

    # -- checkpoints: numpy on the host; worker 0 reads and writes, the others receive
    def values(self, tensors: Sequence[Any]) -> list[np.ndarray]:
        """Variables or arrays as numpy (replicated: this process's own copy, no communication)."""
        out = []
        for t in tensors:
            x = t.value if isinstance(t, keras.Variable) else t
            if isinstance(x, jax.Array) and not x.is_fully_addressable:
                x = x.addressable_data(0)
            out.append(np.asarray(x))
        return out

    def twin(self, model: Any) -> Any:
        """A float32 copy of ``model`` on this process alone: writes checkpoints and model.keras."""
        if self._twin is None:
            with self.local():
                self._twin = float32_twin(model)
        return self._twin

    def save_weights(self, model: Any, path: Path | None) -> None:
        if path is None:
            return
        twin = self.twin(model)
        with self.local():
            set_twin_weights(twin, self.values(model.weights), model.name)
            twin.save_weights(str(path))

    def save_model(self, model: Any, path: Path) -> None:
        with self.local():
            model.save(str(path))

    def check_replicas(self, values: Sequence[np.ndarray]) -> None:
        """Every worker's own copy of the trained weights is the same (recorded in metrics.json's runtime)."""
        import hashlib

        digest = hashlib.sha256()
        for value in values:
            digest.update(np.ascontiguousarray(value).tobytes())
        everyone = [b.decode() for b in gather_bytes(digest.hexdigest().encode())]
        self.runtime["weights_sha256_per_worker"] = everyone
        if len(set(everyone)) > 1:
            raise ModelError(f"expected the same trained weights on every worker, received {len(set(everyone))} "
                             f"different ones (sha256 per worker: {', '.join(d[:12] for d in everyone)}); "
                             "report this with the workers' output")

    def read_state(self, ckdir: Path) -> dict[str, Any] | None:
        return broadcast_json(read_state(ckdir) if self.chief and self.cfg.resume else None)

    def load_weights(self, model: Any, path: Path) -> None:
        arrays = None
        if self.chief:
            twin = self.twin(model)
            with self.local():
                twin.load_weights(str(path))
            arrays = [np.asarray(w.numpy()) for w in twin.weights]
        self.assign(model.weights, broadcast_arrays(arrays))

    def load_arrays(self, path: Path) -> list[np.ndarray]:
        arrays = None
        if self.chief:
            with np.load(str(path)) as saved:
                arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        return broadcast_arrays(arrays)

    def assign(self, variables: Sequence[Any], arrays: Sequence[np.ndarray]) -> None:
        for var, value in zip(variables, arrays):
            var.assign(np.asarray(value).astype(keras.backend.standardize_dtype(var.dtype)))

    # -- data: this worker's rows of every global batch
    def steps(self, n: int) -> int:
        if n < self.cfg.batch_size:
            raise ConfigError(f"expected at least --batch-size ({self.cfg.batch_size}) training images with "
                              f"--num-processes, received {n}; lower --batch-size")
        self._steps = n // self.cfg.batch_size
        return self._steps

    def _epoch_rows(self, n: int, seed: int, phase: int, epoch: int) -> np.ndarray:
        """This worker's rows of epoch ``epoch``: its slice of each full global batch of a seeded order."""
        order = np.random.default_rng([seed, phase, epoch]).permutation(n)
        steps, b = n // self.cfg.batch_size, self.local_batch
        return order[:steps * self.cfg.batch_size].reshape(steps, self.processes, b)[:, self.process_id].reshape(-1)

    def _padded_rows(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """This worker's rows of every global batch in file order, the last padded: (rows, weight 0/1)."""
        batches = -(-n // self.cfg.batch_size)
        rows = np.full(batches * self.cfg.batch_size, -1, np.int64)
        rows[:n] = np.arange(n)
        mine = rows.reshape(batches, self.processes, self.local_batch)[:, self.process_id].reshape(-1)
        return np.maximum(mine, 0), (mine >= 0).astype(np.float32)

    def _rows(self, n: int, shuffle: bool, seed: int, phase: int, first_epoch: int) -> tuple[np.ndarray, Any]:
        if not shuffle:
            return self._padded_rows(n)
        epochs = self.cfg.epochs if phase == 1 else self.cfg.fine_tune_epochs
        rows = [self._epoch_rows(n, seed, phase, e) for e in range(first_epoch, epochs)]
        return (np.concatenate(rows) if rows else np.zeros(0, np.int64)), None

    def _dataset(self, rows: np.ndarray, weights: Any, labels: np.ndarray, k: int, load: Any, dtype: Any,
                 shape: tuple[int, ...], augment: Any = None) -> Any:
        onehot = np.eye(k, dtype=np.float32)[labels[rows]]
        parts = (rows, onehot) if weights is None else (rows, onehot, weights)
        ds = tf.data.Dataset.from_tensor_slices(parts).batch(self.local_batch)

        def _map(idx: Any, *rest: Any) -> Any:
            x = tf.numpy_function(load, [idx], dtype, stateful=False)
            x.set_shape((None,) + shape)
            x = tf.cast(x, tf.float32) if dtype == tf.uint8 else x
            for layer in augment.layers if augment is not None else ():
                x = layer(x, training=True)  # one by one: a layer, not a Sequential, runs on TensorFlow in tf.data
            return (x, *rest)

        return ds.map(_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)

    def _image_loader(self, src: inputs.TrainingData, split: str, cache_bytes: int) -> Any:
        items = src.splits[split][0]
        size = self.cfg.image_size
        n = len(items)
        cache = np.zeros((n, size, size, 3), np.uint8) if n * size * size * 3 <= cache_bytes else None
        done = np.zeros(n, bool)

        def one(i: int) -> np.ndarray:
            if src.kind == "arrays":
                return np.asarray(items[i], np.uint8)
            if cache is not None and done[i]:
                return cache[i]
            img = load_resized(str(items[i]), size, src.resize)
            if cache is not None:  # decoded once, then read from RAM (as the single-process .cache())
                cache[i] = img
                done[i] = True
            return img

        return lambda idx: np.stack([one(int(i)) for i in np.asarray(idx)])

    def images(self, src: inputs.TrainingData, split: str, *, shuffle: bool, seed: int, augment: Any = None,
               cache_bytes: int = 0, phase: int = 0, first_epoch: int = 0) -> Any:
        rows, weights = self._rows(src.count(split), shuffle, seed, phase, first_epoch)
        size = self.cfg.image_size
        return self._dataset(rows, weights, src.labels(split), len(src.classes),
                             self._image_loader(src, split, cache_bytes), tf.uint8, (size, size, 3), augment)

    def feature_data(self, features: np.ndarray, labels: np.ndarray, k: int, *, shuffle: bool, seed: int,
                     phase: int = 0, first_epoch: int = 0) -> Any:
        rows, weights = self._rows(len(labels), shuffle, seed, phase, first_epoch)
        return self._dataset(rows, weights, labels, k, lambda idx: np.asarray(features[np.asarray(idx)]),
                             tf.as_dtype(features.dtype), tuple(features.shape[1:]))

    # -- the feature cache: each worker computes its rows, every worker keeps all of them
    def use_cache(self) -> bool:
        return self.cfg.cache_features != "off"

    def cache_dir(self, out: Path) -> Path:
        if self.chief:
            return out / "cache"
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"edgeport-worker{self.process_id}-cache-"))
        return self._scratch

    def extract_features(self, models: Models, src: inputs.TrainingData, split: str,
                         disk_path: Path | None) -> np.ndarray:
        model = models.features
        fn = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0],
                     out_shardings=self.replicated)
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        n = src.count(split)
        dtype = np.dtype(keras.backend.standardize_dtype(model.output.dtype))
        out = inputs.feature_store(disk_path, dtype, (n,) + tuple(models.feature_shape))
        rows, _ = self._padded_rows(n)
        load = self._image_loader(src, split, 0)
        at = 0
        for start in range(0, len(rows), self.local_batch):
            x = load(rows[start:start + self.local_batch]).astype(np.float32)
            full = fn(tv, ntv, jax.make_array_from_process_local_data(self.batch_sharding, x))
            got = np.asarray(full.addressable_data(0))[:n - at]
            out[at:at + len(got)] = got
            at += len(got)
        if isinstance(out, np.memmap):
            out.flush()
        return out

    # -- training and the final predictions
    def fit(self, trainer: Any, train_ds: Any, val_ds: Any, epochs: int, initial_epoch: int, callbacks: list[Any],
            **common: Any) -> None:
        trainer.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
                    steps_per_epoch=self._steps, callbacks=callbacks, **common)

    def deploy_model(self, models: Models) -> Any:
        twin = self.twin(models.plain)
        with self.local():
            set_twin_weights(twin, self.values(models.plain.weights), models.plain.name)
        return twin

    def predict(self, model: Any, src: inputs.TrainingData, split: str, ds: Any = None) -> np.ndarray:
        """``model`` (this process's own) on this worker's rows; every worker gets all rows' outputs."""
        n = src.count(split)
        rows, _ = self._padded_rows(n)
        load = self._image_loader(src, split, 0)
        with self.local():
            fn = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])
            tv = [v.value for v in model.trainable_variables]
            ntv = [v.value for v in model.non_trainable_variables]
            mine = np.concatenate([np.asarray(fn(tv, ntv, load(rows[s:s + self.local_batch]).astype(np.float32)))
                                   for s in range(0, len(rows), self.local_batch)])
        everyone = np.asarray(multihost_utils.process_allgather(mine))  # [processes, rows, classes]
        b, k = self.local_batch, mine.shape[-1]
        ordered = everyone.reshape(self.processes, -1, b, k).transpose(1, 0, 2, 3).reshape(-1, k)
        return ordered[:n].astype(np.float64)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
