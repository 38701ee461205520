"""Classify frames with an exported model: contract, labels and engine from the artifact.

    with Classifier.open("export/") as clf:          # best artifact for the engines here
        clf.classify("photo.jpg")                    # [(label, probability), ...], best first
        clf.classify(frame_bgr)                      # an OpenCV frame (BGR), or color="rgb" for RGB arrays
        clf.classify([img1, img2])                   # a batch: one list per image

The input contract (size, resize method, value range) and the labels come from
the artifact's embedded edgeport metadata and, when present, manifest.json
(whose sha256 must then match the file). Preprocessing is one OpenCV resize
plus a vectorised cast/quantisation, identical to training's.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeport.contract import InputContract, ModelInfo
from edgeport.errors import ConfigError, EdgeportError, MissingDependencyError, ModelError
from edgeport.imaging import resize
from edgeport.manifest import Artifact, read_manifest, verify_sha256
from edgeport.manifest import list_artifacts as manifest_artifacts
from edgeport.metadata import read_model_info
from edgeport.metrics import top_k
from edgeport.runtime.engines import (
    ENGINES,
    Engine,
    TensorInfo,
    create_engine,
    engines_for,
    install_hint,
    model_suffixes,
)
from edgeport.schemes import precision_label, precision_of, rank_of

log = logging.getLogger(__name__)


def _embedded_scheme(path: Path) -> str | None:
    """The scheme recorded in a file's own metadata (None when unreadable: it fails later, clearly)."""
    try:
        info = read_model_info(path)
    except EdgeportError:
        return None
    return info.scheme if info is not None and info.scheme else None


def list_artifacts(directory: str | os.PathLike[str]) -> list[Artifact]:
    """The deployable artifacts of an export directory: manifest entries with status ok whose file
    exists, or, without a manifest, its .tflite/.onnx files."""
    arts = [a for a in manifest_artifacts(directory, embedded_scheme=_embedded_scheme) if a.ok]
    unusable = [a for a in arts if not a.path.is_file()]
    if unusable:
        from edgeport.runtime.paths import what_is

        for a in unusable:  # said, not silent: another (e.g. float) artifact runs instead
            log.warning("%s is listed as exported (%s) but it %s; skipped, so another artifact runs "
                        "instead: copy the export again", a.file, a.scheme, what_is(a.path).removeprefix("which "))
    return [a for a in arts if a.path.is_file()]


def _format_of(engine: str) -> str | None:
    suffixes = ENGINES.get(engine).suffixes
    return suffixes[0].lstrip(".") if suffixes else None


def _why_not(suffixes: list[str]) -> str:
    """What to install for these file types, and why an installed engine for them does not work."""
    hints = "; ".join(f"for {s} files: {install_hint(s)}" for s in suffixes)
    problems = [p for n in ENGINES.names() if (c := ENGINES.get(n)).preference is not None
                and set(c.suffixes) & set(suffixes) and (p := c.problem())]
    return hints + "".join(f". Note: {p}" for p in problems)


def select_artifact(
    directory: str | os.PathLike[str], engine: str | None = None, scheme: str | None = None
) -> tuple[Artifact, str]:
    """Pick (artifact, engine name) from an export directory for the engines installed here.

    Preference: int8 TFLite with litert/tflite-runtime, then fp32 TFLite, ..., then ONNX with
    onnxruntime; ``scheme`` (an artifact's scheme, e.g. 'onnx-int8', or a precision such
    as 'int8' matching TFLite and ONNX) and ``engine`` narrow the choice.
    """
    arts = list_artifacts(directory)
    if not arts:
        raise ModelError(
            f"expected model_*.tflite / model*.onnx artifacts in {directory}, found none; "
            f"run `edgeport export` first or pass a model file"
        )
    arts.sort(key=lambda a: rank_of(a.scheme, a.format))
    if engine:
        ENGINES.get(engine)  # unknown name -> ConfigError listing them
        fmt = _format_of(engine)
        arts = [a for a in arts if a.format == fmt]
        if not arts:
            raise ConfigError(f"engine '{engine}' runs {fmt} files, but {directory} has none; choose another --engine")
    if scheme:
        known = sorted({a.scheme for a in arts})
        exact = [a for a in arts if a.scheme == scheme]  # e.g. onnx-int8
        arts = exact or [a for a in arts if precision_of(a.scheme) == precision_of(scheme)]  # int8: tflite or onnx
        if not arts:
            raise ConfigError(
                f"expected --scheme to be one of {', '.join(known)} in {directory}"
                f"{' for engine ' + engine if engine else ''}, received '{scheme}'"
            )
    if engine:
        return arts[0], engine
    for a in arts:
        names = engines_for(a.path)
        if names:
            return a, names[0]
    raise MissingDependencyError(
        f"no installed engine can run the artifacts in {directory} "
        f"({', '.join(a.path.name for a in arts)}); install one: "
        + _why_not(list(dict.fromkeys(a.path.suffix.lower() for a in arts)))
    )


