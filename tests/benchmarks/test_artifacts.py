"""Finding the artifacts of an export to benchmark (labels: tests/test_schemes.py)."""

from __future__ import annotations

import json

import pytest

from edgeport.benchmarks.artifacts import find_artifacts
from edgeport.errors import ConfigError, DataError


def _manifest(tmp_path, artifacts):
    (tmp_path / "manifest.json").write_text(json.dumps({"labels": ["a", "b"], "artifacts": artifacts}))


def test_manifest_failed_and_missing_artifacts_become_failed(tmp_path):
    (tmp_path / "model_fp32.tflite").write_bytes(b"x" * 10)
    (tmp_path / "stray.onnx").write_bytes(b"y")
    _manifest(tmp_path, [
        {"file": "model_fp32.tflite", "scheme": "fp32", "format": "tflite", "status": "ok"},
        {"file": "model_int16x8.tflite", "scheme": "int16x8", "format": "tflite", "status": "failed",
         "reason": "converter crashed"},
        {"file": "model_int8.tflite", "scheme": "int8", "format": "tflite", "status": "ok"},
    ])
    arts, manifest = find_artifacts(tmp_path)
    assert manifest is not None
    by = {a.file: a for a in arts}
    assert set(by) == {"model_fp32.tflite", "model_int16x8.tflite", "model_int8.tflite"}  # stray file not listed
    assert by["model_fp32.tflite"].status == "ok" and by["model_fp32.tflite"].bytes == 10
    assert by["model_int16x8.tflite"].status == "failed" and "converter crashed" in by["model_int16x8.tflite"].reason
    assert by["model_int8.tflite"].status == "failed" and "missing" in by["model_int8.tflite"].reason


def test_plain_folder_without_manifest(tmp_path):
    (tmp_path / "model_fp16.tflite").write_bytes(b"TFL3junk")
    (tmp_path / "model.onnx").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("hi")
    arts, manifest = find_artifacts(tmp_path)
    assert manifest is None
    assert sorted((a.file, a.scheme, a.format) for a in arts) == [
        ("model.onnx", "onnx", "onnx"), ("model_fp16.tflite", "fp16", "tflite")]


def test_scheme_filter_prefers_exact_names(tmp_path):
    _manifest(tmp_path, [{"file": f, "scheme": s, "format": f.split(".")[1], "status": "ok"} for f, s in
                         [("model_int8.tflite", "int8"), ("model_int8.onnx", "onnx-int8"), ("model.onnx", "onnx")]])
    pick = lambda *s: [a.file for a in find_artifacts(tmp_path, s)[0]]  # noqa: E731 - a one-line local helper
    assert pick("onnx-int8") == ["model_int8.onnx"]
    assert pick("int8") == ["model_int8.tflite"]
    assert pick("fp32") == ["model.onnx"]
    assert pick("onnx", "int8") == ["model_int8.tflite", "model.onnx"]


def test_scheme_filter_and_errors(tmp_path):
    (tmp_path / "model_fp16.tflite").write_bytes(b"x")
    (tmp_path / "model.onnx").write_bytes(b"x")
    arts, _ = find_artifacts(tmp_path, ("fp16",))
    assert [a.file for a in arts] == ["model_fp16.tflite"]
    with pytest.raises(ConfigError, match="--schemes"):
        find_artifacts(tmp_path, ("int8",))
    with pytest.raises(DataError, match="not a directory"):
        find_artifacts(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="found none"):
        find_artifacts(empty)


def test_reference_is_fp32_of_the_same_format_and_engine():
    from pathlib import Path

    from edgeport.benchmarks.runner import reference_for
    from edgeport.manifest import Artifact

    def art(file, scheme, fmt):
        return Artifact(file=file, path=Path(file), scheme=scheme, format=fmt)

    fp32_tfl, fp32_onnx = art("model_fp32.tflite", "fp32", "tflite"), art("model.onnx", "onnx", "onnx")
    int8_tfl, int8_onnx = art("model_int8.tflite", "int8", "tflite"), art("model_int8.onnx", "onnx-int8", "onnx")
    preds = {("model_fp32.tflite", "litert"): {"artifact": fp32_tfl, "topk": [[0]]},
             ("model_fp32.tflite", "tflite-runtime"): {"artifact": fp32_tfl, "topk": [[0]]},
             ("model.onnx", "onnxruntime"): {"artifact": fp32_onnx, "topk": [[0]]}}
    assert reference_for(preds, int8_tfl, "tflite-runtime") == ("model_fp32.tflite", "tflite-runtime")
    assert reference_for(preds, int8_onnx, "onnxruntime") == ("model.onnx", "onnxruntime")
    preds[("model.onnx", "onnxruntime")]["topk"] = None  # the ONNX fp32 failed: fall back to any fp32
    assert reference_for(preds, int8_onnx, "onnxruntime")[0] == "model_fp32.tflite"
    assert reference_for({}, int8_onnx, "onnxruntime") is None


def test_an_unsupported_scheme_is_not_available_not_failed(tmp_path):
    (tmp_path / "model_fp32.tflite").write_bytes(b"x")
    _manifest(tmp_path, [{"file": "model_fp32.tflite", "scheme": "fp32", "format": "tflite", "status": "ok"},
                         {"file": "model_int8.tflite", "scheme": "int8", "format": "tflite", "status": "unsupported",
                          "reason": "SIN has no int8 kernel"}])
    arts, _ = find_artifacts(tmp_path)
    int8 = next(a for a in arts if a.scheme == "int8")
    assert int8.status == "unsupported" and "not supported by this model: SIN" in int8.reason
