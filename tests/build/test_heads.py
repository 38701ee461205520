"""Every head on large and small feature maps; float32 softmax output."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the build stage needs TensorFlow (the [train] extra)")

from edgeport.build.heads import HEADS, HeadArgs, create_head
from edgeport.errors import ConfigError


def test_registry_lists_the_recipe_heads():
    assert HEADS.names() == ["conv", "conv-bn-dropout", "conv-pool", "gap"]


@pytest.mark.parametrize("name", ["conv", "conv-bn-dropout", "conv-pool", "gap"])
@pytest.mark.parametrize("shape", [(7, 7, 16), (3, 3, 16), (2, 2, 8)])
def test_head_fits_feature_map_and_outputs_probabilities(name, shape):
    head = create_head(name, shape, HeadArgs(num_classes=4, num_filters=8, dense_units=16))
    out = head.predict(np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32), verbose=0)
    assert out.shape == (2, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_recipe_layers_and_knobs():
    h = create_head("conv-bn-dropout", (7, 7, 32), HeadArgs(num_classes=5, num_filters=40, dense_units=24,
                                                             dropout=0.3))
    kinds = [type(layer).__name__ for layer in h.layers[1:]]
    assert kinds == ["Conv2D", "BatchNormalization", "ReLU", "Dropout", "Conv2D", "BatchNormalization", "ReLU",
                     "Flatten", "Dense", "Dropout", "Dense"]
    assert h.get_layer("head_conv1").filters == 40 and h.get_layer("head_conv2").filters == 20
    assert [h.get_layer(n).padding for n in ("head_conv1", "head_conv2")] == ["valid", "valid"]  # the recipe
    small = create_head("conv-bn-dropout", (3, 3, 32), HeadArgs(num_classes=5))  # ResNet50V2 at 96 px
    assert [small.get_layer(n).padding for n in ("head_conv1", "head_conv2")] == ["valid", "same"]
    assert small.get_layer("head_flatten").output.shape[1:] == (64,)
    assert h.get_layer("head_dense").units == 24 and h.get_layer("head_dropout1").rate == 0.3
    c = create_head("conv", (7, 7, 32), HeadArgs(num_classes=5))
    assert c.get_layer("head_conv").filters == 64
    p = create_head("conv-pool", (7, 7, 32), HeadArgs(num_classes=5))
    assert [p.get_layer(n).filters for n in ("head_conv1", "head_conv2")] == [128, 64]


def test_mixed_precision_head_still_outputs_float32():
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        h = create_head("conv-bn-dropout", (3, 3, 8), HeadArgs(num_classes=3, num_filters=4, dense_units=8))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert h.output.dtype == "float32"


def test_conv_pool_on_1x1_map_is_a_clear_error():
    with pytest.raises(ConfigError, match="head conv-pool needs a feature map of at least 2x2, backbone b gives "
                                          "1x1 at --image-size 32; use a larger --image-size or head gap"):
        create_head("conv-pool", (1, 1, 8), HeadArgs(num_classes=3, backbone="b", image_size=32))


def test_unknown_head():
    with pytest.raises(ConfigError, match="unknown head 'mlp'"):
        create_head("mlp", (3, 3, 8), HeadArgs(num_classes=3))
