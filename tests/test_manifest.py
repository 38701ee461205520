"""The export directory's contract: manifest schema, confined paths, hashes, artifact listing."""

from __future__ import annotations

import json
import os

import pytest

from edgeport.contract import InputContract
from edgeport.errors import ModelError
from edgeport.files import sha256_file
from edgeport.manifest import (
    FAILED,
    OK,
    SCHEMA_VERSION,
    UNSUPPORTED,
    artifact_path,
    list_artifacts,
    parse_manifest,
    read_manifest,
    verify_sha256,
    write_manifest,
)

GOOD = {"labels": ["a", "b"], "input": {"height": 8, "width": 8}, "artifacts": [
    {"file": "model_fp32.tflite", "scheme": "fp32", "format": "tflite", "status": "ok"}]}


def test_write_then_read_round_trips_with_the_schema_version(tmp_path):
    path = write_manifest(tmp_path, GOOD)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    m = read_manifest(tmp_path)
    assert m.labels == ("a", "b") and m.input == InputContract(8, 8)
    (a,) = m.artifacts
    assert (a.file, a.scheme, a.format, a.status, a.precision) == ("model_fp32.tflite", "fp32", "tflite", OK, "float32")
    assert a.path == tmp_path / "model_fp32.tflite"
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed, not left behind
    assert read_manifest(tmp_path / "nowhere") is None


@pytest.mark.parametrize("file", ["../model.tflite", "/etc/passwd.tflite", "./model_fp32.tflite", "a/../b.tflite",
                                  "", "C:/x.tflite", "sub\\x.tflite", 7, None])
def test_paths_outside_or_beside_the_export_are_refused(tmp_path, file):
    with pytest.raises(ModelError, match="artifact 'file'"):
        artifact_path(tmp_path, file)


def test_a_link_out_of_the_export_is_refused(tmp_path):
    outside = tmp_path / "outside.tflite"
    outside.write_bytes(b"x")
    export = tmp_path / "export"
    export.mkdir()
    os.symlink(outside, export / "model_fp32.tflite")
    with pytest.raises(ModelError, match="stay inside"):
        artifact_path(export, "model_fp32.tflite")
    assert artifact_path(export, "failed/model_int8.tflite") == export / "failed" / "model_int8.tflite"


@pytest.mark.parametrize("data, match", [
    ([1, 2], "a JSON object"),
    ({"artifacts": {"file": "x"}}, "'artifacts' to be a list"),
    ({"artifacts": ["model.onnx"]}, "artifact 0 to be an object"),
    ({"artifacts": [{"file": "model.onnx", "status": "great"}]}, "'status'"),
    ({"artifacts": [{"file": "model.onnx", "sha256": "abc"}]}, "64 hex digits"),
    ({"artifacts": [{"file": "model.onnx", "bytes": "12"}]}, "'bytes'"),
    ({"artifacts": [{"file": "model.onnx", "format": "tflite"}]}, "matching 'format'"),
    ({"artifacts": [{"file": "notes.txt"}]}, ".tflite or .onnx"),
    ({"artifacts": [{"file": "model.onnx", "scheme": 3}]}, "'scheme'"),
    ({"labels": "ab", "artifacts": []}, "labels"),
    ({"labels": ["a", "a"], "artifacts": []}, "distinct"),
    ({"input": {"height": "8", "width": 8}, "artifacts": []}, "'height'"),
    ({"input": {"height": 8, "width": 8, "resize": "lanczos"}, "artifacts": []}, "'resize'"),
    ({"input": {"height": 8, "width": 8, "range": [1, 0]}, "artifacts": []}, "'range'"),
    ({"schema_version": 99, "artifacts": []}, "newer edgeport"),
    ({"schema_version": "2", "artifacts": []}, "schema_version"),
])
def test_malformed_manifests_are_clear_errors(tmp_path, data, match):
    with pytest.raises(ModelError, match=match):
        parse_manifest(data, tmp_path)


def test_unreadable_json_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="expected JSON"):
        read_manifest(tmp_path)


def test_old_manifests_without_a_schema_version_still_read(tmp_path):
    m = parse_manifest({"labels": ["x", "y"], "artifacts": [{"file": "model.onnx", "status": "failed"}]}, tmp_path)
    assert m.schema_version == 1 and m.artifacts[0].scheme == "onnx" and m.artifacts[0].status == FAILED
    assert parse_manifest({"artifacts": [{"file": "model_int8.tflite", "status": UNSUPPORTED}]},
                          tmp_path).artifacts[0].status == UNSUPPORTED


def test_hashes_compare_without_regard_to_case(tmp_path):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"weights")
    digest = sha256_file(f)
    assert verify_sha256(f, digest.upper()) == digest
    assert verify_sha256(f, None) == digest
    with pytest.raises(ModelError, match="modified or comes from another export"):
        verify_sha256(f, "0" * 64)


def test_a_plain_folder_lists_its_model_files(tmp_path):
    (tmp_path / "model_fp16.tflite").write_bytes(b"TFL3junk")
    (tmp_path / "model.onnx").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("hi")
    arts = list_artifacts(tmp_path, embedded_scheme=lambda p: "int8" if p.name == "model_fp16.tflite" else None)
    assert sorted((a.file, a.scheme, a.format, a.bytes) for a in arts) == [
        ("model.onnx", "onnx", "onnx", 4), ("model_fp16.tflite", "int8", "tflite", 8)]
