"""The demo end to end at its smallest settings: generated data -> build -> export -> bench -> video loop."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")


def test_demo_smallest_settings_end_to_end(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "edgeport", "demo", "--out", str(out), "--backbone", "tiny", "--image-size", "32",
           "--per-class", "12", "--epochs", "2", "--fine-tune-epochs", "1", "--bench-runs", "5", "--bench-limit", "10",
           "--verify-samples", "10", "--calibration-samples", "8", "--video-images", "5", "--frames-per-image", "2",
           "--schemes", "fp32,int8,onnx",
           "--resize", "bilinear", "--golden-images", "5", "--progress", "line"]  # stage options, passed on
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [a["scheme"] for a in summary["artifacts"]] == ["fp32", "int8", "onnx"]
    assert all(a["status"] == "ok" for a in summary["artifacts"])
    for name in ("model_fp32.tflite", "model_int8.tflite", "model.onnx", "manifest.json"):
        assert (out / "export" / name).is_file()
    from edgeport.golden import read_golden

    assert json.loads((out / "export" / "manifest.json").read_text())["input"]["resize"] == "bilinear"  # build's
    assert len(read_golden(out / "export").files) == 5  # export's
    assert "[#" not in proc.stderr  # every stage's progress as lines
    for name in ("bench.json", "bench.csv", "bench.md", "bench.png"):
        assert (out / "bench" / name).is_file()
    frames = [json.loads(line) for line in (out / "video" / "frames.jsonl").read_text().splitlines()]
    assert len(frames) == 10 and summary["runtime"]["frames"] == 10  # 5 images x 2 frames, none dropped
    cap = cv2.VideoCapture(str(out / "video" / "annotated.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape[2] == 3
    assert cv2.imread(str(out / "video" / "overlay.png")) is not None
    assert "next, on your own data and device" in proc.stdout
    assert "model_int8.tflite" in proc.stdout
    rt = summary["runtime"]
    assert rt["video_images"] == 5 and 0 <= rt["frames_correct"] <= 10
    assert rt["frame_top1"] == rt["frames_correct"] / 10
    assert rt["bound_by"] in rt["loop_ms"] and "the loop is bound by" in proc.stdout
    assert "ratio to 1/median invoke" not in proc.stdout


def test_demo_rejects_bad_settings(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgeport", "demo", "--out", str(tmp_path), "--per-class", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "expected --per-class >= 4" in proc.stderr and "Traceback" not in proc.stderr


def test_pipeline_requires_data():
    proc = subprocess.run([sys.executable, "-m", "edgeport", "pipeline", "--out", "x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--data" in proc.stderr
