"""`edgeport run` end to end in a subprocess: JSON lines, stats, --save, --max-frames, SIGTERM, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import pytest
from allowed_skips import TFLITE_ENGINE, job, skip_without

from edgeport.runtime.classifier import Classifier
from edgeport.runtime.engines import engines_for

from .helpers import ROOT, run_edgeport


@pytest.fixture()
def model(export_dir):
    path = export_dir / "model_int8.tflite"
    if not path.is_file() or not engines_for(path):
        pytest.skip("no int8 TFLite artifact or no TFLite engine here")
    return path


def test_headless_json_lines_and_stats(model, shapes_video, tmp_path):
    summary = tmp_path / "summary.json"
    res = run_edgeport("run", str(model), "--source", str(shapes_video), "--headless", "--top-k", "2",
                       "--threads", "1", "--json-summary", str(summary))
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]  # stdout is only JSON lines
    assert [d["index"] for d in lines] == list(range(20))
    with Classifier.open(model) as clf:
        labels = set(clf.labels)
        cap = cv2.VideoCapture(str(shapes_video))
        for d in lines:
            ok, frame = cap.read()
            assert ok and [t["label"] for t in d["top"]] == [label for label, _ in clf.classify(frame, top_k=2)]
    for d in lines:
        assert len(d["top"]) == 2 and {t["label"] for t in d["top"]} <= labels
        assert set(d["timings_ms"]) == {"capture_age", "preprocess", "invoke", "postprocess", "total"}
        assert d["timestamp"] > 1e9
    for stage in ("capture_age", "preprocess", "invoke", "postprocess"):
        assert stage in res.stderr
    assert "FPS achieved" in res.stderr and "p95" in res.stderr
    s = json.loads(summary.read_text())
    assert s["frames"] == 20 and s["bad_frames"] == 0 and s["engine"] == TFLITE_ENGINE[job()]


def test_max_frames_and_save_a_readable_video(model, shapes_video, tmp_path):
    out = tmp_path / "annotated.mp4"
    res = run_edgeport("run", str(model), "--source", str(shapes_video), "--max-frames", "7", "--save", str(out))
    assert res.returncode == 0, res.stderr
    assert len([line for line in res.stdout.splitlines() if line.startswith("#")]) == 7
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 7 and frames[0].shape == (64, 64, 3)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)


def test_bad_frames_skipped_and_counted(model, image_folder, tmp_path):
    summary = tmp_path / "s.json"
    res = run_edgeport("run", str(model), "--source", str(image_folder), "--headless", "--json-summary", str(summary))
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 6
    assert json.loads(summary.read_text())["bad_frames"] == 1
    assert "bad_frames 1" in res.stderr


def test_export_dir_and_onnx_engine(export_dir, shapes_video):
    skip_without("onnxruntime")
    res = run_edgeport("run", str(export_dir), "--engine", "onnxruntime", "--providers", "cpu",
                       "--source", str(shapes_video), "--headless", "--max-frames", "3")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 3 and "on onnxruntime" in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_with_stats(model, long_video, sig):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeport", "run", str(model), "--source", str(long_video), "--realtime", "--headless"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
    try:
        first = proc.stdout.readline()
        assert json.loads(first)["index"] >= 0
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - t0 < 5
    assert proc.returncode == 0, err
    assert "stopped_by_signal True" in err and "FPS achieved" in err
    assert 1 <= 1 + len(out.splitlines()) < 300  # stopped long before the 30 s video ended


@pytest.mark.parametrize("source,needle", [
    ("nosuchelement ! appsink", "GStreamer pipeline 'nosuchelement ! appsink'"),
    ("rtsp://127.0.0.1:9/live", "could not open stream 'rtsp://127.0.0.1:9/live'"),
    ("/dev/video97", "camera 97 (/dev/video97)"),
    ("missing.mp4", "missing.mp4"),
])
def test_source_errors_are_one_clear_line(model, source, needle):
    res = run_edgeport("run", str(model), "--source", source, "--headless")
    assert res.returncode == 2
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""


def test_bad_model_and_flags_are_clear_errors(model, shapes_video, tmp_path):
    res = run_edgeport("run", str(tmp_path / "nope.tflite"), "--source", str(shapes_video))
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr
    res = run_edgeport("run", str(model), "--engine", "tensorrt", "--source", str(shapes_video))
    assert res.returncode == 2 and "unknown engine 'tensorrt'" in res.stderr
    res = run_edgeport("run", str(model), "--show", "--headless", "--source", str(shapes_video))
    assert res.returncode == 2  # argparse: mutually exclusive


def test_show_without_gui_says_what_to_do(model, shapes_video):
    if "GUI: NONE" not in " ".join(cv2.getBuildInformation().split()):
        pytest.skip("this OpenCV has a GUI")
    res = run_edgeport("run", str(model), "--show", "--source", str(shapes_video), "--max-frames", "2")
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert "expected an OpenCV with a GUI for --show" in res.stderr
    # what to do: the GUI build (after removing the headless one: pip cannot hold both), or no window
    assert "pip uninstall -y opencv-python-headless && pip install opencv-python" in res.stderr
    assert "--save out.mp4" in res.stderr and "--headless" in res.stderr
