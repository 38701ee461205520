"""`edgeport export` end to end: table, exit codes, --max-drop."""

import json

import pytest

from edgeport.cli import main
from edgeport.files import sha256_file
from edgeport.runtime.classifier import list_artifacts


def test_help_lists_schemes(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0
    assert "onnx-int8" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeport export: error: expected a run directory") and "\n" not in err
    assert main(["export", str(tmp_path), "--schemes", "fp32,int4"]) == 2
    assert "unknown export scheme" in capsys.readouterr().err


def test_end_to_end(tiny_run_dir, tmp_path, capsys):
    out = tmp_path / "exp"
    code = main(["-q", "export", str(tiny_run_dir), "--schemes", "fp32,int8", "--out", str(out),
                 "--calibration-samples", "8", "--verify-samples", "8"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "model_fp32.tflite" in text and "model_int8.tflite" in text and "agree %" in text
    assert {a["scheme"] for a in json.loads((out / "manifest.json").read_text())["artifacts"]} == {"fp32", "int8"}


def test_max_drop_gates_exit_code(flat_softmax_run_dir, tmp_path, capsys):
    args = ["-q", "export", str(flat_softmax_run_dir), "--schemes", "fp32,int8", "--out", str(tmp_path),
            "--calibration-samples", "20"]
    assert main(args) == 0  # no budget: the int8 drop is reported, not fatal
    capsys.readouterr()
    m = {a["scheme"]: a for a in json.loads((tmp_path / "manifest.json").read_text())["artifacts"]}
    assert m["fp32"]["verification"]["top1_pct"] == 100.0
    assert m["int8"]["verification"]["delta_top1_pts"] <= -50  # uint8 output steps cannot separate the classes
    assert main(args + ["--max-drop", "1"]) == 1
    text = capsys.readouterr().out
    assert "int8 FAILED: misses the budget (Δtop-1 >= -1 points)" in text
    assert "no candidate met the budget" in text  # the search tried, and says what it reached
    m = {a["scheme"]: a for a in json.loads((tmp_path / "manifest.json").read_text())["artifacts"]}
    assert m["fp32"]["status"] == "ok" and m["int8"]["status"] == "failed"
    # the failed file is kept, out of the folder a device would copy; the runtime never picks it
    assert m["int8"]["file"] == "failed/model_int8.tflite" and not (tmp_path / "model_int8.tflite").exists()
    assert sha256_file(tmp_path / "failed" / "model_int8.tflite") == m["int8"]["sha256"]
    assert [a.path.name for a in list_artifacts(tmp_path)] == ["model_fp32.tflite"]
    assert main(args) == 0  # passing again clears the stale failed copy
    assert (tmp_path / "model_int8.tflite").is_file() and not (tmp_path / "failed" / "model_int8.tflite").exists()
