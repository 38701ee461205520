"""export(): every scheme through the registry, the manifest, embedded metadata, failures."""

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from edgeport.contract import InputContract  # noqa: E402
from edgeport.errors import ModelError  # noqa: E402
from edgeport.export import ALL_SCHEMES, ExportConfig, export  # noqa: E402
from edgeport.export.rundir import sha256_file  # noqa: E402
from edgeport.metadata import read_model_info  # noqa: E402


@pytest.fixture(scope="module")
def manifest(tiny_export_dir):
    return json.loads((tiny_export_dir / "manifest.json").read_text())


def test_every_scheme_written_and_ok(tiny_export_dir, manifest):
    arts = {a["scheme"]: a for a in manifest["artifacts"]}
    assert list(arts) == list(ALL_SCHEMES)
    for name, a in arts.items():
        assert a["status"] == "ok", (name, a["reason"])
        assert (tiny_export_dir / a["file"]).is_file()
        assert a["format"] in ("tflite", "onnx") and a["conversion_seconds"] > 0


def test_manifest_hashes_are_of_the_final_files(tiny_export_dir, manifest):
    for a in manifest["artifacts"]:
        f = tiny_export_dir / a["file"]
        assert a["sha256"] == sha256_file(f) and a["bytes"] == f.stat().st_size


def test_metadata_readable_from_files_alone(tiny_export_dir, tiny_run_dir, manifest):
    labels = tuple((tiny_run_dir / "labels.txt").read_text().split())
    assert (tiny_export_dir / "labels.txt").read_text().split() == list(labels)
    assert manifest["labels"] == list(labels)
    assert manifest["source_model_sha256"] == sha256_file(tiny_run_dir / "model.keras")
    for a in manifest["artifacts"]:
        info = read_model_info(tiny_export_dir / a["file"])
        assert info is not None, a["file"]
        assert info.labels == labels and info.scheme == a["scheme"]
        assert info.input == InputContract.from_dict(manifest["input"]) == InputContract(32, 32)
        assert info.source_sha256 == manifest["source_model_sha256"] and info.edgeport_version