# --- pure preprocessing / postprocessing -------------------------------------------------


def to_input_tensor(rgb: np.ndarray, contract: InputContract, tensor: TensorInfo) -> np.ndarray:
    """Resize an HxWx3 uint8 RGB image per the contract and cast/quantise it for ``tensor``.

    Values follow the contract's range (0..255 = raw pixels); integer inputs are quantised
    with the tensor's scale/zero-point, uint8 pixels go straight into 0..255 uint8 models.
    """
    if rgb.ndim != 3 or rgb.shape[2] != contract.channels or rgb.dtype != np.uint8:
        raise ModelError(
            f"expected an HxWx{contract.channels} uint8 image, received {rgb.dtype}{list(rgb.shape)}"
        )
    img = resize(rgb, (contract.height, contract.width), contract.resize)
    if contract.layout.upper() == "NCHW":
        img = img.transpose(2, 0, 1)
    lo, hi = contract.range
    raw_range = (lo, hi) == (0.0, 255.0)
    dt = tensor.dtype
    if np.issubdtype(dt, np.integer):
        scale, zp = (tensor.scale or 1.0), tensor.zero_point
        if raw_range and scale == 1.0:
            if dt == np.uint8 and zp == 0:
                x = img
            else:  # e.g. int8 with zero-point -128: q = pixel - 128
                x = (img.astype(np.int16) + zp).astype(dt)
        else:
            real = img.astype(np.float32)
            if not raw_range:
                real = real * ((hi - lo) / 255.0) + lo
            info = np.iinfo(dt)
            x = np.clip(np.rint(real / scale + zp), info.min, info.max).astype(dt)
    else:
        x = img.astype(dt)
        if not raw_range:
            x = x * dt.type((hi - lo) / 255.0) + dt.type(lo)
    x = x[np.newaxis]
    if tuple(x.shape) != tuple(tensor.shape):
        raise ModelError(
            f"the model's input is {list(tensor.shape)} but its contract says "
            f"{contract.layout} {contract.height}x{contract.width}x{contract.channels}; re-export the model"
        )
    return x


def to_probabilities(raw: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Dequantise a raw output (batch 1) into float32 probabilities of shape [num_classes]."""
    out = raw.reshape(-1)
    if tensor.quantized:
        return (out.astype(np.float32) - np.float32(tensor.zero_point)) * np.float32(tensor.scale)
    return out.astype(np.float32, copy=False)


def top_labels(probs: np.ndarray, labels: tuple[str, ...], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable (label, probability) pairs, best first (:func:`edgeport.metrics.top_k`'s order)."""
    idx = top_k(probs, max(1, int(k)))[0]
    return [(labels[i] if i < len(labels) else str(i), float(probs[i])) for i in idx]


def as_rgb(image: Any, color: str = "bgr") -> np.ndarray:
    """An HxWx3 uint8 RGB array from a path, a PIL image or a uint8 array in ``color`` order (see
    :meth:`Classifier.classify`)."""
    order = str(color).lower()
    if order not in ("bgr", "rgb"):
        raise ConfigError(f"expected color 'bgr' or 'rgb', received {color!r}")
    if image is None:
        raise ModelError("expected an image (a path, a PIL image or a uint8 array), received None; "
                         "cv2.imread returns None when it cannot read a file: check the path")
    if isinstance(image, (str, os.PathLike)):
        from edgeport.imaging import load_rgb

        return load_rgb(image)
    if type(image).__module__.startswith("PIL.") and hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if not isinstance(image, np.ndarray):
        raise ModelError(f"expected an image (a path, a PIL image or a uint8 numpy array), "
                         f"received {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ModelError(f"expected a uint8 image array (0-255), received {image.dtype}{list(image.shape)}; "
                         "convert it, e.g. (x * 255).clip(0, 255).astype('uint8') for floats in 0..1")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return np.ascontiguousarray(np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2))
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ModelError(f"expected an HxWx3 (or HxW, HxWx4) uint8 image, received shape {list(image.shape)}")
    image = image[:, :, :3]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if order == "bgr" else np.ascontiguousarray(image)


