"""The images an export runs on: calibration, verification and golden sets (deterministic, stratified).

* :func:`calibration_images`: the run's train split (or ``--calibration-data``),
  a stratified pick, for the int8 converters' activation ranges;
* :func:`verification_set`: the held-out split with the Keras model's
  probabilities, that every artifact is compared with;
* :func:`golden_set`: a few held-out images in their stored form (larger than the
  model's input), with the Keras model's probabilities, written into the export
  for `edgeport check`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import numpy as np

from edgeport.contract import InputContract
from edgeport.data import Sample, scan
from edgeport.errors import ModelError
from edgeport.evalset import EvalSet
from edgeport.export.config import ExportConfig
from edgeport.imaging import ImageDecodeError, load_resized
from edgeport.progress import Progress
from edgeport.rundir import RunInfo
from edgeport.sampling import round_robin, stratified_indices

log = logging.getLogger(__name__)

#: a calibration set below these sizes gets a warning (manifest and log)
MIN_CALIBRATION_IMAGES = 100
MIN_CALIBRATION_PER_CLASS = 5


def stratified_pick(samples: list[Sample], n: int, seed: int) -> list[Sample]:
    """Up to ``n`` samples spread evenly over classes (round robin), fixed for a seed."""
    idx = stratified_indices(np.array([s.label for s in samples], np.int64), n, seed)
    return sorted((samples[i] for i in idx), key=lambda s: (s.label, s.path))


def load_images(
    samples: list[Sample], contract: InputContract, desc: str, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Sample]]:
    """(N,H,W,3 uint8 RGB, labels, kept samples), decoded/resized as in training.

    Undecodable files are skipped with a warning.
    """
    images, kept = [], []
    with Progress(len(samples), desc, enabled=progress) as bar:
        for s in samples:
            try:
                images.append(load_resized(s.path, (contract.height, contract.width), contract.resize))
                kept.append(s)
            except ImageDecodeError as exc:
                log.warning("skipping %s", exc)
            bar.update()
    h, w = contract.height, contract.width
    arr = np.stack(images) if images else np.zeros((0, h, w, 3), np.uint8)
    return arr, np.array([s.label for s in kept], dtype=np.int64), kept


def per_class_counts(samples: list[Sample], labels: tuple[str, ...]) -> dict[str, int]:
    """Images per class name (classes absent from ``labels`` keep their index)."""
    c = Counter(s.label for s in samples)
    return {(labels[k] if k < len(labels) else str(k)): int(v) for k, v in sorted(c.items())}


def calibration_images(cfg: ExportConfig, run: RunInfo, contract: InputContract) -> tuple[np.ndarray, dict]:
    """The calibration images and the manifest's ``calibration`` entry (with warnings for a small set)."""
    if cfg.calibration_data:
        ds = scan(cfg.calibration_data, seed=cfg.seed)
        pool, names, source = list(ds.samples), ds.classes, str(cfg.calibration_data)  # as given
    else:
        pool, names, source = run.samples("train"), run.labels, "train split of data_split.csv"
    picked = stratified_pick(pool, cfg.calibration_samples, cfg.seed)
    images, _, kept = load_images(picked, contract, "loading calibration images", cfg.progress)
    per_class = per_class_counts(kept, names)
    info = {"source": source, "images": len(kept), "requested": cfg.calibration_samples,
            "seed": cfg.seed, "per_class": per_class, "input_range": [0, 255], "augmentation": False,
            "method": cfg.calibration_method}
    log.info("calibration: %d images from %s, per class %s", len(kept), source, per_class)
    warnings = []
    if len(kept) < MIN_CALIBRATION_IMAGES:
        warnings.append(f"only {len(kept)} calibration images (fewer than {MIN_CALIBRATION_IMAGES}): int8 ranges "
                        "may not cover what the device sees; raise --calibration-samples or pass --calibration-data")
    few = {c: n for c, n in per_class.items() if n < MIN_CALIBRATION_PER_CLASS}
    missing = [c for c in names if c not in per_class]
    if few or missing:
        warnings.append("classes with fewer than {} calibration images: {}".format(
            MIN_CALIBRATION_PER_CLASS, ", ".join([f"{c} ({n})" for c, n in few.items()] + [f"{c} (0)" for c in missing])))
    for w in warnings:
        log.warning("calibration: %s", w)
    if warnings:
        info["warnings"] = warnings
    return images, info


def _keras_probabilities(model, images: np.ndarray, what: str) -> np.ndarray:
    reference = np.asarray(model.predict(images.astype(np.float32), batch_size=32, verbose=0), np.float32)
    bad = int((~np.isfinite(reference).all(axis=1)).sum())
    if bad:
        raise ModelError(f"expected finite probabilities from the run's model, received NaN/inf on {bad} of "
                         f"{len(reference)} {what}: its training diverged. Train it again (edgeport build "
                         "now stops on a diverged run and says what to change)")
    return reference


def verification_set(cfg: ExportConfig, run: RunInfo, contract: InputContract,
                     model) -> EvalSet | None:
    """A stratified pick of the held-out split with the Keras model's probabilities (None: no such split)."""
    held = run.held_out()
    if held is None:
        log.warning("no val/test images in %s: artifacts are loaded but not compared with Keras",
                    run.run_dir / "data_split.csv")
        return None
    split, samples = held
    picked = stratified_pick(samples, cfg.verify_samples or len(samples), cfg.seed)
    images, labels, kept = load_images(picked, contract, f"loading {split} images", cfg.progress)
    t0 = time.perf_counter()
    reference = _keras_probabilities(model, images, f"{split} images")
    # classes in turn, so that any prefix a time-capped verification gets through is balanced
    order = round_robin(labels, seed=cfg.seed)
    ids = tuple(_relative(s.path, run) for s in kept)
    data = EvalSet(images, labels, reference, run.labels, ids=ids).take(order)
    info = {"split": split, "images": len(kept), "available": len(samples),
            "per_class": per_class_counts(kept, run.labels), "keras_top1_pct": data.reference_top1_pct,
            "keras_seconds": round(time.perf_counter() - t0, 3)}
    log.info("verification: %d %s images, per class %s; Keras top-1 %.2f %%", len(kept), split,
             info["per_class"], info["keras_top1_pct"] or 0.0)
    return EvalSet(data.images, data.labels, data.reference, run.labels, info, data.ids)


def _relative(path: str, run: RunInfo) -> str:
    """An image's path as the manifest records it: relative to the data's root when the run's split knows it."""
    import os

    root = getattr(run.split, "root", None)
    try:
        return os.path.relpath(path, root) if root else str(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def golden_set(cfg: ExportConfig, run: RunInfo, contract: InputContract,
               model) -> EvalSet | None:
    """A stratified pick of the held-out split, stored smaller than the originals but larger than the model's
    input, with the Keras model's probabilities on exactly those pixels after the contract's resize."""
    from edgeport.golden import stored_form
    from edgeport.imaging import load_rgb, resize

    held = run.held_out()
    if cfg.golden_images == 0 or held is None:
        return None
    images, targets = [], []
    for sample in stratified_pick(held[1], cfg.golden_images, cfg.seed + 1):
        try:
            images.append(stored_form(load_rgb(sample.path), contract))
        except ImageDecodeError as exc:
            log.warning("golden set: skipping %s", exc)
            continue
        targets.append(sample.label)
    if not images:
        return None
    batch = np.stack([resize(img, (contract.height, contract.width), contract.resize) for img in images])
    reference = _keras_probabilities(model, batch, "golden images")
    return EvalSet(images, np.asarray(targets, np.int64), reference, run.labels)