def test_manifest_describes_converters_and_io(manifest):
    assert {"tensorflow", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert"} <= set(manifest["converters"])
    assert manifest["converters"]["tensorflow"].startswith("2.")
    arts = {a["scheme"]: a for a in manifest["artifacts"]}
    assert arts["int8"]["input"]["dtype"] == "uint8" and arts["fp32"]["input"]["dtype"] == "float32"
    assert arts["onnx-int8"]["input"]["dtype"] == "float32"
    assert sum(manifest["calibration"]["per_class"].values()) == manifest["calibration"]["samples"] == 16


def test_verification_figures(manifest):
    arts = {a["scheme"]: a for a in manifest["artifacts"]}
    n = manifest["verification"]["samples"]
    for name in ("fp32", "onnx"):
        v = arts[name]["verification"]
        assert v["agreement"] == 100.0 and v["max_abs_diff"] <= 1e-4 and v["samples"] == n
    for a in arts.values():
        v = a["verification"]
        assert {"agreement", "accuracy", "delta_top1", "max_abs_diff", "engine", "seconds"} <= set(v)
        assert v["delta_top1"] == pytest.approx(v["accuracy"] - manifest["verification"]["keras_accuracy"], abs=1e-3) \
            or a["scheme"] == "int16x8"
    assert arts["int16x8"]["verification"]["samples"] == manifest["verification"]["int16x8_samples"]


def test_op_without_integer_kernel_makes_only_that_scheme_unsupported(sine_run_dir, tmp_path):
    """SIN has no int8 kernel and full-integer int8 has no float fallback: int8 is 'unsupported' (op named);
    int16x8 keeps SIN float (the converter's fallback) and says so."""
    res = export(ExportConfig(run_dir=str(sine_run_dir), out=str(tmp_path / "x"),
                              schemes=("fp32", "int8", "int16x8", "onnx"), calibration_samples=8, verify_samples=8,
                              progress=False))
    assert [a.status for a in res.artifacts] == ["ok", "unsupported", "ok", "ok"]
    reason = res.artifact("int8").reason
    assert reason.startswith("int8 is not supported for this model: SIN has no int8 kernel")
    assert not (tmp_path / "x" / "model_int8.tflite").exists()
    assert not (tmp_path / "x" / "failed" / "model_int8.tflite").exists()
    int16 = res.artifact("int16x8")
    assert int16.graph["float_fallback"] == ["SIN"] and any("SIN stayed float32" in n for n in int16.notes)
    assert int16.graph["ops"]["SIN"] == 1 and int16.graph["weight_dtypes"].get("int8")
    saved = json.loads(res.manifest_path.read_text())
    assert [a["status"] for a in saved["artifacts"]] == ["ok", "unsupported", "ok", "ok"]
    # int8 was asked for by name: the export is not ok; nothing failed outright
    assert not res.ok and res.failed == [] and [a.scheme for a in res.unsupported] == ["int8"]


def test_corrupt_model_file_is_a_model_error(tiny_run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("labels.txt", "config.yaml", "data_split.csv"):
        (run / name).write_bytes((tiny_run_dir / name).read_bytes())
    (run / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="expected a Keras 3 model file"):
        export(ExportConfig(run_dir=str(run), schemes=("fp32",), progress=False))


@pytest.mark.parametrize("io_dtype,dtype,zero_point", [("int8", "int8", -128), ("float32", "float32", 0)])
def test_int8_io_dtype(tiny_run_dir, tmp_path, io_dtype, dtype, zero_point):
    res = export(ExportConfig(run_dir=str(tiny_run_dir), out=str(tmp_path), schemes=("int8",), io_dtype=io_dtype,
                              calibration_samples=8, verify_samples=8, progress=False))
    a = res.artifact("int8")
    assert a.ok, a.reason
    assert a.input["dtype"] == dtype and a.input["zero_point"] == zero_point
    assert a.graph["float_ops"] == []
    assert read_model_info(Path(tmp_path) / "model_int8.tflite").extra["io_dtype"] == io_dtype


def test_calibration_data_folder(tiny_run_dir, tiny_data_dir, tmp_path):
    res = export(ExportConfig(run_dir=str(tiny_run_dir), out=str(tmp_path), schemes=("onnx-int8",),
                              calibration_data=str(tiny_data_dir), calibration_samples=10, verify_samples=5,
                              progress=False))
    cal = res.manifest["calibration"]
    assert cal["source"] == str(Path(tiny_data_dir).resolve()) and cal["samples"] == 10
    assert set(cal["per_class"].values()) == {2}
    assert res.artifact("onnx-int8").ok


def test_gate_rules(tmp_path):
    from edgeport.export.exporter import ArtifactResult, _gate

    def art(**v):
        return ArtifactResult("int8", "model_int8.tflite", "tflite", verification=v)

    figures = {"samples": 10, "agreement": 90.0, "delta_top1": -2.0, "max_abs_diff": 0.01}
    cfg = ExportConfig(run_dir=str(tmp_path))
    a = art(**figures)
    _gate(a, cfg, reference=False)
    assert a.ok
    _gate(a, cfg, reference=True)  # a float32 reference must match Keras to 1e-4
    assert not a.ok and "differs from Keras by 0.01" in a.reason
    a = art(**figures)
    _gate(a, ExportConfig(run_dir=str(tmp_path), max_drop=1.5), reference=False)
    assert "dropped 2.00 points" in a.reason
    a = art(**figures)
    _gate(a, ExportConfig(run_dir=str(tmp_path), max_drop=2.5), reference=False)
    assert a.ok
    a = art()
    _gate(a, ExportConfig(run_dir=str(tmp_path), max_drop=2.5), reference=False)
    assert "needs validation images" in a.reason
