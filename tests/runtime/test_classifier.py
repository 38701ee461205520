"""Classifier: artifact choice, metadata/manifest, every artifact and quantised I/O vs Keras, preprocessing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from allowed_skips import skip_without

from edgeport.contract import InputContract
from edgeport.errors import ConfigError, ModelError
from edgeport.files import sha256_file
from edgeport.imaging import resize
from edgeport.metadata import read_model_info
from edgeport.runtime.classifier import (
    Classifier,
    list_artifacts,
    select_artifact,
    to_input_tensor,
    to_probabilities,
    top_labels,
)
from edgeport.runtime.engines import ENGINES, TensorInfo
from edgeport.schemes import ALL_SCHEMES, get_scheme, precision_of

from .helpers import shapes

#: max |p - p_keras| allowed per scheme on the tiny model (export holds float32 to 1e-4)
TOLERANCE = {"fp32": 1e-3, "fp16": 0.02, "dynamic": 0.15, "int8": 0.15, "int16x8": 0.1}


def _tflite_engine():
    return next((n for n in ("litert", "tflite-runtime") if ENGINES.get(n).available()), None)


@pytest.fixture(scope="module")
def images():
    return [img for _, img in shapes(10, size=56, seed=3)]


@pytest.fixture(scope="module")
def golden(export_dir):
    """The export's golden set: images with the Keras model's own probabilities, recorded at export (TensorFlow
    is not needed to read them). The yardstick for every artifact, fp32 included: an independent model, not
    another artifact through the same Classifier."""
    from edgeport.golden import read_golden

    g = read_golden(export_dir / "golden")
    assert g is not None and len(g.files) >= 10, "the fixture export must carry a golden set"
    return g


@pytest.fixture(scope="module")
def golden_images(golden):
    return golden.images()


@pytest.fixture(scope="module")
def reference(golden):
    """Keras' probabilities on ``golden_images``."""
    return np.asarray(golden.reference, dtype=np.float32)


@pytest.mark.parametrize("file", [get_scheme(n).file for n in ALL_SCHEMES])
def test_every_artifact_matches_keras(export_dir, golden, golden_images, reference, file):
    path = export_dir / file
    assert path.is_file(), f"{file} is not in the fixture export (tests/tiny.py asserts every scheme is ok)"
    if path.suffix == ".onnx":
        skip_without("onnxruntime", why=f"runs {file}")  # not in the Pi job; where installed it must work
    with Classifier.open(path) as clf:
        assert clf.labels == golden.labels
        scheme = precision_of(clf.info.scheme)
        probs = np.stack([clf.predict(clf.prepare(img)) for img in golden_images])
        assert probs.dtype == np.float32 and probs.shape == reference.shape
        assert np.allclose(probs.sum(axis=1), 1.0, atol=0.05)  # dequantised softmax
        diff = np.abs(probs - reference).max()
        assert diff <= TOLERANCE.get(scheme, 0.15), (file, scheme, diff)
        # the tiny fixture model is barely trained (its probabilities lie near 1/5), so the tolerance alone would
        # not tell images apart: each artifact must also be far closer to Keras on the same image than on others
        own = np.abs(probs - reference).mean()
        other = np.mean([np.abs(probs - np.roll(reference, k, axis=0)).mean() for k in range(1, len(reference))])
        assert own < 0.5 * other, (file, scheme, own, other)
        ranked = np.sort(reference, axis=1)
        clear = ranked[:, -1] - ranked[:, -2] > 2 * TOLERANCE.get(scheme, 0.15)  # top-1 can't flip there
        assert (probs.argmax(1) == reference.argmax(1))[clear].all(), file


def test_directory_picks_int8_tflite_first(export_dir):
    engine = _tflite_engine()
    if engine is None or not (export_dir / "model_int8.tflite").is_file():
        pytest.skip("no TFLite engine or no int8 artifact")
    art, name = select_artifact(export_dir)
    assert (art.path.name, art.scheme, name) == ("model_int8.tflite", "int8", engine)
    with Classifier.open(export_dir, top_k=2) as clf:
        assert clf.engine.model_path.name == "model_int8.tflite"
        assert clf.info.scheme == "int8"
        assert clf.engine.input.dtype == np.uint8  # uint8 pixels go straight in


