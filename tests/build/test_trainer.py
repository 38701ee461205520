"""End-to-end training runs on tiny models: run directory, layouts, bad inputs, cache, resume, devices."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the build stage needs TensorFlow (the [train] extra)")

from edgeport.errors import ConfigError, DataError

from .build_helpers import kill_script, tiny_config

RUN_FILES = ("model.keras", "labels.txt", "config.yaml", "data_split.csv", "metrics.json", "history.csv",
             "history.png", "confusion.png", "skipped.txt", "checkpoints/state.json")
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    return env


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_fixture_run_dir_has_every_file(tiny_run_dir):
    import keras

    run = Path(tiny_run_dir)
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert (run / "labels.txt").read_text().split() == ["circle", "cross", "square", "star", "triangle"]
    rows = _history(run)
    assert [(r["phase"], r["epoch"]) for r in rows] == [("1", "1"), ("1", "2"), ("1", "3"), ("2", "1")]
    assert all(float(r["seconds"]) > 0 and r["val_accuracy"] != "" for r in rows)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_top5_pct"] is None  # 5 classes: no top-5
    cm = np.asarray(metrics["val"]["confusion_matrix"])
    assert cm.shape == (5, 5) and cm.sum() == metrics["val"]["images"]
    # top-1 is what the confusion matrix of the validation images says (learning is shown by the test below)
    assert metrics["val_top1_pct"] == pytest.approx(100.0 * np.trace(cm) / cm.sum(), abs=0.01)
    assert set(metrics["val"]["per_class_top1_pct"]) == set(metrics["classes"])
    assert metrics["data"]["layout"] == "class-folders" and metrics["data"]["num_skipped"] == 0
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert model.input.shape[1:] == (32, 32, 3) and model.input.dtype == "float32"
    assert model.output.dtype == "float32"
    assert not any(type(layer).__name__ == "Lambda" for layer in model._flatten_layers())


#: five classes that differ only in colour (RGB), chance is 20 %
SEPARABLE = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40),
             "grey": (128, 128, 128)}


def _separable_set(root: Path, per_class: int = 24) -> Path:
    """Noisy, brightness-jittered solid images whose colour is their class: separable, but only if learnt."""
    import cv2

    rng = np.random.default_rng(7)
    for name, rgb in SEPARABLE.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = np.asarray(rgb, np.float32) + rng.uniform(-25, 25) + rng.normal(0, 20, (40, 40, 3))
            cv2.imwrite(str(root / name / f"{i}.jpg"), np.clip(img, 0, 255).astype(np.uint8)[:, :, ::-1])
    return root


def test_a_tiny_model_learns_separable_classes(tmp_path):
    """Training learns: on data a model can separate, the held-out top-1 ends far above chance (20 %) and the
    training loss falls. A trainer whose updates do not reach the model (random weights stay near chance), or
    that reported anything but the validation images' answers, fails here."""
    from edgeport.build import train

    # the tiny backbone is random (no weights), so phase 1 alone barely moves: the fine-tuning phase learns
    res = train(tiny_config(_separable_set(tmp_path / "data"), tmp_path / "run", epochs=1, fine_tune_epochs=4,
                            lr=1e-2, fine_tune_lr=1e-2))
    assert res.metrics["val_top1_pct"] >= 90.0, res.metrics["val"]
    loss = [float(r["loss"]) for r in _history(Path(res.run_dir))]
    assert loss[-1] < 0.3 * loss[0], loss


def test_saved_model_reproduces_training_predictions(tmp_path, class_folders):
    """model.keras (safe_mode) gives the same probabilities as the model that trained, on imaging pixels."""
    import keras

    from edgeport.build import train
    from edgeport.imaging import load_resized

    res = train(tiny_config(class_folders, tmp_path / "run", head="conv-bn-dropout", epochs=1))
    model = keras.saving.load_model(Path(res.run_dir) / "model.keras", safe_mode=True)
    with open(Path(res.run_dir) / "data_split.csv", newline="") as f:
        val = [r for r in csv.DictReader(f) if r["split"] == "val"]
    x = np.stack([load_resized(r["path"], 32) for r in val]).astype(np.float32)
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    labels = Path(res.run_dir, "labels.txt").read_text().split()
    y = np.array([labels.index(r["label"]) for r in val])
    assert 100 * float((probs.argmax(1) == y).mean()) == pytest.approx(res.metrics["val_top1_pct"])


