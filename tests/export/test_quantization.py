"""The int8 budget through `edgeport export`: a fragile model is repaired by the search, honestly labelled,
reported on images the search did not use, and read back without TensorFlow."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import write_run
from int8.test_search import SIZE, _nearest_center_model

from edgeport.export import ExportConfig, export


@pytest.fixture(scope="module")
def fragile_run(keras, tmp_path_factory):
    """A run whose int8 model predicts one class for every image unless two Dense layers stay float."""
    root = tmp_path_factory.mktemp("fragile-run")
    rng = np.random.default_rng(0)
    for k in range(5):
        d = root / "data" / f"level{k}"
        d.mkdir(parents=True)
        for i in range(24):
            img = np.full((SIZE, SIZE, 3), 40 + 40 * k, np.int16) + rng.integers(-6, 7, (SIZE, SIZE, 3))
            cv2.imwrite(str(d / f"{i}.png"), img.clip(0, 255).astype(np.uint8))
    keras.utils.set_random_seed(0)
    return write_run(root, _nearest_center_model(keras, tiny=0.02, temperature=100.0), root / "data", size=SIZE)


@pytest.fixture(scope="module")
def repaired(fragile_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("fragile-export") / "export"
    return export(ExportConfig(run_dir=str(fragile_run), out=str(out), schemes=("fp32", "int8", "onnx-int8"),
                               calibration_samples=20, max_evals=16, progress=False))


def test_the_default_budget_repairs_a_fragile_int8_model(repaired):
    assert repaired.ok, [(a.scheme, a.reason) for a in repaired.artifacts]
    for scheme in ("int8", "onnx-int8"):
        a = repaired.artifact(scheme)
        q = a.quantization
        assert q["applied"] and q["search"]["met"]
        assert {"spread", "decide"} <= set(q["float_fallback"]["layers"])  # mapped back to the Keras layers
        assert 0 < q["float_fallback"]["macs_share"] < 1
        assert a.precision.startswith(f"{scheme}, ") and "ops float" in a.precision
        assert a.verification["decided_agreement_pct"] == 100.0
        full = q["full_int8"]  # the full-integer model beside it, on the same held-aside images
        assert full["images"] == a.verification["images"] and full["agreement_pct"] <= 40.0
        assert a.verification["p50_ms"] > 0 and full["p50_ms"] > 0
        assert (repaired.out_dir / q["report"]["png"]).is_file() and (repaired.out_dir / q["report"]["md"]).is_file()
    assert repaired.artifact("fp32").verification["agreement_pct"] == 100.0


def test_no_selecting_on_the_reported_images(repaired):
    """The images that chose (the search's) and those that decide and report are different images, by name."""
    v, b = repaired.manifest["verification"], repaired.manifest["budget"]
    assert b["default"] and b["min_decided_agreement"] == 98.0
    chose, reported = v["selection_image_ids"], v["report_image_ids"]
    assert len(chose) == v["selection_images"] > 0 and len(reported) == v["images"] > 0
    assert not set(chose) & set(reported)  # disjoint by identity
    assert len(set(chose) | set(reported)) == 30  # 6 val images per class, all used, split apart
    assert all(name.endswith(".png") for name in chose + reported)
    search = repaired.artifact("int8").quantization["search"]
    assert search["selection_images"] == v["selection_images"]
    assert all(step["images"] <= v["selection_images"] for step in search["trace"])
    for scheme in ("int8", "onnx-int8"):  # every figure reported (and the decision) is on the report half
        a = repaired.artifact(scheme)
        assert a.verification["images"] == len(reported) == sum(a.verification["top1_pairs"])
        assert a.verification["budget"]["limits"]["min_decided_agreement"]["images"] == a.verification["decided_images"]


def test_the_label_travels_in_the_file_and_the_manifest(repaired):
    from edgeport.manifest import read_manifest
    from edgeport.metadata import read_model_info

    m = read_manifest(repaired.out_dir)
    entry = next(a for a in m.artifacts if a.scheme == "int8")
    assert entry.precision == repaired.artifact("int8").precision  # what run and bench show
    info = read_model_info(repaired.out_dir / "model_int8.tflite")
    assert info.extra["precision"] == entry.precision


def test_without_the_search_the_fragile_int8_fails_with_the_reason(fragile_run, tmp_path):
    res = export(ExportConfig(run_dir=str(fragile_run), out=str(tmp_path / "x"), schemes=("int8",), search=False,
                              calibration_samples=20, progress=False))
    a = res.artifact("int8")
    assert a.status == "failed" and "misses the budget" in a.reason and a.file == "failed/model_int8.tflite"
    assert not res.ok


def test_diagnose_writes_the_report_without_applying(fragile_run, tmp_path):
    res = export(ExportConfig(run_dir=str(fragile_run), out=str(tmp_path / "x"), schemes=("int8",), search=False,
                              diagnose=True, min_agreement=0.0, calibration_samples=20, max_evals=8, progress=False))
    a = res.artifact("int8")
    assert a.ok and not a.quantization["applied"] and a.precision == "int8 (weights and activations)"
    report = json.loads((res.out_dir / "quantization" / "int8.json").read_text())
    assert report["ranking"] and report["layers"] and report["trace"][0]["phase"] == "full"
    # where the error enters, per layer: the input side is clean (> 40 dB), the fragile tensor's reader is
    # noise (< 0 dB: the tiny channel rounded to zero leaves 'decide' nothing to decide on)
    sqnr = {tuple(r["layers"]) or (r["op"],): r["sqnr_db"] for r in report["layers"]}
    assert sqnr[("scale",)] > 40 and sqnr[("gap",)] > 40 and sqnr[("spread",)] > 40, sqnr
    assert sqnr[("decide",)] < 0 and sqnr[("SOFTMAX",)] < 5, sqnr


def test_run_and_bench_read_the_float_list_without_tensorflow(repaired, tmp_path):
    """In a child process where TensorFlow cannot be imported: the runtime and bench show the fallback."""
    import subprocess
    import sys

    code = """
import sys, json
sys.modules["tensorflow"] = None
from edgeport.runtime import Classifier
from edgeport.benchmarks.artifacts import find_artifacts
from edgeport.manifest import read_manifest
with Classifier.open(sys.argv[1], scheme="int8", engine="litert") as clf:
    print(json.dumps({"run": clf.precision,
                      "bench": [a.precision for a in find_artifacts(sys.argv[1])[0] if a.scheme == "int8"][0],
                      "layers": next(a for a in read_manifest(sys.argv[1]).artifacts
                                     if a.scheme == "int8").entry["quantization"]["float_fallback"]["layers"]}))
"""
    res = subprocess.run([sys.executable, "-c", code, str(repaired.out_dir)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["run"] == got["bench"] == repaired.artifact("int8").precision and "ops float" in got["run"]
    assert {"spread", "decide"} <= set(got["layers"])
