"""`edgeport check`: a device checked against the export's golden set, without a dataset (TensorFlow-free)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeport.benchmarks.check import FAIL, NOT_AVAILABLE, PASS, CheckConfig, run_check
from edgeport.cli import main
from edgeport.errors import DataError
from edgeport.golden import read_golden
from edgeport.runtime.engines import available_engines


@pytest.fixture(scope="module", autouse=True)
def _needs_an_engine():
    if not available_engines():
        pytest.skip("no engine installed")


def test_the_export_carries_a_golden_set(tiny_export_dir):
    golden = read_golden(tiny_export_dir / "golden")
    assert golden is not None and len(golden.files) == len(golden.targets) == len(golden.reference) > 0
    assert golden.reference.shape[1] == len(golden.labels)
    c = golden.contract
    for img in golden.images():  # stored larger than the model's input: the device's own resize runs on them
        assert max(img.shape[:2]) > max(c.height, c.width) and max(img.shape[:2]) <= 2 * max(c.height, c.width)
    assert {"fp32", "int8"} <= set(golden.figures)


def test_a_good_export_passes(tiny_export_dir, capsys):
    report = run_check(CheckConfig(export_dir=str(tiny_export_dir)))
    assert report["ok"] and report["rows"]
    for r in report["rows"]:
        assert r["status"] in (PASS, "n/a"), r
        if r["status"] == PASS and r["scheme"] in ("fp32", "onnx"):
            assert r["agreement_pct"] == 100.0 and r["max_abs_prob_diff"] < 1e-4
    assert main(["check", str(tiny_export_dir)]) == 0
    out = capsys.readouterr().out
    assert "model_fp32.tflite" in out and "checks passed" in out


@pytest.mark.parametrize("name, says", [("nearest", "input resize nearest here, but the golden set was made with area"),
                                        ("swapped", "labels in another order than the golden set's")])
def test_an_export_made_differently_fails_clearly(tiny_export_dir, mismatched_exports, name, says, capsys):
    export = mismatched_exports[name]
    own = run_check(CheckConfig(export_dir=str(export)))
    assert own["ok"]  # consistent with its own golden set ...
    report = run_check(CheckConfig(export_dir=str(export), golden=str(tiny_export_dir / "golden")))
    assert not report["ok"]  # ... but not with the model as trained
    failed = [r for r in report["rows"] if r["status"] == FAIL]
    assert failed and all(says in r["reason"] for r in failed)
    assert main(["check", str(export), "--golden", str(tiny_export_dir / "golden")]) == 1
    assert says in capsys.readouterr().out


def _device_that_loses(tiny_export_dir, tmp_path, images: int):
    """An export whose golden set says export agreed with Keras on ``images`` images where this device's fp32
    does not (Keras' answer rotated to another class there, and export recorded that answer)."""
    import numpy as np

    export = tmp_path / f"export-{images}"
    shutil.copytree(tiny_export_dir, export)
    golden = json.loads((export / "golden" / "golden.json").read_text())
    top1 = golden["figures"]["fp32"]["top1"]
    for i, img in enumerate(golden["images"][:images]):
        img["reference"] = img["reference"][1:] + img["reference"][:1]
        top1[i] = int(np.argmax(img["reference"]))
    (export / "golden" / "golden.json").write_text(json.dumps(golden))
    return export


def test_one_image_in_32_is_no_evidence_but_many_are(tiny_export_dir, tmp_path):
    """The agreement is decided on the paired interval: one image lost in 32 passes (with a note), eight fail."""
    lost_one, lost_eight = (_device_that_loses(tiny_export_dir, tmp_path, n) for n in (1, 8))
    one = run_check(CheckConfig(export_dir=str(lost_one), schemes=("fp32",), prob_tolerance=1))
    (row,) = one["rows"]
    assert row["status"] == PASS and row["agreement"]["outcome"] == "undecided" and "not decided" in row["reason"]
    assert row["agreement"]["value"] == pytest.approx(-100 / len(one_images(tiny_export_dir)), abs=1e-3)
    many = run_check(CheckConfig(export_dir=str(lost_eight), schemes=("fp32",), prob_tolerance=1))
    (row,) = many["rows"]
    assert row["status"] == FAIL and row["agreement"]["outcome"] == "missed" and "missed" in row["reason"]
    strict = run_check(CheckConfig(export_dir=str(lost_one), schemes=("fp32",), prob_tolerance=1, undecided="fail"))
    assert not strict["ok"]
    loose = run_check(CheckConfig(export_dir=str(lost_eight), schemes=("fp32",), tolerance_pts=100, prob_tolerance=1))
    assert loose["ok"]


def one_images(export_dir):
    return json.loads((export_dir / "golden" / "golden.json").read_text())["images"]


def test_no_golden_set_is_a_clear_error(tiny_export_dir, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(tiny_export_dir, export, ignore=shutil.ignore_patterns("golden"))
    with pytest.raises(DataError, match="expected a golden set"):
        run_check(CheckConfig(export_dir=str(export)))


def _edited_golden(tiny_export_dir, tmp_path, name: str, edit) -> Path:
    """A copy of the export whose golden.json ``edit(golden)`` changed."""
    export = tmp_path / f"export-{name}"
    shutil.copytree(tiny_export_dir, export)
    path = export / "golden" / "golden.json"
    golden = json.loads(path.read_text())
    edit(golden)
    path.write_text(json.dumps(golden))
    return export


def test_the_probability_tolerance_alone_fails_a_check(tiny_export_dir, tmp_path):
    """Keras' probabilities moved by 0.3 towards its own answer on every image: no top-1 changes (the agreement
    is what export recorded), only max |Δp| grows, and that alone fails the check unless the tolerance covers it."""
    import numpy as np

    def sharpen(golden):
        for img in golden["images"]:
            p = np.asarray(img["reference"], dtype=np.float64)
            img["reference"] = (0.7 * p + 0.3 * np.eye(len(p))[int(np.argmax(p))]).tolist()

    export = _edited_golden(tiny_export_dir, tmp_path, "sharper", sharpen)
    report = run_check(CheckConfig(export_dir=str(export), schemes=("fp32",)))
    (row,) = report["rows"]
    assert row["status"] == FAIL and not report["ok"], row
    assert row["agreement_pct"] == row["export_agreement_pct"] == 100.0  # the agreement is not what failed
    assert row["reason"].startswith("max |Δp| ") and "tolerance +0.1" in row["reason"] and ";" not in row["reason"]
    assert row["max_abs_prob_diff"] > row["export_max_abs_prob_diff"] + 0.1
    loose = run_check(CheckConfig(export_dir=str(export), schemes=("fp32",), prob_tolerance=1.0))
    assert loose["ok"] and loose["rows"][0]["status"] == PASS


def test_a_label_set_that_differs_fails_with_both_sets_named(tiny_export_dir, tmp_path, capsys):
    def rename(golden):  # another model's classes: the first one renamed (and its images' labels with it)
        old = golden["labels"][0]
        golden["labels"][0] = "not-a-" + old
        for img in golden["images"]:
            img["label"] = "not-a-" + old if img["label"] == old else img["label"]

    export = _edited_golden(tiny_export_dir, tmp_path, "renamed", rename)
    labels = tuple(json.loads((tiny_export_dir / "golden" / "golden.json").read_text())["labels"])
    report = run_check(CheckConfig(export_dir=str(export), schemes=("fp32", "int8")))
    assert not report["ok"] and report["rows"]
    for row in report["rows"]:
        assert row["status"] == FAIL, row
        assert f"expected the labels of {row['artifact']} ({', '.join(labels)}) to be the golden set's" in row["reason"]
        assert "not-a-" + labels[0] in row["reason"]
    assert main(["check", str(export), "--schemes", "fp32"]) == 1
    assert "to be the golden set's" in capsys.readouterr().out


def test_a_golden_set_without_export_figures_fails(tiny_export_dir, tmp_path):
    """A golden set that records nothing for a scheme cannot vouch for it: that row fails, the others pass."""
    export = _edited_golden(tiny_export_dir, tmp_path, "nofigures", lambda g: g["figures"].pop("int8"))
    report = run_check(CheckConfig(export_dir=str(export), schemes=("fp32", "int8")))
    rows = {r["scheme"]: r for r in report["rows"]}
    assert rows["fp32"]["status"] == PASS
    assert rows["int8"]["status"] == FAIL and "no export figures for this scheme" in rows["int8"]["reason"]
    assert not report["ok"]
    nothing = _edited_golden(tiny_export_dir, tmp_path, "empty", lambda g: g["figures"].clear())
    ran = [r for r in run_check(CheckConfig(export_dir=str(nothing)))["rows"] if r["status"] != NOT_AVAILABLE]
    assert ran and all(r["status"] == FAIL for r in ran), ran  # (n/a: a file no engine here runs, ONNX in the Pi job)