@pytest.mark.parametrize("layout", ["class_folders", "split_folders", "csv_set"])
def test_every_data_layout_trains(layout, request, tmp_path):
    from edgeport.build import train

    data = request.getfixturevalue(layout)
    res = train(tiny_config(data, tmp_path / "run", epochs=1, fine_tune_epochs=1))
    summary = res.metrics["data"]
    assert summary["layout"] == {"class_folders": "class-folders", "split_folders": "split-folders",
                                 "csv_set": "csv"}[layout]
    assert res.metrics["val"]["images"] == sum(summary["counts"]["val"].values())
    if layout == "split_folders":
        assert res.metrics["test"]["images"] == 10
    with open(Path(res.run_dir) / "data_split.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(Path(r["path"]).is_absolute() and Path(r["path"]).is_file() for r in rows)


def test_corrupt_files_are_skipped_and_listed(tmp_path, corrupt_set):
    from edgeport.build import train

    res = train(tiny_config(corrupt_set, tmp_path / "run", epochs=1, fine_tune_epochs=0))
    skipped = (Path(res.run_dir) / "skipped.txt").read_text().splitlines()
    names = sorted(Path(line.split("\t")[0]).name for line in skipped)
    assert names == ["broken.jpg", "empty.png"]  # the hidden file is ignored, not "skipped"
    assert res.metrics["data"]["num_skipped"] == 2
    assert {Path(s["path"]).name for s in res.metrics["data"]["skipped"]} == {"broken.jpg", "empty.png"}
    split = (Path(res.run_dir) / "data_split.csv").read_text()
    assert "broken.jpg" not in split and ".hidden" not in split


def _bad_sets(tmp_path: Path) -> dict[str, Path]:
    from edgeport.synthetic import make_dataset

    empty_class = make_dataset(tmp_path / "empty-class", per_class=3, size=24, classes=("circle", "square"))
    (empty_class / "c").mkdir()
    single = make_dataset(tmp_path / "single", per_class=3, size=24, classes=("star",))
    none = tmp_path / "no-images"
    (none / "a").mkdir(parents=True)
    (none / "a" / "notes.txt").write_text("no images here")
    all_bad = tmp_path / "all-bad"
    for c in ("a", "b"):
        (all_bad / c).mkdir(parents=True)
        (all_bad / c / "x.jpg").write_bytes(b"garbage")
    return {"empty class folder": empty_class, "single class": single, "no images": none,
            "nothing decodable": all_bad, "missing folder": tmp_path / "does-not-exist"}


@pytest.mark.parametrize("case,words", [
    ("empty class folder", "empty"), ("single class", "at least 2 classes"), ("no images", "no images"),
    ("nothing decodable", "could be decoded"), ("missing folder", "does not exist"),
])
def test_bad_data_gives_a_clear_error(tmp_path, case, words):
    from edgeport.build import train

    data = _bad_sets(tmp_path)[case]
    with pytest.raises(DataError, match=words):
        train(tiny_config(data, tmp_path / "run"))


def test_tfds_without_the_package_names_alternatives(tmp_path):
    try:
        import tensorflow_datasets  # noqa: F401 - only whether it imports
        pytest.skip("tensorflow_datasets is installed; offline behaviour differs")
    except ImportError:
        pass
    from edgeport.build import train

    with pytest.raises(DataError, match=r"tensorflow_datasets.*--data FOLDER.*--data FILE\.csv"):
        train(tiny_config("tfds:tf_flowers", tmp_path / "run"))


@pytest.mark.parametrize("field,value,words", [
    ("backbone", "resnet9000", "unknown backbone 'resnet9000'; expected one of: efficientnet_b0"),
    ("head", "mlp", "unknown head 'mlp'; expected one of: conv, conv-bn-dropout, conv-pool, gap"),
    ("epochs", -1, "--epochs"),
    ("cache_features", "maybe", "--cache-features"),
    ("weights", "/nonexistent/w.weights.h5", "no such file"),
])
def test_bad_config_gives_a_clear_error(tmp_path, class_folders, field, value, words):
    from edgeport.build import train

    with pytest.raises(ConfigError, match=words):
        train(tiny_config(class_folders, tmp_path / "run", **{field: value}))


def test_head_that_cannot_fit_says_what_to_do(tmp_path, class_folders):
    from edgeport.build import train

    # tiny at 8 px gives a 1x1 feature map: MaxPool 2 cannot run on it
    with pytest.raises(ConfigError, match=r"head conv-pool needs a feature map of at least 2x2, backbone tiny "
                                          r"gives 1x1 at --image-size 8; use a larger --image-size or head gap"):
        train(tiny_config(class_folders, tmp_path / "run", head="conv-pool", image_size=8))


def test_existing_run_is_not_overwritten(tmp_path, tiny_run_dir, tiny_data_dir):
    from edgeport.build import train

    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(tiny_data_dir, tiny_run_dir))


