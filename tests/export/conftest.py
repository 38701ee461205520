"""Export-test helpers: run directories around hand-made Keras models.

The main export tests use the shared ``tiny_run_dir``/``tiny_export_dir``
fixtures (a real tiny build run). Tests that need a model with a particular
property (an op without int8 kernels, outputs that uint8 cannot resolve)
build it here, as a run directory in the build stage's layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SIZE = 16


def write_run(root: Path, model, data_dir: Path, size: int = SIZE) -> Path:
    """model.keras, labels.txt, config.yaml and data_split.csv for ``model``."""
    import yaml

    from edgeport.data import scan, write_split_csv

    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    ds = scan(data_dir, val_fraction=0.25, seed=0)
    write_split_csv(ds, run / "data_split.csv")
    (run / "labels.txt").write_text("\n".join(ds.classes) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"image_size": size, "backbone": "test", "resize": "area"}))
    model.save(run / "model.keras")
    return run


@pytest.fixture(scope="session")
def keras():
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (the export stage needs the [train] extra)")
    import keras

    return keras


@pytest.fixture(scope="session")
def gray_data_dir(tmp_path_factory) -> Path:
    """5 classes of 20 flat gray images, class k at gray level 40 + 40 k (PNG, 20 px): 25 validation images,
    enough for a collapsed int8 to be shown to miss a budget (it would not be on 10)."""
    import cv2

    root = tmp_path_factory.mktemp("gray-data")
    rng = np.random.default_rng(0)
    for k in range(5):
        d = root / f"level{k}"
        d.mkdir()
        for i in range(20):
            img = np.full((20, 20, 3), 40 + 40 * k, np.int16) + rng.integers(-3, 4, (20, 20, 3))
            cv2.imwrite(str(d / f"{i}.png"), img.clip(0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="session")
def sine_run_dir(keras, tiny_data_dir, tmp_path_factory) -> Path:
    """A run whose model has a SIN op: TFLite has no int8/int16 kernel for it."""

    @keras.saving.register_keras_serializable(package="edgeport_tests")
    class Sine(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sin(x)

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = keras.layers.Conv2D(4, 3)(x)
    x = Sine()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5, activation="softmax")(x)
    return write_run(tmp_path_factory.mktemp("sine"), keras.Model(inp, out), tiny_data_dir)


@pytest.fixture(scope="session")
def flat_softmax_run_dir(keras, gray_data_dir, tmp_path_factory) -> Path:
    """A run that is exact in float but whose class probabilities differ by < 1/256.

    The model picks the nearest gray level (100 % top-1 in Keras), with logits
    scaled so small that a uint8 output (steps of 1/256) rounds every class to
    the same value: the int8 model's top-1 collapses, a real --max-drop case.
    """
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(inp)
    dense = keras.layers.Dense(5, activation="softmax")
    out = dense(x)
    model = keras.Model(inp, out)
    eps = 1e-6
    centers = np.array([40 + 40 * k for k in range(5)], np.float32)
    w = np.zeros((3, 5), np.float32)
    w[0] = eps * 2 * centers  # logit_k = eps * (2 c_k m - c_k^2): nearest center wins
    b = -eps * centers**2
    dense.set_weights([w, b])
    return write_run(tmp_path_factory.mktemp("flat"), model, gray_data_dir)
