"""A model saved with mixed-precision layers (as `edgeport build` did before it saved float32 models)
is rebuilt in float32 on load and exports every scheme as a float32-trained model does."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgeport.build.precision import as_float32, global_policy, is_float32, layer_policies
from edgeport.export import ALL_SCHEMES, ExportConfig, export

SIZE = 16


def _model(keras, images: np.ndarray):
    """Rescaling -> adapted Normalization -> nested Conv/BN/ReLU sub-model -> GAP -> float32 softmax."""
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inner_in)
    x = keras.layers.BatchNormalization()(x)
    inner = keras.Model(inner_in, keras.layers.ReLU()(x), name="backbone")
    inp = keras.Input((SIZE, SIZE, 3), dtype="float32", name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    norm = keras.layers.Normalization()
    norm.adapt(images / 255.0)
    x = inner(norm(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (8, SIZE, SIZE, 3)).astype(np.float32)


def test_as_float32_rebuilds_nested_layers_with_the_same_weights(keras, images):
    with global_policy("mixed_float16"):
        mixed = _model(keras, images)
    assert layer_policies(mixed)["mixed_float16"] >= 6 and not is_float32(mixed)
    twin = as_float32(mixed)
    assert set(layer_policies(twin)) == {"float32"} and twin.get_layer("backbone").compute_dtype == "float32"
    for a, b in zip(mixed.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the same architecture built in float32 with these weights computes exactly what the twin does
    reference = _model(keras, images)
    reference.set_weights(mixed.get_weights())
    reference.get_layer(index=2).finalize_state()  # Normalization's constants from its (adapted) variables
    want = np.asarray(reference(images, training=False))
    np.testing.assert_allclose(np.asarray(twin(images, training=False)), want, rtol=0, atol=1e-6)
    assert np.abs(np.asarray(mixed(images, training=False)) - want).max() > 1e-6  # float16 compute differs
    assert as_float32(twin) is twin


def test_run_saved_with_mixed_layers_exports_every_scheme(keras, images, tiny_data_dir, tmp_path):
    import yaml

    from edgeport.data import scan, write_split_csv

    run = tmp_path / "run"
    run.mkdir()
    ds = scan(tiny_data_dir, val_fraction=0.25, seed=0)
    write_split_csv(ds, run / "data_split.csv")
    (run / "labels.txt").write_text("\n".join(ds.classes) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"image_size": SIZE, "backbone": "test"}))
    with global_policy("mixed_float16"):
        _model(keras, images).save(run / "model.keras")
    res = export(ExportConfig(run_dir=str(run), out=str(tmp_path / "export"), calibration_samples=8,
                              verify_samples=8, min_agreement=0.0, search=False,
                              progress=False))
    assert [(a.scheme, a.status) for a in res.artifacts] == [(s, "ok") for s in ALL_SCHEMES], \
        [(a.scheme, a.reason) for a in res.artifacts if not a.ok]
    for name in ("fp32", "onnx"):
        assert res.artifact(name).verification["max_abs_prob_diff"] <= 1e-4
    training = json.loads(res.manifest_path.read_text())["training"]
    assert training["dtype_policy"] == "mixed_float16" and training["rebuilt_float32"] is True
    assert training["keras_file_layer_policies"].get("mixed_float16", 0) >= 6
    assert training["exported_dtype_policy"] == "float32"


@pytest.mark.parametrize("backbone", ["resnet50v2", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
                                      "efficientnet_b0", "tiny"])
def test_every_backbone_rebuilds_in_float32(keras, backbone):
    """The full model of each backbone, built under mixed_float16 as a GPU run builds it, rebuilds with every
    layer float32 and computes what the same model built in float32 computes with those weights."""
    from edgeport.build.config import BuildConfig
    from edgeport.build.model import build_models

    cfg = BuildConfig(data="-", out="-", backbone=backbone, weights="none", head="conv", image_size=32)
    keras.utils.set_random_seed(0)
    with global_policy("mixed_float16"):
        mixed = build_models(cfg, 5).plain
    twin = as_float32(mixed)
    assert set(layer_policies(twin)) == {"float32"}
    keras.utils.set_random_seed(0)
    reference = build_models(cfg, 5).plain
    reference.set_weights(mixed.get_weights())
    for layer in reference._flatten_layers():
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(twin(x, training=False)), np.asarray(reference(x, training=False)),
                               rtol=0, atol=1e-6)
