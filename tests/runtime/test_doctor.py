"""edgeport doctor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from edgeport.runtime.doctor import (
    GUI_OPENCV_FIX,
    advise,
    board_model,
    cpu_info,
    doctor,
    format_report,
    gui_problem,
    probe_engines,
    recommend,
)

from .helpers import ROOT, run_edgeport

PI4 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def test_cpu_info_parses_arm_and_x86():
    arm = cpu_info(PI4)
    assert arm["model"] == "BCM2835" and arm["simd"] == ["asimd"]
    x86 = cpu_info("model name\t: AMD EPYC\nflags\t\t: fpu sse4_1 sse4_2 avx avx2 fma avx512f\n")
    assert x86["model"] == "AMD EPYC" and x86["simd"] == ["sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f"]
    assert x86["cores"] >= 1


def _expected_recommendation_here() -> str:
    """What doctor must say on a CI machine, from what the job installed and /proc/cpuinfo, not from doctor:
    each job has exactly one TFLite engine (main: LiteRT, pi: tflite-runtime) and no GPU; int8 where the CPU
    has integer dot products (VNNI on x86, NEON on ARM), else fp32."""
    import importlib.util

    from allowed_skips import TFLITE_ENGINE, job

    engine = TFLITE_ENGINE[job()]
    assert importlib.util.find_spec({"litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}[engine])
    flags = set(Path("/proc/cpuinfo").read_text().split())
    scheme = "int8" if flags & {"avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "neon"} else "fp32"
    return (f"use --engine {engine} with the {scheme} TFLite model (--scheme {scheme} "
            f"--threads {len(os.sched_getaffinity(0))}); confirm with `edgeport bench` on this device")


def test_doctor_report_here():
    r = doctor()
    assert r["python"] and r["numpy"]
    names = {e["name"]: e for e in r["engines"]}
    assert set(names) == {"litert", "onnxruntime", "tensorflow", "tflite-runtime"}
    assert set(r["opencv"]["video_backends"]) == {"v4l2", "gstreamer", "ffmpeg"}
    assert r["recommendation"] == _expected_recommendation_here(), r["recommendation"]
    assert "recommend" in format_report(r)
    json.dumps(r)


def test_recommendation_follows_the_engines():
    base = {"cpu": {"simd": ["asimd"], "usable_cores": 4}}
    tfl = {"name": "tflite-runtime", "usable": True, "installed": True}
    assert "tflite-runtime with the int8 TFLite" in recommend({**base, "engines": [tfl]})
    gpu = {"name": "onnxruntime", "usable": True, "installed": True,
           "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}
    assert "TensorRT" in recommend({**base, "engines": [tfl, gpu]})
    avx2 = {"cpu": {"simd": ["avx2", "fma"], "usable_cores": 2}}
    assert "fp32 TFLite" in recommend({**avx2, "engines": [tfl]})
    vnni = {"cpu": {"simd": ["avx2", "avx512_vnni"], "usable_cores": 2}}
    assert "int8 TFLite" in recommend({**vnni, "engines": [tfl]})
    bad = {"name": "tflite-runtime", "usable": False, "installed": True, "problem": "tflite-runtime needs numpy<2"}
    assert "numpy<2" in recommend({**base, "engines": [bad]})


def test_doctor_cli():
    res = run_edgeport("doctor", "--json")
    assert res.returncode == 0, res.stderr
    assert "recommendation" in json.loads(res.stdout)
    res = run_edgeport("doctor")
    assert res.returncode == 0 and "engines:" in res.stdout and "recommend" in res.stdout
    for argv in (("doctor", "-q"), ("-q", "doctor")):  # -q after the command too
        res = run_edgeport(*argv)
        assert res.returncode == 0 and res.stdout.startswith("recommend ") and "engines:" not in res.stdout


def test_board_named_from_the_device_tree(tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")  # as the kernel writes it: NUL-terminated
    assert board_model(model) == "Raspberry Pi 5 Model B Rev 1.0"
    assert board_model(tmp_path / "absent") == ""
    r = doctor(board_path=model)
    assert r["board"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert "board        Raspberry Pi 5 Model B Rev 1.0" in format_report(r)
    if not r["picamera2"]:  # on a Pi, the CSI camera needs Picamera2
        assert any("sudo apt install python3-picamera2" in tip for tip in r["advice"])


def _report(**over) -> dict:
    ok_cv = {"installed": True, "version": "4.10.0", "gui": "GTK3", "distribution": "opencv-python",
             "video_backends": {"v4l2": True}}
    engines = [{"name": "litert", "installed": True, "usable": True},
               {"name": "onnxruntime", "installed": True, "usable": True},
               {"name": "tflite-runtime", "installed": False, "usable": False}]
    base = {"engines": engines, "opencv": ok_cv, "cameras": ["/dev/video0"], "picamera2": False, "board": ""}
    return {**base, **over}


def test_advice_turns_findings_into_commands():
    display = {"DISPLAY": ":0"}
    assert advise(_report(), display) == []  # nothing missing: no advice
    headless = {"installed": True, "version": "4.10.0", "gui": "NONE", "distribution": "opencv-python-headless"}
    tips = advise(_report(opencv=headless), display)
    assert len(tips) == 1 and GUI_OPENCV_FIX in tips[0] and "--save" in tips[0] and "--headless" in tips[0]
    tips = advise(_report(), {})  # a GUI OpenCV but no display (ssh, console)
    assert len(tips) == 1 and "DISPLAY" in tips[0] and "--save" in tips[0]
    tips = advise(_report(cameras=[]), display)
    assert len(tips) == 1 and "picamera2" in tips[0] and "--source video.mp4" in tips[0]
    tips = advise(_report(board="Raspberry Pi 4 Model B Rev 1.4"), display)
    assert len(tips) == 1 and "sudo apt install python3-picamera2" in tips[0] and "--system-site-packages" in tips[0]
    assert advise(_report(board="Raspberry Pi 4 Model B Rev 1.4", picamera2=True), display) == \
        ["Pi CSI camera: --source picamera2"]
    no_engines = [{"name": n, "installed": False, "usable": False} for n in ("litert", "onnxruntime", "tflite-runtime")]
    tips = advise(_report(engines=no_engines), display)
    assert any(t.endswith(": pip install ai-edge-litert") for t in tips)
    assert any(t.endswith(": pip install onnxruntime") for t in tips)
    crashed = [{"name": "litert", "installed": True, "usable": True},
               {"name": "onnxruntime", "installed": True, "usable": False, "crashed": "SIGILL",
                "problem": "installed, but importing onnxruntime crashes the process (SIGILL: ...)"}]
    tips = advise(_report(engines=crashed), display)
    assert len(tips) == 2 and tips[0].startswith("onnxruntime crashes on import here (SIGILL)")
    assert "pip install --force-reinstall --no-cache-dir onnxruntime" in tips[0]


def _fake_modules(root: Path) -> Path:
    """Engine-like packages that abort, raise or hang on import, as some broken wheels do."""
    for name, body in {"fake_abort": "import os\nos.abort()\n",
                       "fake_segv": "import ctypes\nctypes.string_at(0)\n",  # reads address 0: SIGSEGV
                       "fake_raise": "raise ImportError('libfoo.so: cannot open shared object file')\n",
                       "fake_hang": "import time\ntime.sleep(120)\n",
                       "fake_fine": "VALUE = 1\n"}.items():
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(body)
    return root


def test_engine_probes_name_crashes_errors_and_hangs(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(_fake_modules(tmp_path)))
    t0 = time.monotonic()
    found = probe_engines({"a": "fake_abort", "s": "fake_segv", "r": "fake_raise", "h": "fake_hang",
                           "f": "fake_fine"}, timeout=3)
    assert time.monotonic() - t0 < 20  # in parallel, the hang cut at the timeout
    assert found["f"] == {"ok": True}
    assert found["a"]["ok"] is False and found["a"]["crashed"] == "SIGABRT" and "crashes" in found["a"]["problem"]
    assert found["s"]["crashed"] == "SIGSEGV" and "segmentation fault" in found["s"]["problem"]
    assert found["r"]["ok"] is False and "libfoo.so: cannot open shared object file" in found["r"]["problem"]
    assert found["h"]["ok"] is False and "did not finish within 3 s" in found["h"]["problem"]


def test_doctor_survives_an_engine_that_crashes_on_import(tmp_path):
    """A fake onnxruntime that aborts on import, first on PYTHONPATH: doctor names it and still reports."""
    (tmp_path / "onnxruntime").mkdir()
    (tmp_path / "onnxruntime" / "__init__.py").write_text("import os\nos.abort()\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "TF_CPP_MIN_LOG_LEVEL": "2"}
    res = subprocess.run([sys.executable, "-m", "edgeport", "doctor", "--json"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    ort = next(e for e in r["engines"] if e["name"] == "onnxruntime")
    assert ort["installed"] and not ort["usable"] and ort["crashed"] == "SIGABRT"
    assert any(t.startswith("onnxruntime crashes on import here (SIGABRT)") for t in r["advice"])
    # the others are still probed: every other engine usable in this environment (LiteRT here, tflite-runtime
    # in the Pi-like one) is reported usable
    from edgeport.runtime import available_engines

    others = set(available_engines()) - {"onnxruntime", "tensorflow"}
    assert others and others <= {e["name"] for e in r["engines"] if e["usable"]}, (others, r["engines"])
    res = subprocess.run([sys.executable, "-m", "edgeport", "doctor", "-q"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 0 and res.stdout.startswith("recommend ") and "engines:" not in res.stdout
    assert "onnxruntime crashes on import here" in res.stdout


def test_gui_problem():
    gui = {"installed": True, "version": "4.10.0", "gui": "QT5", "distribution": "opencv-python"}
    assert gui_problem(gui, {"WAYLAND_DISPLAY": "wayland-0"}) is None
    assert "expected a display for --show" in (gui_problem(gui, {}) or "")
    headless = {**gui, "gui": "NONE", "distribution": "opencv-python-headless"}
    assert (gui_problem(headless, {"DISPLAY": ":0"}) or "").startswith(
        "expected an OpenCV with a GUI for --show, received opencv-python-headless 4.10.0 without one")