def test_directory_scheme_and_engine_choice(export_dir):
    engine = _tflite_engine()
    if engine is None:
        pytest.skip("no TFLite engine")
    art, _ = select_artifact(export_dir, scheme="fp32")
    assert art.path.name == "model_fp32.tflite"
    with pytest.raises(ConfigError, match="--scheme"):
        select_artifact(export_dir, scheme="int3")
    if ENGINES.get("onnxruntime").available() and (export_dir / "model.onnx").is_file():
        art, name = select_artifact(export_dir, engine="onnxruntime", scheme="fp32")
        assert (art.path.name, name) == ("model.onnx", "onnxruntime")
        art, name = select_artifact(export_dir, engine="onnxruntime")
        assert (art.path.name, name) == ("model.onnx", "onnxruntime")
        if (export_dir / "model_int8.onnx").is_file():
            for scheme in ("int8", "onnx-int8"):
                art, _ = select_artifact(export_dir, engine="onnxruntime", scheme=scheme)
                assert art.path.name == "model_int8.onnx"
            art, _ = select_artifact(export_dir, scheme="onnx-int8")
            assert art.path.name == "model_int8.onnx"


def test_labels_and_contract_from_metadata(export_dir):
    engine = _tflite_engine()
    if engine is None:
        pytest.skip("no TFLite engine")
    labels = tuple((export_dir / "labels.txt").read_text().split())
    with Classifier.open(export_dir / "model_fp32.tflite") as clf:
        assert clf.labels == labels
        assert clf.info == read_model_info(export_dir / "model_fp32.tflite")
        assert clf.engine.input.shape[1:3] == (clf.contract.height, clf.contract.width)
    assert clf.engine.closed  # closed by the context manager


def test_classify_bgr_equals_classify_rgb(export_dir, images):
    if _tflite_engine() is None:
        pytest.skip("no TFLite engine")
    with Classifier.open(export_dir / "model_fp32.tflite", top_k=3) as clf:
        for img in images[:4]:
            rgb = clf.classify_rgb(img)
            bgr = clf.classify(np.ascontiguousarray(img[:, :, ::-1]))
            assert [label for label, _ in rgb] == [label for label, _ in bgr]
            assert np.allclose([p for _, p in rgb], [p for _, p in bgr], atol=1e-6)
            assert len(rgb) == 3 and rgb[0][1] >= rgb[1][1] >= rgb[2][1]
            assert all(label in clf.labels for label, _ in rgb)