def test_cached_and_uncached_phase1_give_the_same_model(tmp_path, class_folders):
    """With augmentation off, training the head on cached features equals training through the backbone."""
    import keras

    from edgeport.build import train

    runs = {}
    for mode in ("on", "off"):
        runs[mode] = train(tiny_config(class_folders, tmp_path / mode, head="conv-bn-dropout", epochs=3,
                                       fine_tune_epochs=1, augment=False, cache_features=mode, lr=3e-3))
    h_on, h_off = runs["on"].history, runs["off"].history
    assert [(r["phase"], r["epoch"]) for r in h_on] == [(r["phase"], r["epoch"]) for r in h_off]
    for a, b in zip(h_on, h_off):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], abs=2e-3), (a, b)
    assert runs["on"].metrics["val_top1_pct"] == pytest.approx(runs["off"].metrics["val_top1_pct"], abs=5)
    w_on = keras.saving.load_model(Path(runs["on"].run_dir) / "model.keras").get_weights()
    w_off = keras.saving.load_model(Path(runs["off"].run_dir) / "model.keras").get_weights()
    for a, b in zip(w_on, w_off):
        np.testing.assert_allclose(a, b, atol=2e-3)
    assert runs["on"].metrics["runtime"]["feature_cache"] and not runs["off"].metrics["runtime"]["feature_cache"]


def test_feature_cache_spills_to_disk_when_over_budget(tmp_path, class_folders):
    from edgeport.build import train

    res = train(tiny_config(class_folders, tmp_path / "run", cache_memory_mb=0, fine_tune_epochs=0))
    assert res.metrics["timing"]["feature_cache"]["where"] == "disk"
    assert not list((Path(res.run_dir) / "cache").glob("*.npy"))  # removed after phase 1


def test_class_weights_and_options_run(tmp_path, class_folders):
    from edgeport.build import train

    res = train(tiny_config(class_folders, tmp_path / "run", class_weights="balanced", label_smoothing=0.1,
                            optimizer="sgd", head="conv", num_filters=8, fine_tune_epochs=1, unfreeze=3,
                            cache_features="off", jit=True))
    assert len(res.history) == 3
    assert res.metrics["runtime"]["jit"] is True
    assert sum(res.metrics["data"]["counts"]["train"].values()) == 30


KILL_SCRIPT = kill_script(**dict(backbone="tiny", weights="none", head="gap", image_size=32, epochs=3, fine_tune_epochs=2,
                          batch_size=16, seed=0, progress="off"))


def _resume_cfg(data: Path, out: Path):
    from edgeport.build.config import BuildConfig

    return BuildConfig(data=str(data), out=str(out), backbone="tiny", weights="none", head="gap",
                       image_size=32, epochs=3, fine_tune_epochs=2, batch_size=16, seed=0, progress="off")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, class_folders):
    """The run the interrupted ones should match (same config, never killed)."""
    from edgeport.build import train

    return train(_resume_cfg(class_folders, tmp_path_factory.mktemp("straight") / "run"))


@pytest.mark.parametrize("kill_after,state_at", [(1, (1, 1)), (4, (2, 1))], ids=["phase1", "phase2"])
def test_resume_after_sigkill_continues_from_last_epoch(tmp_path, class_folders, straight_run, kill_after,
                                                         state_at):
    from edgeport.build import train

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(class_folders), str(out), str(kill_after)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert (state["phase"], state["epoch"]) == state_at
    assert not (out / "model.keras").exists()
    killed_rows = state["history"]
    assert len(killed_rows) == kill_after

    resumed = train(dataclasses.replace(_resume_cfg(class_folders, out), resume=True))
    assert [(r["phase"], r["epoch"]) for r in resumed.history] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    assert resumed.history[:kill_after] == killed_rows
    assert [(r["phase"], r["epoch"]) for r in _history(out)] == [("1", "1"), ("1", "2"), ("1", "3"),
                                                                  ("2", "1"), ("2", "2")]
    # the optimizer (and its cosine schedule) continued: learning rates match an uninterrupted run
    assert [r["lr"] for r in resumed.history] == pytest.approx([r["lr"] for r in straight_run.history], rel=1e-5)
    assert (out / "model.keras").is_file()
    assert resumed.metrics["val"]["images"] == straight_run.metrics["val"]["images"]


def test_resume_with_other_settings_is_refused(tmp_path, tiny_run_dir, tiny_data_dir):
    from edgeport.build import train

    with pytest.raises(ConfigError, match="image_size"):
        train(tiny_config(tiny_data_dir, tiny_run_dir, image_size=48, resume=True))


def test_multi_worker_tf_config_is_refused_clearly(tmp_path, class_folders, monkeypatch):
    """Keras 3 cannot fit() under MultiWorkerMirroredStrategy (keras-team/keras#20585): say so, don't hang."""
    from edgeport.build import train
    from edgeport.build.trainer import multi_worker_fit_supported

    if multi_worker_fit_supported():
        pytest.skip("this Keras trains under MultiWorkerMirroredStrategy")
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ConfigError, match=r"TF_CONFIG describes 2 workers.*keras-team/keras#20585.*unset TF_CONFIG"):
        train(tiny_config(class_folders, tmp_path / "run"))
