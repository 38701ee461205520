"""int16x8 of a model whose activations are tiny before a fused RELU6 (as in the random lower blocks of a
MobileNetV2 trained from scratch with --unfreeze 1): LiteRT refuses an int16 scale that small, so the
export widens such calibrated ranges; the model then loads and verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from edgeport.export import ExportConfig, export

SIZE = 16


@pytest.fixture(scope="module")
def tiny_activation_run(keras, tiny_data_dir, tmp_path_factory) -> Path:
    import yaml

    from edgeport.data import scan, write_split_csv

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1e-7)(inp)  # activations ~1e-5 after the conv
    x = keras.layers.Conv2D(4, 3, activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5, activation="softmax")(keras.layers.Rescaling(1e5)(x))
    run = tmp_path_factory.mktemp("tiny-activations") / "run"
    run.mkdir()
    ds = scan(tiny_data_dir, val_fraction=0.25, seed=0)
    write_split_csv(ds, run / "data_split.csv")
    (run / "labels.txt").write_text("\n".join(ds.classes) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"image_size": SIZE, "backbone": "test"}))
    keras.Model(inp, out).save(run / "model.keras")
    return run


def _export(run: Path, out: Path):
    return export(ExportConfig(run_dir=str(run), out=str(out), schemes=("int16x8",), calibration_samples=8,
                               verify_samples=8, min_agreement=0.0, progress=False))


def test_tiny_ranges_are_widened_and_int16x8_verifies(tiny_activation_run, tmp_path):
    res = _export(tiny_activation_run, tmp_path / "x")
    a = res.artifact("int16x8")
    assert a.ok, a.reason
    assert a.verification["agreement_pct"] >= 75.0 and a.verification["max_abs_prob_diff"] < 0.05


def test_without_widening_litert_refuses_the_model(tiny_activation_run, tmp_path, monkeypatch):
    import edgeport.export.tflite as tflite

    monkeypatch.setattr(tflite, "INT16_MIN_RANGE", 0.0)
    a = _export(tiny_activation_run, tmp_path / "x").artifact("int16x8")
    assert a.status == "failed" and "no_integer_overflow_from_quantization" in a.reason