def test_manifest_sha256_mismatch_is_a_clear_error(export_dir, tmp_path):
    if _tflite_engine() is None or not (export_dir / "manifest.json").is_file():
        pytest.skip("no TFLite engine or no manifest")
    d = tmp_path / "export"
    d.mkdir()
    for f in ("model_fp32.tflite", "manifest.json", "labels.txt"):
        shutil.copy(export_dir / f, d / f)
    manifest = json.loads((d / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["file"] == "model_fp32.tflite")
    entry["sha256"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="expected model_fp32.tflite to have the sha256 that .*manifest.json "
                                         "records \\(0000"):
        Classifier.open(d / "model_fp32.tflite")
    with pytest.raises(ModelError, match="sha256"):
        Classifier.open(d, scheme="fp32")
    entry["sha256"] = sha256_file(d / "model_fp32.tflite").upper()  # hex digits in either case
    (d / "manifest.json").write_text(json.dumps(manifest))
    with Classifier.open(d, scheme="fp32") as clf:
        assert clf.labels


def _copy_export(export_dir, d, edit):
    d.mkdir()
    for f in ("model_fp32.tflite", "manifest.json"):
        shutil.copy(export_dir / f, d / f)
    manifest = json.loads((d / "manifest.json").read_text())
    edit(manifest)
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


@pytest.mark.parametrize("file", ["../model_fp32.tflite", "./model_fp32.tflite", "/tmp/model_fp32.tflite"])
def test_manifest_entries_cannot_point_outside_the_export(export_dir, tmp_path, file):
    if not (export_dir / "manifest.json").is_file():
        pytest.skip("no manifest")
    shutil.copy(export_dir / "model_fp32.tflite", tmp_path / "model_fp32.tflite")  # a file beside the export

    def edit(m):
        for a in m["artifacts"]:
            if a["file"] == "model_fp32.tflite":
                a["file"], a["sha256"] = file, None

    d = _copy_export(export_dir, tmp_path / "export", edit)
    with pytest.raises(ModelError, match="plain name inside the export directory"):
        Classifier.open(d)


def test_embedded_labels_must_be_the_manifests(export_dir, tmp_path):
    if _tflite_engine() is None or not (export_dir / "manifest.json").is_file():
        pytest.skip("no TFLite engine or no manifest")
    d = _copy_export(export_dir, tmp_path / "export", lambda m: m.update(labels=list(reversed(m["labels"]))))
    with pytest.raises(ModelError, match="labels embedded in model_fp32.tflite to be those of"):
        Classifier.open(d / "model_fp32.tflite")


def test_list_artifacts_without_manifest(export_dir, tmp_path):
    shutil.copy(export_dir / "model_fp32.tflite", tmp_path / "model_fp32.tflite")
    arts = list_artifacts(tmp_path)
    assert [(a.path.name, a.format, a.scheme) for a in arts] == [("model_fp32.tflite", "tflite", "fp32")]
    if _tflite_engine():  # the embedded metadata alone is enough
        with Classifier.open(tmp_path) as clf:
            assert clf.labels


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Classifier.open(tmp_path / "nope.tflite")
    with pytest.raises(ModelError, match="found none"):
        Classifier.open(tmp_path)


# --- pure preprocessing / postprocessing -------------------------------------------------

C = InputContract(4, 6)
RGB = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
SMALL = resize(RGB, (4, 6), "area")


def test_uint8_input_goes_straight_in():
    x = to_input_tensor(RGB, C, TensorInfo("x", (1, 4, 6, 3), np.dtype(np.uint8), 1.0, 0))
    assert x.dtype == np.uint8 and np.array_equal(x[0], SMALL)


def test_int8_input_is_shifted_by_zero_point():
    x = to_input_tensor(RGB, C, TensorInfo("x", (1, 4, 6, 3), np.dtype(np.int8), 1.0, -128))
    assert x.dtype == np.int8 and np.array_equal(x[0].astype(int), SMALL.astype(int) - 128)


def test_general_scale_zero_point_quantisation():
    x = to_input_tensor(RGB, C, TensorInfo("x", (1, 4, 6, 3), np.dtype(np.int8), 2.0, 3))
    expected = np.clip(np.rint(SMALL / 2.0 + 3), -128, 127)
    assert np.array_equal(x[0].astype(int), expected.astype(int))


def test_float_input_and_range():
    x = to_input_tensor(RGB, C, TensorInfo("x", (1, 4, 6, 3), np.dtype(np.float32)))
    assert x.dtype == np.float32 and np.array_equal(x[0], SMALL.astype(np.float32))
    c = InputContract(4, 6, range=(-1.0, 1.0))
    x = to_input_tensor(RGB, c, TensorInfo("x", (1, 4, 6, 3), np.dtype(np.float32)))
    assert np.allclose(x[0], SMALL / 127.5 - 1, atol=1e-6)


def test_nchw_contract_and_shape_mismatch():
    c = InputContract(4, 6, layout="NCHW")
    x = to_input_tensor(RGB, c, TensorInfo("x", (1, 3, 4, 6), np.dtype(np.float32)))
    assert np.array_equal(x[0], SMALL.transpose(2, 0, 1))
    with pytest.raises(ModelError, match="re-export"):
        to_input_tensor(RGB, C, TensorInfo("x", (1, 5, 5, 3), np.dtype(np.float32)))
    with pytest.raises(ModelError, match="uint8 image"):
        to_input_tensor(RGB.astype(np.float32), C, TensorInfo("x", (1, 4, 6, 3), np.dtype(np.float32)))


def test_output_dequantisation():
    raw = np.array([[0, 128, 255]], np.uint8)
    p = to_probabilities(raw, TensorInfo("y", (1, 3), np.dtype(np.uint8), 1 / 256, 0))
    assert p.dtype == np.float32 and np.allclose(p, [0, 0.5, 255 / 256])
    raw = np.array([[-128, 0, 127]], np.int8)
    p = to_probabilities(raw, TensorInfo("y", (1, 3), np.dtype(np.int8), 1 / 256, -128))
    assert np.allclose(p, [0, 0.5, 255 / 256])
    f = to_probabilities(np.array([[0.2, 0.8]], np.float16), TensorInfo("y", (1, 2), np.dtype(np.float16)))
    assert f.dtype == np.float32 and f.shape == (2,)


def test_top_labels_order_and_bounds():
    probs = np.array([0.1, 0.5, 0.05, 0.35], np.float32)
    assert top_labels(probs, ("a", "b", "c", "d"), 2) == [("b", 0.5), ("d", pytest.approx(0.35))]
    assert [label for label, _ in top_labels(probs, ("a", "b", "c", "d"), 10)] == ["b", "d", "a", "c"]



_EXPORT_IO = r"""
import sys
from edgeport.export import ExportConfig, export
for io in ("int8", "float32"):
    export(ExportConfig(run_dir=sys.argv[1], out=sys.argv[2] + "/" + io, schemes=("int8",), io_dtype=io,
                        calibration_samples=16, verify_samples=8, progress=False))
"""


@pytest.fixture(scope="module")
def io_exports(export_dir, tmp_path_factory):
    """The int8 scheme re-exported with signed-int8 and float I/O (TensorFlow, in a subprocess)."""
    import subprocess
    import sys

    from edgeport.manifest import read_manifest
    from edgeport.runtime.engines import installed as _installed

    manifest = read_manifest(export_dir)
    run_dir = manifest.run_dir if manifest is not None else None
    if not _installed("tensorflow") or run_dir is None or not (run_dir / "model.keras").is_file():
        pytest.skip("needs TensorFlow and the export's run directory")
    out = tmp_path_factory.mktemp("io-exports")
    res = subprocess.run([sys.executable, "-c", _EXPORT_IO, str(run_dir), str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return out


@pytest.mark.parametrize("io_dtype,expected", [("int8", np.int8), ("float32", np.float32)])
def test_int8_model_with_int8_or_float_io_matches_keras(io_exports, golden_images, reference, io_dtype, expected):
    with Classifier.open(io_exports / io_dtype / "model_int8.tflite") as clf:
        assert clf.engine.input.dtype == expected and clf.engine.output.dtype == expected
        probs = np.stack([clf.predict(clf.prepare(img)) for img in golden_images])
    assert np.abs(probs - reference).max() <= TOLERANCE["int8"]


def test_classify_takes_a_pil_image(export_dir, images):
    skip_without("PIL", why="Pillow is not part of a device's install")
    from PIL import Image

    with Classifier.open(export_dir / "model_fp32.tflite", top_k=2) as clf:
        assert clf.classify(Image.fromarray(images[0])) == clf.classify_rgb(images[0])  # PIL images are RGB


def test_classify_takes_paths_arrays_and_batches(export_dir, images, tmp_path):
    if _tflite_engine() is None:
        pytest.skip("no TFLite engine")
    import cv2

    rgb = images[0]
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    with Classifier.open(export_dir / "model_fp32.tflite", top_k=2) as clf:
        want = clf.classify_rgb(rgb)
        assert clf.classify(np.ascontiguousarray(rgb[:, :, ::-1])) == want  # OpenCV order by default
        assert clf.classify(rgb, color="rgb") == want
        assert clf.classify(str(path)) == clf.classify(path) == want  # lossless PNG: the same pixels
        bgra = np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 255, np.uint8)])
        assert clf.classify(bgra) == want
        assert len(clf.classify(rgb[:, :, 0])) == 2  # grayscale works (as three equal channels)
        batch = clf.classify([rgb, str(path), images[1]], color="rgb")
        assert batch[0] == batch[1] == want and len(batch) == 3
        with pytest.raises(ModelError, match="received None; cv2.imread returns None"):
            clf.classify(cv2.imread(str(tmp_path / "missing.jpg")))
        with pytest.raises(ModelError, match="expected a uint8 image array"):
            clf.classify(rgb.astype(np.float32) / 255)
        with pytest.raises(ModelError, match="received int"):
            clf.classify(7)
        from edgeport.errors import DataError

        with pytest.raises(DataError, match="cannot read image file"):
            clf.classify(tmp_path / "missing.jpg")
        with pytest.raises(ConfigError, match="'bgr' or 'rgb'"):
            clf.classify(rgb, color="hsv")
