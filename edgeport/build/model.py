"""Assemble backbone + head into the exported model and switch training phases."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from edgeport.build.backbones import BackboneSpec, create_backbone, stage_starts
from edgeport.build.config import BuildConfig
from edgeport.build.heads import HeadArgs, create_head
from edgeport.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Models:
    """The full model and the parts that share its layers."""

    full: Any  #: raw RGB 0..255 -> float32 softmax (what model.keras holds)
    features: Any  #: raw RGB -> backbone feature map (for the feature cache)
    backbone: Any
    head: Any  #: feature map -> softmax
    spec: BackboneSpec
    feature_shape: tuple[int, int, int]
    #: BatchNorm learns while fine-tuning only when training from scratch (--weights none):
    #: pretrained statistics are kept, but random ones would make a deep backbone untrainable.
    bn_trains: bool = False
    plain: Any = None  #: the full model's twin that is never compiled: saved without optimizer state


def build_models(cfg: BuildConfig, num_classes: int) -> Models:
    """Input float32 NHWC 0..255 -> scaling layer -> backbone -> head.

    With pretrained weights the backbone's BatchNorm always runs in inference
    mode; with ``--weights none`` it trains in phase 2 (there is nothing to keep).
    """
    from edgeport._lazy import require

    keras = require("keras", "building the model")
    backbone, spec = create_backbone(cfg.backbone, cfg.image_size, cfg.weights)
    shape = tuple(int(v) for v in backbone.output_shape[1:])
    head = create_head(cfg.head, shape, HeadArgs(num_classes, cfg.num_filters, cfg.dense_units, cfg.dropout,
                                                 cfg.backbone, cfg.image_size))
    inp = keras.Input((cfg.image_size, cfg.image_size, 3), dtype="float32", name="image")
    x = inp
    if spec.scaling == "tf":
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_pm1")(x)
    elif spec.scaling == "unit":
        x = keras.layers.Rescaling(1.0 / 255.0, name="scale_to_unit")(x)
    bn_trains = str(cfg.weights).strip().lower() == "none"
    if bn_trains:  # from scratch: let the moving statistics catch up within a short run
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = min(layer.momentum, 0.9)
    feats = backbone(x) if bn_trains else backbone(x, training=False)
    full = keras.Model(inp, head(feats), name=f"edgeport_{cfg.backbone}")
    features = keras.Model(inp, feats, name="features")
    plain = keras.Model(inp, full.output, name=full.name)
    return Models(full, features, backbone, head, spec, shape,  # type: ignore[arg-type]
                  bn_trains=bn_trains, plain=plain)


def freeze_backbone(m: Models) -> None:
    """Phase 1: only the head trains."""
    m.backbone.trainable = False
    m.head.trainable = True


def unfreeze_top(m: Models, stages: int) -> int:
    """Phase 2: the top ``stages`` stages train (BatchNorm only from scratch); returns trainable layer count."""
    from edgeport._lazy import require

    keras = require("keras", "fine-tuning")
    starts = stage_starts(m.backbone, m.spec)
    if not 1 <= stages <= len(starts):
        raise ConfigError(
            f"expected --unfreeze between 1 and {len(starts)} (the stages of {m.spec.name}), received {stages}"
        )
    first = starts[len(starts) - stages]
    m.backbone.trainable = True
    count = 0
    for i, layer in enumerate(m.backbone.layers):
        train = i >= first and (m.bn_trains or not isinstance(layer, keras.layers.BatchNormalization))
        layer.trainable = train
        count += int(train and bool(layer.weights))
    m.head.trainable = True
    log.info("fine-tuning the top %d stage(s) of %s from layer '%s' (%d layers with weights)",
             stages, m.spec.name, m.backbone.layers[first].name, count)
    return count
