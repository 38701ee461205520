"""The training data: folders/CSV via edgeport.data or tfds:NAME, as tf.data pipelines.

Images are decoded and resized by :mod:`edgeport.imaging` (inside
``tf.numpy_function``, parallel, prefetched), so training sees exactly the
pixels the device runtime will. Labels are one-hot (label smoothing).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeport import data as epdata
from edgeport.build.config import BuildConfig
from edgeport.contract import DEFAULT_RESIZE
from edgeport.errors import DataError, MissingDependencyError
from edgeport.imaging import load_resized, resize

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """A labelled image set split into train/val(/test), read as training reads it."""

    classes: tuple[str, ...]
    splits: dict[str, tuple[list[Any], np.ndarray]]  #: split -> (items, int labels); items are paths or arrays
    summary: dict[str, Any]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    dataset: epdata.DataSet | None = None  #: set for folder/CSV data
    kind: str = "files"  #: 'files' (paths) or 'arrays' (decoded uint8 images, tfds)
    resize: str = DEFAULT_RESIZE  #: how images are resized to the model (--resize; recorded in the contract)

    def count(self, split: str) -> int:
        return len(self.splits.get(split, ((), np.zeros(0)))[1])

    def labels(self, split: str) -> np.ndarray:
        return self.splits[split][1]


def load_source(cfg: BuildConfig) -> TrainingData:
    """Scan ``cfg.data`` (dropping undecodable files) or load ``tfds:NAME``."""
    if str(cfg.data).startswith("tfds:"):
        return _load_tfds(cfg)
    ds = epdata.scan(cfg.data, cfg.val_fraction, cfg.seed)
    ds = epdata.drop_unreadable(ds)
    if ds.skipped:
        log.warning("skipped %d unreadable file(s) (listed in skipped.txt)", len(ds.skipped))
    splits = {}
    for name in epdata.SPLITS:
        samples = ds.split(name)
        if samples:
            splits[name] = ([s.path for s in samples], np.array([s.label for s in samples], np.int64))
    if "val" not in splits:
        raise DataError(f"expected validation images in {cfg.data}, found none; add a val split or "
                        "use class folders with --val-fraction")
    return TrainingData(ds.classes, splits, ds.summary(), list(ds.skipped), ds, resize=cfg.resize)


def _load_tfds(cfg: BuildConfig) -> TrainingData:
    name = str(cfg.data)[len("tfds:"):]
    try:
        from edgeport._lazy import require

        tfds = require("tensorflow_datasets", f"reading {cfg.data}")
    except MissingDependencyError as exc:
        raise DataError(
            f"{exc}. Alternatives: --data FOLDER (class folders or train/val split folders) "
            "or --data FILE.csv (path,label[,split])"
        ) from exc
    try:
        builder = tfds.builder(name)
        builder.download_and_prepare()
    except Exception as exc:  # tfds raises many types (network, unknown name)
        raise DataError(
            f"could not load TensorFlow Datasets '{name}' ({str(exc).splitlines()[0]}); it needs internet the "
            "first time (or a prepared ~/tensorflow_datasets). Alternatives: --data FOLDER or --data FILE.csv"
        ) from exc
    info = builder.info
    classes = tuple(info.features["label"].names)
    available = list(info.splits.keys())
    val_name = next((s for s in ("validation", "val", "test") if s in available), None)
    read = {"train": "train" if val_name else f"train[{int(100 * cfg.val_fraction)}%:]",
            "val": val_name or f"train[:{int(100 * cfg.val_fraction)}%]"}
    splits = {}
    for split, spec in read.items():
        images, labels = [], []
        for img, lab in tfds.as_numpy(builder.as_dataset(split=spec, as_supervised=True)):
            if img.ndim == 2 or img.shape[-1] == 1:
                img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
            images.append(resize(img[..., :3].astype(np.uint8), cfg.image_size, cfg.resize))
            labels.append(int(lab))
        splits[split] = (images, np.array(labels, np.int64))
    counts = {s: {c: int((lab == i).sum()) for i, c in enumerate(classes)} for s, (_, lab) in splits.items()}
    summary = {"root": str(cfg.data), "layout": "tfds", "classes": list(classes), "counts": counts,
               "num_skipped": 0, "skipped": []}
    return TrainingData(classes, splits, summary, [], None, kind="arrays", resize=cfg.resize)


def _tf() -> Any:
    from edgeport._lazy import require

    return require("tensorflow", "the training input pipeline")


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """'balanced' weights: n / (k * count_c)."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    n = float(counts.sum())
    return {i: (n / (num_classes * c) if c else 0.0) for i, c in enumerate(counts)}


