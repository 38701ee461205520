"""The GPU training path, exercised on the CPU, then exported: every scheme must pass verification.

Mixed precision (the GPU default), XLA (--jit), two replicas (MirroredStrategy
over two logical CPUs) with mixed precision, --resume after SIGKILL under
mixed precision (the loss-scale optimizer's state included) and the feature
cache under mixed precision. The tiny backbone, a handful of images, one or
two epochs each.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the build stage needs TensorFlow (the [train] extra)")

from .build_helpers import kill_script, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))


def _export_every_scheme(run_dir: Path | str, out: Path, policy: str) -> dict:
    """Export all schemes of ``run_dir``; each must be ok, the float32 ones within the 1e-4 tolerance."""
    from edgeport.export import ALL_SCHEMES, ExportConfig, export

    # conversion of every scheme is what is checked here: no accuracy budget on these 1-epoch models
    res = export(ExportConfig(run_dir=str(run_dir), out=str(out), calibration_samples=8, verify_samples=8,
                              min_agreement=0.0, search=False, progress=False))
    statuses = {a.scheme: (a.status, a.reason) for a in res.artifacts}
    assert list(statuses) == list(ALL_SCHEMES)
    assert all(s == "ok" for s, _ in statuses.values()), statuses
    for name in ("fp32", "onnx"):
        v = res.artifact(name).verification
        assert v["max_abs_prob_diff"] <= 1e-4 and v["agreement_pct"] == 100.0, (name, v)
    assert res.manifest["training"]["dtype_policy"] == policy
    assert res.manifest["training"]["exported_dtype_policy"] == "float32"
    assert not res.manifest["training"]["rebuilt_float32"]  # build saved a float32 model already
    return res.manifest


def _val_top1(run: Path, model) -> float:
    from edgeport.imaging import load_resized

    with open(run / "data_split.csv", newline="") as f:
        val = [r for r in csv.DictReader(f) if r["split"] == "val"]
    labels = (run / "labels.txt").read_text().split()
    x = np.stack([load_resized(r["path"], 32) for r in val]).astype(np.float32)
    y = np.array([labels.index(r["label"]) for r in val])
    return float((model.predict(x, verbose=0).argmax(1) == y).mean())


def test_mixed_precision_run_ships_a_float32_model_that_exports(tmp_path, class_folders):
    import keras
    import yaml

    from edgeport.build import train
    from edgeport.build.precision import layer_policies

    res = train(tiny_config(class_folders, tmp_path / "run", mixed_precision="on", head="conv", epochs=1,
                            fine_tune_epochs=1))
    run = Path(res.run_dir)
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    rt = res.metrics["runtime"]
    assert rt["mixed_precision"] is True and rt["training_dtype_policy"] == "mixed_float16"
    assert rt["model_dtype_policy"] == "float32"
    text = (run / "config.yaml").read_text()
    assert text.startswith("# trained under the Keras dtype policy mixed_float16; model.keras computes in float32")
    assert yaml.safe_load(text)["mixed_precision"] == "on"
    model = keras.saving.load_model(run / "model.keras", safe_mode=True, compile=False)
    assert set(layer_policies(model)) == {"float32"}  # every layer, the backbone's and head's included
    assert model.input.dtype == "float32" and model.output.dtype == "float32"
    assert model.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0).dtype == np.float32
    assert res.metrics["val_top1_pct"] == pytest.approx(100 * _val_top1(run, model))  # the shipped model's figures
    _export_every_scheme(run, tmp_path / "export", "mixed_float16")


def test_jit_run_exports(tmp_path, class_folders):
    from edgeport.build import train

    res = train(tiny_config(class_folders, tmp_path / "run", jit=True, head="conv", epochs=1, fine_tune_epochs=1))
    assert res.metrics["runtime"]["jit"] is True and res.metrics["runtime"]["feature_cache"]
    _export_every_scheme(res.run_dir, tmp_path / "export", "float32")


def test_two_devices_under_mixed_precision_export(tmp_path, class_folders):
    """MirroredStrategy over two logical CPUs (set before TF initialises: a fresh process), then the CLI export."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgeport", "build", "--data", str(class_folders), "--out", str(out),
           "--backbone", "tiny", "--weights", "none", "--head", "conv-bn-dropout", "--image-size", "32",
           "--epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "8", "--devices", "2",
           "--mixed-precision", "on", "--progress", "off"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rt = json.loads((out / "metrics.json").read_text())["runtime"]
    assert rt["replicas"] == 2 and rt["strategy"] == "MirroredStrategy" and rt["mixed_precision"] is True
    with open(out / "history.csv", newline="") as f:
        assert [(r["phase"], r["epoch"]) for r in csv.DictReader(f)] == [("1", "1"), ("2", "1")]
    exp = [sys.executable, "-m", "edgeport", "-q", "export", str(out), "--out", str(tmp_path / "export"),
           "--calibration-samples", "8", "--verify-samples", "8",
           "--min-agreement", "0", "--no-search"]
    proc = subprocess.run(exp, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert [a["status"] for a in manifest["artifacts"]] == ["ok"] * 8
    assert manifest["training"]["dtype_policy"] == "mixed_float16"
    assert all(a["verification"]["max_abs_prob_diff"] <= 1e-4 for a in manifest["artifacts"]
               if a["scheme"] in ("fp32", "onnx"))


OVERFLOW_ON_ONE_REPLICA = r"""
import json, sys
import numpy as np, tensorflow as tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from edgeport.build.trainer import ReplicaSafeLossScaleOptimizer
keras.mixed_precision.set_global_policy("mixed_float16")
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
# one batch of 2: replica 0 gets an ordinary image, replica 1 one whose float16 gradient overflows at
# the initial loss scale (2^15)
x = np.array([[1.0, 1.0], [3e4, 3e4]], np.float32)
y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
out = {}
for name, wrap in (("keras", keras.optimizers.LossScaleOptimizer), ("edgeport", ReplicaSafeLossScaleOptimizer)):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inp = keras.Input((2,))
        model = keras.Model(inp, keras.layers.Activation("softmax", dtype="float32")(keras.layers.Dense(2)(inp)))
        opt = wrap(keras.optimizers.SGD(0.1))
        model.compile(opt, "categorical_crossentropy")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    out[name] = {"finite": bool(all(np.isfinite(w.numpy()).all() for w in model.weights)),
                 "scale": float(opt.dynamic_scale.numpy())}
print(json.dumps(out))
"""


def test_an_overflow_on_one_replica_skips_the_step_on_all(tmp_path):
    """Keras' loss-scale optimizer trusts the first replica's gradients under MirroredStrategy; an
    overflow on the second is applied and the weights turn NaN. edgeport's skips the step everywhere."""
    script = tmp_path / "overflow.py"
    script.write_text(OVERFLOW_ON_ONE_REPLICA)
    proc = subprocess.run([sys.executable, str(script)], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["edgeport"] == {"finite": True, "scale": 2.0 ** 14}, out  # skipped, scale halved
    if out["keras"]["finite"]:
        pytest.skip(f"this Keras handles an overflow on one replica itself ({out}); the subclass is redundant")


def test_a_diverged_run_writes_no_model(tmp_path):
    import keras

    from edgeport.build.trainer import _check_finite_weights
    from edgeport.errors import ModelError

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head_dense")])
    _check_finite_weights(model, [])
    model.layers[0].kernel.assign(np.full((3, 2), np.nan, np.float32))
    with pytest.raises(ModelError, match=r"training diverged: expected finite weights, found NaN/inf in 1 "
                                         r"weight\(s\) \(\S*head_dense/kernel\); the loss was first NaN/inf in phase 1 "
                                         r"epoch 2; no model.keras was written\. Lower --lr"):
        _check_finite_weights(model, [{"phase": 1, "epoch": 1, "loss": 1.0}, {"phase": 1, "epoch": 2, "loss": np.nan}])


KILL_SCRIPT = kill_script(**dict(backbone="tiny", weights="none", head="conv", image_size=32, epochs=1, fine_tune_epochs=2,
                          batch_size=8, seed=0, progress="off", mixed_precision="on"))


def test_resume_after_sigkill_under_mixed_precision_restores_the_loss_scale(tmp_path, class_folders, caplog):
    import keras

    from edgeport.build import train
    from edgeport.build.config import BuildConfig

    out = tmp_path / "run"
    # killed after phase 2's first epoch: the full model's LossScaleOptimizer state is on disk
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(class_folders), str(out), "2"],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert (state["phase"], state["epoch"]) == (2, 1)
    with np.load(out / "checkpoints" / state["optimizer"]) as saved:
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    seen: dict = {}

    class Restored(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            opt = self.model.optimizer
            seen["type"] = type(opt).__name__
            seen["values"] = [np.asarray(v.numpy()) for v in opt.variables]
            seen["scale"] = float(opt.dynamic_scale.numpy())

    cfg = BuildConfig(data=str(class_folders), out=str(out), backbone="tiny", weights="none", head="conv",
                      image_size=32, epochs=1, fine_tune_epochs=2, batch_size=8, seed=0, progress="off",
                      mixed_precision="on", resume=True)
    with caplog.at_level(logging.WARNING, logger="edgeport.build"):
        resumed = train(cfg, callbacks=[Restored()])
    assert "does not match" not in caplog.text
    assert seen["type"] == "ReplicaSafeLossScaleOptimizer"
    assert len(seen["values"]) == len(arrays)  # step counter, loss scale, iterations, Adam moments...
    for got, want in zip(seen["values"], arrays):
        np.testing.assert_array_equal(got, want)
    assert seen["scale"] in [float(a) for a in arrays if a.shape == () and a.dtype == np.float32]
    assert [(r["phase"], r["epoch"]) for r in resumed.history] == [(1, 1), (2, 1), (2, 2)]
    assert resumed.metrics["runtime"]["training_dtype_policy"] == "mixed_float16"
    _export_every_scheme(out, tmp_path / "export", "mixed_float16")


def test_feature_cache_under_mixed_precision(tmp_path, class_folders):
    """The cached features have the dtype the backbone hands the head (float16); phase 1 on them trains the
    head exactly as through the backbone, and the run exports."""
    import keras

    from edgeport.build import train
    from edgeport.build.model import build_models
    from edgeport.build.precision import global_policy

    runs = {}
    for mode in ("on", "off"):
        runs[mode] = train(tiny_config(class_folders, tmp_path / mode, mixed_precision="on", augment=False,
                                       cache_features=mode, epochs=2, fine_tune_epochs=0, lr=3e-3))
    cache = runs["on"].metrics["timing"]["feature_cache"]
    with global_policy("mixed_float16"):
        m = build_models(runs["on"].config, 5)
    assert str(m.features.output.dtype) == cache["dtype"] == "float16"
    first = m.head.layers[1]  # the layer after the head's input: what reads the features
    assert (first.name, first.compute_dtype) == ("head_gap", "float16")
    n = sum(runs["on"].metrics["data"]["counts"][s][c] for s in ("train", "val")
            for c in runs["on"].metrics["data"]["counts"][s])
    assert cache["bytes"] == n * int(np.prod(cache["shape"])) * 2
    for a, b in zip(runs["on"].history, runs["off"].history):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], abs=2e-3), (a, b)
    w_on = keras.saving.load_model(Path(runs["on"].run_dir) / "model.keras").get_weights()
    w_off = keras.saving.load_model(Path(runs["off"].run_dir) / "model.keras").get_weights()
    for a, b in zip(w_on, w_off):
        np.testing.assert_allclose(a, b, atol=2e-3)
    _export_every_scheme(runs["on"].run_dir, tmp_path / "export", "mixed_float16")