# --- the resource ------------------------------------------------------------------------


def load_model_info(path: str | os.PathLike[str], verify_hash: bool = True) -> ModelInfo:
    """Labels and input contract of one artifact, checked before it runs.

    From the file's embedded edgeport metadata and, when the artifact sits in
    an export directory, its manifest.json: the manifest's sha256 of the file
    must match (what runs is what export verified), and the embedded labels and
    contract must be the manifest's. A file without metadata takes them from
    the manifest; with neither, ModelError. ``verify_hash=False`` skips the
    hash for a caller that has just verified it (``edgeport bench`` does, once).
    """
    path = Path(path)
    manifest = read_manifest(path.parent)
    entry = manifest.entry_for(path) if manifest is not None else None
    if entry is not None and verify_hash:
        verify_sha256(path, entry.sha256, str(manifest.path))
    info = read_model_info(path)
    if info is not None and manifest is not None:
        if manifest.labels is not None and tuple(info.labels) != manifest.labels:
            raise ModelError(
                f"expected the labels embedded in {path.name} to be those of {manifest.path} "
                f"({', '.join(manifest.labels)}), received {', '.join(info.labels)}: the file belongs to another "
                "export; copy the whole export directory again"
            )
        if manifest.input is not None and info.input != manifest.input:
            raise ModelError(
                f"expected the input contract embedded in {path.name} to be that of {manifest.path} "
                f"({manifest.input}), received {info.input}; copy the whole export directory again"
            )
    if info is not None:
        return info
    if manifest is not None and manifest.labels and manifest.input:
        return ModelInfo(labels=manifest.labels, input=manifest.input, scheme=entry.scheme if entry else "")
    raise ModelError(
        f"expected edgeport metadata (labels and input contract) in {path.name} or a manifest.json "
        f"next to it, found neither; export the model with `edgeport export`"
    )


