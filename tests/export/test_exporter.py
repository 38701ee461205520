"""export(): every scheme through the registry, the manifest, embedded metadata, failures."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgeport.contract import InputContract
from edgeport.errors import ModelError
from edgeport.export import ALL_SCHEMES, ExportConfig, export
from edgeport.files import sha256_file
from edgeport.metadata import read_model_info


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
    assert sum(manifest["calibration"]["per_class"].values()) == manifest["calibration"]["images"] == 16


def test_verification_figures(manifest):
    arts = {a["scheme"]: a for a in manifest["artifacts"]}
    n = manifest["verification"]["images"]
    for name in ("fp32", "onnx"):
        v = arts[name]["verification"]
        assert v["agreement_pct"] == 100.0 and v["max_abs_prob_diff"] <= 1e-4 and v["images"] == n
    for a in arts.values():
        v = a["verification"]
        assert {"agreement_pct", "decided_agreement_pct", "top1_pct", "delta_top1_pts", "max_abs_prob_diff",
                "engine", "seconds"} <= set(v)
        assert v["delta_top1_pts"] == pytest.approx(v["top1_pct"] - manifest["verification"]["keras_top1_pct"],
                                                    abs=1e-3) or a["scheme"] == "int16x8"
        # each share with its interval at 95 %, the difference from the paired counts
        lo, hi = v["agreement_pct_ci"]
        assert lo <= v["agreement_pct"] <= hi and sum(v["top1_pairs"]) == v["images"]
        lo, hi = v["delta_top1_pts_ci"]
        assert lo <= v["delta_top1_pts"] <= hi
        assert v["images"] == n or "--verify-seconds" in v.get("note", "")  # a time-capped prefix says so


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
    assert cal["source"] == str(tiny_data_dir) and cal["images"] == 10
    assert set(cal["per_class"].values()) == {2}
    assert res.artifact("onnx-int8").ok


def test_a_diverged_model_is_a_model_error_and_writes_nothing(tiny_run_dir, tmp_path):
    import keras

    run = tmp_path / "run"
    run.mkdir()
    for name in ("labels.txt", "config.yaml", "data_split.csv"):
        (run / name).write_bytes((tiny_run_dir / name).read_bytes())
    model = keras.saving.load_model(tiny_run_dir / "model.keras", compile=False)
    kernel = [w for w in model.weights if w.path.endswith("kernel")][-1]  # the classifier
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))  # what a run trained into NaN saved
    model.save(run / "model.keras")
    with pytest.raises(ModelError, match=r"expected finite probabilities from the run's model, received NaN/inf "
                                         r"on \d+ of \d+ val images: its training diverged"):
        export(ExportConfig(run_dir=str(run), out=str(tmp_path / "export"), schemes=("fp32",), progress=False))
    assert not (tmp_path / "export").exists()


def _figures(n: int, agree: int, decided: int, decided_agree: int, pairs: tuple[int, int, int, int],
             max_abs_prob_diff: float = 0.01) -> dict:
    """Verification figures as metrics.compare writes them, from counts (intervals derived, not typed in)."""
    from edgeport.intervals import paired_difference_interval, proportion_interval

    return {"images": n, "agreements": agree, "agreement_pct": 100.0 * agree / n,
            "agreement_pct_ci": list(proportion_interval(agree, n)), "decided_images": decided,
            "decided_agreements": decided_agree, "decided_agreement_pct": 100.0 * decided_agree / decided,
            "top1_pairs": list(pairs), "delta_top1_pts": 100.0 * (pairs[1] - pairs[2]) / n,
            "delta_top1_pts_ci": list(paired_difference_interval(*pairs)), "max_abs_prob_diff": max_abs_prob_diff}


def test_gate_rules(tmp_path):
    """Lossy schemes are decided on intervals: failed only on evidence of a miss; float32 on the tolerance."""
    from edgeport.export.exporter import ArtifactResult, _gate

    def art(**v):
        return ArtifactResult("int8", "model_int8.tflite", "tflite", verification=v)

    cfg = ExportConfig(run_dir=str(tmp_path))
    # 1000 images, 900 agree, Δtop-1 -2 points: clear evidence either way
    clear = _figures(1000, 900, 800, 800, (480, 10, 30, 480))
    a = art(**clear)
    _gate(a, cfg, reference=False)  # the default budget: Keras' decided answers kept (100 %)
    assert a.ok and a.verification["budget"]["outcome"] == "met"
    a = art(**_figures(1000, 900, 800, 760, (480, 10, 30, 480)))  # 95 % where decided, [93.25, 96.40]
    _gate(a, cfg, reference=False)
    assert "misses the budget (agreement where Keras is decided >= 98 %)" in a.reason
    assert "decided 95.00 % [93.25, 96.40] vs limit 98 %: missed" in a.reason
    a = art(**_figures(40, 36, 30, 29, (18, 1, 2, 19)))  # 96.7 % where decided on 30 images: [82.8, 99.9]
    _gate(a, cfg, reference=False)
    assert a.ok and a.verification["budget"]["outcome"] == "undecided"
    assert "not decided at 30 images (about" in a.notes[-1] and "--undecided fail" in a.notes[-1]
    a = art(**_figures(40, 36, 30, 29, (18, 1, 2, 19)))
    _gate(a, ExportConfig(run_dir=str(tmp_path), undecided="fail"), reference=False)
    assert not a.ok and "is not decided on 40 held-aside images" in a.reason
    a = art(**clear)
    _gate(a, cfg, reference=True)  # a float32 reference must match Keras to 1e-4
    assert not a.ok and "differs from Keras by 0.01" in a.reason
    a = art(**{**clear, "max_abs_prob_diff": float("nan")})
    _gate(a, cfg, reference=True)  # NaN is no match
    assert not a.ok and "differs from Keras by nan" in a.reason
    a = art(**clear)
    _gate(a, ExportConfig(run_dir=str(tmp_path), max_drop=0.5), reference=False)  # Δ -2.0 [-3.3, -0.8]
    assert "misses the budget (Δtop-1 >= -0.5 points)" in a.reason and "Δtop-1 -2.00 [-3." in a.reason
    a = art(**clear)  # a user's limit replaces the default one (decided agreement is not checked)
    _gate(a, ExportConfig(run_dir=str(tmp_path), max_drop=3.5, min_agreement=85), reference=False)
    assert a.ok and set(a.verification["budget"]["limits"]) == {"max_drop", "min_agreement"}
    a = art(**clear)
    _gate(a, ExportConfig(run_dir=str(tmp_path), min_agreement=97), reference=False)
    assert "agreement 90.00 % [" in a.reason
    a = art()
    _gate(a, ExportConfig(run_dir=str(tmp_path), max_drop=2.5), reference=False)
    assert "needs validation images" in a.reason


def test_a_second_export_keeps_what_it_did_not_redo(tiny_run_dir, tmp_path):
    out = tmp_path / "export"
    first = export(ExportConfig(run_dir=str(tiny_run_dir), out=str(out), schemes=("fp32",), verify_samples=4,
                                progress=False))
    fp32_hash = first.artifact("fp32").sha256
    second = export(ExportConfig(run_dir=str(tiny_run_dir), out=str(out), schemes=("onnx",), verify_samples=4,
                                 progress=False))
    assert [a.scheme for a in second.artifacts] == ["fp32", "onnx"]  # fp32 kept: same model.keras, same file
    assert second.artifact("fp32").sha256 == fp32_hash == sha256_file(out / "model_fp32.tflite")
    saved = json.loads((out / "manifest.json").read_text())
    assert [a["scheme"] for a in saved["artifacts"]] == ["fp32", "onnx"] and saved["schema_version"] == 2
    assert saved["run_dir"] == os.path.relpath(tiny_run_dir.resolve(), out.resolve())  # no absolute paths
    (out / "model_fp32.tflite").write_bytes(b"changed by hand")  # no longer what was exported: not kept
    third = export(ExportConfig(run_dir=str(tiny_run_dir), out=str(out), schemes=("onnx",), verify_samples=4,
                                progress=False))
    assert [a.scheme for a in third.artifacts] == ["onnx"] and not (out / "model_fp32.tflite").exists()


def test_an_interrupted_export_leaves_the_previous_one_and_no_temp_folder(tiny_run_dir, tmp_path, monkeypatch):
    import tempfile

    from edgeport.export import converters

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "export"
    export(ExportConfig(run_dir=str(tiny_run_dir), out=str(out), schemes=("fp32",), verify_samples=4, progress=False))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def interrupted(ctx, path):
        path.write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setitem(converters.CONVERTERS._items, "onnx", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export(ExportConfig(run_dir=str(tiny_run_dir), out=str(out), schemes=("fp32", "onnx"), verify_samples=4,
                            progress=False))
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "tmp"]  # no half-built export beside it
    assert list((tmp_path / "tmp").iterdir()) == []  # the scratch folder went too


def test_out_must_be_new_empty_or_an_export(tiny_run_dir, tmp_path):
    from edgeport.errors import ConfigError

    with pytest.raises(ConfigError, match="the run directory"):
        export(ExportConfig(run_dir=str(tiny_run_dir), out=str(tiny_run_dir), schemes=("fp32",), progress=False))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("mine")
    with pytest.raises(ConfigError, match="holds other files"):
        export(ExportConfig(run_dir=str(tiny_run_dir), out=str(busy), schemes=("fp32",), progress=False))
    assert (busy / "thesis.tex").read_text() == "mine"