def augmenter(seed: int) -> Any:
    """Flip, small rotation/zoom/contrast (Keras preprocessing layers, run in tf.data)."""
    from edgeport._lazy import require

    keras = require("keras", "augmentation")
    L = keras.layers
    return keras.Sequential([
        L.RandomFlip("horizontal", seed=seed),
        L.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1),
        L.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
        L.RandomContrast(0.1, seed=seed + 3),
    ], name="augment")


def image_dataset(src: TrainingData, split: str, size: int, batch: int, *, shuffle: bool, seed: int,
                  augment: Any = None, cache_bytes: int = 0) -> Any:
    """Batches of (float32 raw RGB 0..255 [B,S,S,3], one-hot labels) for ``split``."""
    tf = _tf()
    items, labels = src.splits[split]
    k = len(src.classes)
    onehot = np.eye(k, dtype=np.float32)[labels]
    n = len(labels)
    if src.kind == "arrays":
        ds = tf.data.Dataset.from_tensor_slices((np.stack(items).astype(np.uint8), onehot))
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    else:
        def _load(path: Any) -> np.ndarray:
            return load_resized(path.decode() if isinstance(path, bytes) else str(path), size, src.resize)

        def _map(path: Any, y: Any) -> Any:
            img = tf.numpy_function(_load, [path], tf.uint8, stateful=False)
            img.set_shape((size, size, 3))
            return img, y

        ds = tf.data.Dataset.from_tensor_slices((np.array(items), onehot))
        if n * size * size * 3 <= cache_bytes:  # decoded uint8 images fit the RAM budget: decode once
            ds = ds.map(_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
            if shuffle:
                ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        else:  # shuffle paths, decode every epoch
            if shuffle:
                ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
            ds = ds.map(_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(tf.cast(x, tf.float32), training=True), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def feature_store(disk_path: Any, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Room for the feature cache: a RAM array, or an .npy memmap at ``disk_path`` (its folder made)."""
    if disk_path is None:
        return np.empty(shape, dtype)
    disk_path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(str(disk_path), mode="w+", dtype=dtype, shape=shape)


def feature_dataset(features: np.ndarray, labels: np.ndarray, num_classes: int, batch: int, *,
                    shuffle: bool, seed: int) -> Any:
    """Batches of cached features (RAM array or disk memmap) with one-hot labels.

    Shuffled exactly like :func:`image_dataset` (same count and seed), so the
    cached and uncached paths see the same batches.
    """
    tf = _tf()
    n = len(labels)
    onehot = np.eye(num_classes, dtype=np.float32)[labels]
    dtype = tf.as_dtype(features.dtype)
    shape = features.shape[1:]

    def _gather(idx: np.ndarray) -> np.ndarray:
        return np.asarray(features[np.asarray(idx)])

    def _map(idx: Any, y: Any) -> Any:
        x = tf.numpy_function(_gather, [idx], dtype, stateful=False)
        x.set_shape((None,) + tuple(shape))
        return x, y

    ds = tf.data.Dataset.from_tensor_slices((np.arange(n, dtype=np.int64), onehot))
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch).map(_map, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def steps(n: int, batch: int) -> int:
    return max(1, math.ceil(n / batch))
