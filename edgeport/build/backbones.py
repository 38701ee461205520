"""Backbone registry: feature extractors with their input scaling and fine-tune stages.

Each entry is a :class:`BackboneSpec`. ``create_backbone(name, image_size,
weights)`` returns the Keras model (no top) with weights ``imagenet`` (Keras'
own download/cache), ``none`` or a local weights file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgeport.errors import ConfigError, ModelError
from edgeport.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and how it splits into fine-tune stages."""

    name: str
    factory: Callable[[int, Any], Any]  #: (image_size, keras weights arg) -> keras.Model
    scaling: str  #: 'tf' (x/127.5-1 layer added by edgeport), 'unit' (x/255) or 'builtin'
    stages: tuple[str, ...]  #: layer-name prefix where each stage starts, bottom to top
    imagenet: bool = True
    min_size: int = 32


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def _register(spec: BackboneSpec) -> BackboneSpec:
    BACKBONES.register(spec.name)(spec)
    return spec


def _apps() -> Any:
    from edgeport._lazy import require

    return require("keras", "building a backbone").applications


def _resnet50v2(size: int, weights: Any) -> Any:
    return _apps().ResNet50V2(include_top=False, weights=weights, input_shape=(size, size, 3))


def _mobilenet_v2(size: int, weights: Any) -> Any:
    return _apps().MobileNetV2(include_top=False, weights=weights, input_shape=(size, size, 3))


def _mobilenet_v3_small(size: int, weights: Any) -> Any:
    return _apps().MobileNetV3Small(include_top=False, weights=weights, input_shape=(size, size, 3),
                                    include_preprocessing=True)


def _mobilenet_v3_large(size: int, weights: Any) -> Any:
    return _apps().MobileNetV3Large(include_top=False, weights=weights, input_shape=(size, size, 3),
                                    include_preprocessing=True)


def _efficientnet_b0(size: int, weights: Any) -> Any:
    return _apps().EfficientNetB0(include_top=False, weights=weights, input_shape=(size, size, 3))


def _tiny(size: int, weights: Any) -> Any:
    """Three strided conv-BN-ReLU stages: a seconds-fast stand-in for tests."""
    from edgeport._lazy import require

    keras = require("keras", "building a backbone")
    inp = keras.Input((size, size, 3), name="tiny_input")
    x = inp
    for i, filters in enumerate((16, 32, 64), start=1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"tiny_s{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"tiny_s{i}_bn")(x)
        x = keras.layers.ReLU(name=f"tiny_s{i}_relu")(x)
    return keras.Model(inp, x, name="tiny")


_register(BackboneSpec("resnet50v2", _resnet50v2, "tf",
                       ("conv1", "conv2_", "conv3_", "conv4_", "conv5_")))
_register(BackboneSpec("mobilenet_v2", _mobilenet_v2, "tf",
                       ("Conv1", "block_1_", "block_3_", "block_6_", "block_13_")))
_register(BackboneSpec("mobilenet_v3_small", _mobilenet_v3_small, "builtin",
                       ("conv", "expanded_conv_1_", "expanded_conv_3_", "expanded_conv_6_", "expanded_conv_8_")))
_register(BackboneSpec("mobilenet_v3_large", _mobilenet_v3_large, "builtin",
                       ("conv", "expanded_conv_1_", "expanded_conv_3_", "expanded_conv_6_", "expanded_conv_12_")))
_register(BackboneSpec("efficientnet_b0", _efficientnet_b0, "builtin",
                       ("stem_", "block2", "block3", "block4", "block6")))
_register(BackboneSpec("tiny", _tiny, "unit", ("tiny_s1_", "tiny_s2_", "tiny_s3_"), imagenet=False, min_size=8))


#: weights files Keras' load_weights reads, and the bytes each starts with
_WEIGHT_SUFFIXES = {".h5": b"\x89HDF\r\n\x1a\n", ".hdf5": b"\x89HDF\r\n\x1a\n", ".keras": b"PK\x03\x04", ".json": None}


def check_backbone(name: str, image_size: int, weights: str = "imagenet") -> BackboneSpec:
    """Every check of :func:`create_backbone` that needs no TensorFlow (run before --out is written).

    The backbone name, the image size, and the weights: ``none``, ``imagenet``
    for a backbone that has them, or an existing, readable weights file of a
    kind Keras loads (.weights.h5/.h5/.hdf5, .keras, .weights.json) whose first
    bytes say so.
    """
    spec = BACKBONES.get(name)
    if image_size < spec.min_size:
        raise ConfigError(
            f"expected --image-size >= {spec.min_size} for backbone {name}, received {image_size}"
        )
    choice = str(weights).strip()
    if choice.lower() == "none":
        return spec
    if choice.lower() == "imagenet":
        if not spec.imagenet:
            raise ConfigError(
                f"backbone {name} has no ImageNet weights; use --weights none or --weights PATH"
            )
        return spec
    path = Path(choice).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"expected --weights imagenet, none or the path of a weights file, received '{weights}' "
            f"({'a folder' if path.is_dir() else 'no such file'})"
        )
    suffix = path.suffix.lower()
    if suffix not in _WEIGHT_SUFFIXES:
        raise ConfigError(
            f"expected --weights to be a Keras weights file (.weights.h5, .h5, .hdf5, .keras or .weights.json), "
            f"received '{weights}'"
        )
    magic = _WEIGHT_SUFFIXES[suffix]
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ConfigError(f"expected a readable --weights file, could not read {path} ({exc.strerror or exc})") from exc
    if magic is not None and not head.startswith(magic):
        kind = "an HDF5" if suffix in (".h5", ".hdf5") else "a zip (.keras)"
        raise ConfigError(f"expected --weights {path} to be {kind} file, but its first bytes are {head[:8]!r}: "
                          "it is damaged or not a weights file")
    return spec


def create_backbone(name: str, image_size: int, weights: str = "imagenet") -> tuple[Any, BackboneSpec]:
    """Build backbone ``name`` at ``image_size`` with weights imagenet | none | PATH."""
    spec = check_backbone(name, image_size, weights)
    choice = str(weights).strip()
    if choice.lower() == "none":
        return spec.factory(image_size, None), spec
    if choice.lower() == "imagenet":
        try:
            return spec.factory(image_size, "imagenet"), spec
        except Exception as exc:  # Keras raises plain Exception for a failed download
            raise ModelError(
                f"expected Keras to load the ImageNet weights of {name} (downloaded once into ~/.keras/models), "
                f"but that failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
                "Offline, use --weights none (train from scratch) or --weights PATH "
                "(a local weights file, e.g. Keras' *_notop.h5 copied from a machine with internet)"
            ) from exc
    path = Path(choice).expanduser()
    model = spec.factory(image_size, None)
    try:
        model.load_weights(str(path))
    except Exception as exc:  # h5py/Keras raise many types for a wrong file
        raise ModelError(
            f"expected {path} to hold weights of backbone {name} at --image-size {image_size} "
            f"(a .weights.h5 or Keras .h5 file), but loading failed: {exc}; check --backbone or --weights"
        ) from exc
    log.info("loaded backbone weights from %s", path)
    return model, spec


def stage_starts(model: Any, spec: BackboneSpec) -> list[int]:
    """Index into ``model.layers`` where each stage of ``spec`` starts."""
    names = [layer.name for layer in model.layers]
    starts = []
    for prefix in spec.stages:
        idx = next((i for i, n in enumerate(names) if n.startswith(prefix)), None)
        if idx is None:
            raise ModelError(f"backbone {spec.name}: no layer starts with stage prefix '{prefix}'")
        starts.append(idx)
    return starts
