"""Every registered backbone builds at a small size, splits into stages, and takes weights files."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the build stage needs TensorFlow (the [train] extra)")

from edgeport.build.backbones import BACKBONES, create_backbone, stage_starts
from edgeport.errors import ConfigError, ModelError

KERAS_APPS = ["resnet50v2", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"]


def test_registry_lists_the_documented_backbones():
    assert BACKBONES.names() == sorted(KERAS_APPS + ["tiny"])


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_builds_trains_saves_and_loads_safely(name, tmp_path):
    """Full model at 32 px, weights none: every unfreeze depth, one train step, safe_mode round trip."""
    import keras

    from edgeport.build.config import BuildConfig
    from edgeport.build.model import build_models, freeze_backbone, unfreeze_top

    cfg = BuildConfig(data="-", out="-", backbone=name, weights="none", head="gap", image_size=32)
    m = build_models(cfg, num_classes=3)
    starts = stage_starts(m.backbone, m.spec)
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    if name != "tiny":
        assert len(starts) == 5
    freeze_backbone(m)
    assert not m.backbone.trainable_weights
    for k in range(1, len(starts) + 1):
        unfreeze_top(m, k)
        bn = [w for layer in m.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
              for w in layer.trainable_weights]
        assert bool(bn) == m.bn_trains  # BatchNorm learns only from scratch (weights none)
        assert m.backbone.trainable_weights
    with pytest.raises(ConfigError, match="--unfreeze"):
        unfreeze_top(m, len(starts) + 1)
    # one eager train step (tracing a graph per backbone would cost tens of seconds each)
    m.full.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=True)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    before = [w.numpy().copy() for w in m.full.trainable_weights]
    m.full.train_on_batch(x, np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, m.full.trainable_weights))
    path = tmp_path / "m.keras"
    keras.Model(m.full.input, m.full.output).save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    expected = np.asarray(m.full(x, training=False))
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), expected, atol=1e-5)
    assert expected.dtype == np.float32 and expected.shape == (4, 3)


def test_weights_path_loads_a_file_the_test_wrote(tmp_path):
    src, _ = create_backbone("tiny", 32, "none")
    rng = np.random.default_rng(1)
    src.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in src.get_weights()])
    path = tmp_path / "mine.weights.h5"
    src.save_weights(path)
    loaded, _ = create_backbone("tiny", 32, str(path))
    for a, b in zip(src.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match="expected .* to hold weights of backbone mobilenet_v3_small"):
        create_backbone("mobilenet_v3_small", 32, str(path))


def test_pretrained_batchnorm_stays_frozen_while_fine_tuning(tmp_path):
    import keras

    from edgeport.build.config import BuildConfig
    from edgeport.build.model import build_models, unfreeze_top

    src, _ = create_backbone("tiny", 32, "none")
    path = tmp_path / "pre.weights.h5"
    src.save_weights(path)
    m = build_models(BuildConfig(data="-", out="-", backbone="tiny", weights=str(path), head="gap", image_size=32), 3)
    assert not m.bn_trains
    unfreeze_top(m, 3)
    assert m.backbone.trainable_weights
    assert not [w for layer in m.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
                for w in layer.trainable_weights]


def test_weights_for_a_missing_file_or_tiny_imagenet_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        create_backbone("tiny", 32, str(tmp_path / "nope.weights.h5"))
    with pytest.raises(ConfigError, match="no ImageNet weights; use --weights none or --weights PATH"):
        create_backbone("tiny", 32, "imagenet")


def test_offline_imagenet_names_both_alternatives():
    """Actually asks Keras for the weights; offline that fails with a message naming the two fixes."""
    try:
        create_backbone("mobilenet_v3_small", 32, "imagenet")
    except ModelError as exc:
        text = str(exc)
        assert "--weights none" in text and "--weights PATH" in text and "mobilenet_v3_small" in text
    else:
        pytest.skip("ImageNet weights were available (online or cached); the offline message was not exercised")


def test_too_small_image_size_is_refused():
    with pytest.raises(ConfigError, match="--image-size >= 32"):
        create_backbone("resnet50v2", 16, "none")
