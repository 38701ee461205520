"""Head registry: the classifier put on top of a backbone's feature map.

Faithful to the seed recipe; every head ends in a float32 softmax (also under
mixed precision). A head is a Keras model ``feature map -> probabilities``
so it can be trained on cached features and reused in the full model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from edgeport.errors import ConfigError
from edgeport.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadArgs:
    """What a head factory gets (None means the head's own default)."""

    num_classes: int
    num_filters: int | None = None
    dense_units: int | None = None
    dropout: float | None = None
    backbone: str = "?"
    image_size: int = 0


HEADS: Registry[Callable[[Any, tuple[int, int, int], HeadArgs], Any]] = Registry("head")


def _too_small(head: str, need: int, shape: tuple[int, int, int], args: HeadArgs) -> ConfigError:
    return ConfigError(
        f"head {head} needs a feature map of at least {need}x{need}, backbone {args.backbone} gives "
        f"{shape[0]}x{shape[1]} at --image-size {args.image_size}; use a larger --image-size or head gap"
    )


def _padding(size: int, head: str) -> str:
    """'valid' (the recipe) when a 3x3 conv fits the current map, else 'same'."""
    if size >= 3:
        return "valid"
    log.info("head %s: feature map %dx%d is too small for a 'valid' 3x3 conv, using 'same' padding",
             head, size, size)
    return "same"


def _after(size: int, padding: str) -> int:
    return size - 2 if padding == "valid" else size


def _out(keras: Any, x: Any, n: int) -> Any:
    return keras.layers.Dense(n, activation="softmax", dtype="float32", name="predictions")(x)


@HEADS.register("conv")
def conv_head(keras: Any, shape: tuple[int, int, int], a: HeadArgs) -> Any:
    """Conv2D 64 3x3 relu -> Flatten -> Dense softmax."""
    inp = keras.Input(shape, name="features")
    x = keras.layers.Conv2D(a.num_filters or 64, 3, padding=_padding(min(shape[:2]), "conv"), activation="relu",
                            name="head_conv")(inp)
    x = keras.layers.Flatten(name="head_flatten")(x)
    return keras.Model(inp, _out(keras, x, a.num_classes), name="head")


@HEADS.register("conv-pool")
def conv_pool_head(keras: Any, shape: tuple[int, int, int], a: HeadArgs) -> Any:
    """Conv 128 same -> MaxPool 2 -> Conv 64 same -> Flatten -> Dense softmax."""
    if min(shape[:2]) < 2:
        raise _too_small("conv-pool", 2, shape, a)
    f = a.num_filters or 128
    inp = keras.Input(shape, name="features")
    x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name="head_conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="head_pool")(x)
    x = keras.layers.Conv2D(max(1, f // 2), 3, padding="same", activation="relu", name="head_conv2")(x)
    x = keras.layers.Flatten(name="head_flatten")(x)
    return keras.Model(inp, _out(keras, x, a.num_classes), name="head")


@HEADS.register("conv-bn-dropout")
def conv_bn_dropout_head(keras: Any, shape: tuple[int, int, int], a: HeadArgs) -> Any:
    """Conv 128 -> BN -> ReLU -> Dropout -> Conv 64 -> BN -> ReLU -> Flatten -> Dense 256 relu -> Dropout -> Dense."""
    f = a.num_filters or 128
    rate = 0.5 if a.dropout is None else a.dropout
    pad1 = _padding(min(shape[:2]), "conv-bn-dropout")
    pad2 = _padding(_after(min(shape[:2]), pad1), "conv-bn-dropout")
    L = keras.layers
    inp = keras.Input(shape, name="features")
    x = L.Conv2D(f, 3, padding=pad1, use_bias=False, name="head_conv1")(inp)
    x = L.BatchNormalization(name="head_bn1")(x)
    x = L.ReLU(name="head_relu1")(x)
    x = L.Dropout(rate, name="head_dropout1")(x)
    x = L.Conv2D(max(1, f // 2), 3, padding=pad2, use_bias=False, name="head_conv2")(x)
    x = L.BatchNormalization(name="head_bn2")(x)
    x = L.ReLU(name="head_relu2")(x)
    x = L.Flatten(name="head_flatten")(x)
    x = L.Dense(a.dense_units or 256, activation="relu", name="head_dense")(x)
    x = L.Dropout(rate, name="head_dropout2")(x)
    return keras.Model(inp, _out(keras, x, a.num_classes), name="head")


@HEADS.register("gap")
def gap_head(keras: Any, shape: tuple[int, int, int], a: HeadArgs) -> Any:
    """GlobalAveragePooling -> Dropout -> Dense softmax (fits any feature map)."""
    inp = keras.Input(shape, name="features")
    x = keras.layers.GlobalAveragePooling2D(name="head_gap")(inp)
    x = keras.layers.Dropout(0.2 if a.dropout is None else a.dropout, name="head_dropout")(x)
    return keras.Model(inp, _out(keras, x, a.num_classes), name="head")


def create_head(name: str, shape: tuple[int, int, int], args: HeadArgs) -> Any:
    """Build head ``name`` for a feature map of ``shape`` (H, W, C)."""
    from edgeport._lazy import require

    factory = HEADS.get(name)
    return factory(require("keras", "building a head"), tuple(int(v) for v in shape), args)