class Classifier:
    """An engine plus the model's contract and labels; a context manager."""

    def __init__(self, engine: Engine, info: ModelInfo, top_k: int = 5) -> None:
        self.engine = engine
        self.info = info
        self.labels: tuple[str, ...] = tuple(info.labels)
        self.top_k = top_k
        self.contract = info.input
        n_out = int(np.prod(engine.output.shape))
        if self.labels and n_out != len(self.labels):
            raise ModelError(
                f"expected {len(self.labels)} outputs (one per label) from {engine.model_path.name}, "
                f"received {n_out}; the labels do not belong to this model"
            )

    @property
    def precision(self) -> str:
        """What the model really computes in: export's own words (e.g. 'int8, 39 ops float (0.4 % of MACs)',
        embedded in the file), else the scheme catalogue's label."""
        said = self.info.extra.get("precision") if isinstance(self.info.extra, dict) else None
        if isinstance(said, str) and said:
            return said
        return precision_label(self.info.scheme, "onnx" if self.engine.model_path.suffix == ".onnx" else "tflite")

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        engine: str | None = None,
        scheme: str | None = None,
        threads: int | None = None,
        top_k: int = 5,
        **engine_opts: Any,
    ) -> "Classifier":
        """Open an artifact, or the best artifact of an export directory, with an engine."""
        p = Path(path)
        if p.is_dir():
            art, engine = select_artifact(p, engine, scheme)
            model = art.path
        elif p.is_file():
            model = p
            if engine is None:
                names = engines_for(p)
                if not names:
                    suffix = p.suffix.lower()
                    if suffix not in model_suffixes():
                        raise ModelError(f"expected a {' or '.join(model_suffixes())} file or an export directory, "
                                         f"received {p}")
                    raise MissingDependencyError(f"no installed engine runs {suffix} files; install one: "
                                                 + _why_not([suffix]))
                engine = names[0]
        else:
            from edgeport.runtime.paths import what_is

            raise ModelError(f"expected a model file or an export directory, received '{path}' {what_is(p)}")
        info = load_model_info(model)
        eng = create_engine(engine, model, threads=threads, **engine_opts)
        try:
            return cls(eng, info, top_k=top_k)
        except Exception:
            eng.close()
            raise

    # -- steps (timed separately by the camera loop) ----------------------------------------
    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> the model's input tensor (batch 1)."""
        return to_input_tensor(rgb, self.contract, self.engine.input)

    def prepare_bgr(self, bgr: np.ndarray) -> np.ndarray:
        """Like :meth:`prepare` for an OpenCV BGR frame (resized first, then channels swapped)."""
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ModelError(f"expected an HxWx3 uint8 BGR frame, received {bgr.dtype}{list(bgr.shape)}")
        small = resize(bgr, (self.contract.height, self.contract.width), self.contract.resize)
        return self.prepare(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))

    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        """Raw engine output -> float32 probabilities [num_classes]; a NaN or infinite one is a ModelError."""
        probs = to_probabilities(raw, self.engine.output)
        if not np.isfinite(probs).all():  # a damaged weight: it would otherwise be printed as a classification
            bad = int(probs.size - np.isfinite(probs).sum())
            raise ModelError(f"expected finite probabilities from {self.engine.model_path.name}, received {bad} NaN "
                             f"or infinite of {probs.size}; the model file is damaged (or its float range "
                             "overflows): copy it again or re-export it")
        return probs

    def predict(self, tensor: np.ndarray) -> np.ndarray:
        """Run a prepared tensor; float32 probabilities [num_classes]."""
        return self.postprocess(self.engine.invoke(tensor))

    def top(self, probs: np.ndarray, k: int | None = None) -> list[tuple[str, float]]:
        return top_labels(probs, self.labels, k or self.top_k)

    # -- one call ---------------------------------------------------------------------------
    def classify_rgb(self, rgb: np.ndarray, top_k: int | None = None) -> list[tuple[str, float]]:
        """Top-k (label, probability) of an RGB uint8 image."""
        return self.classify(rgb, top_k, color="rgb")

    def classify(self, image: Any, top_k: int | None = None, color: str = "bgr") -> list:
        """Top-k ``[(label, probability), ...]`` of one image, best first; a list of those for a list of images.

        ``image``: a file path; a PIL image; or a uint8 numpy array, HxWx3 in ``color`` order ("bgr",
        the default, is what OpenCV's ``imread`` and camera frames give; "rgb" for PIL, imageio, matplotlib),
        HxW grayscale, or HxWx4 with alpha (dropped). Anything else, including the None that ``cv2.imread``
        returns for a file it cannot read, is a ModelError saying what was expected.
        """
        if isinstance(image, (list, tuple)):
            return [self.classify(item, top_k, color) for item in image]
        if (str(color).lower() == "bgr" and isinstance(image, np.ndarray) and image.dtype == np.uint8
                and image.ndim == 3 and image.shape[2] == 3):
            return self.top(self.predict(self.prepare_bgr(image)), top_k)  # a camera frame: resize, then swap
        return self.top(self.predict(self.prepare(as_rgb(image, color))), top_k)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Classifier({self.engine!r}, scheme={self.info.scheme!r}, labels={len(self.labels)})"
