"""edgeport doctor."""

from __future__ import annotations

import json

from edgeport.runtime.doctor import cpu_info, doctor, format_report, recommend

from .helpers import run_edgeport

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


def test_doctor_report_here():
    r = doctor()
    assert r["python"] and r["numpy"]
    names = {e["name"]: e for e in r["engines"]}
    assert set(names) == {"litert", "onnxruntime", "tensorflow", "tflite-runtime"}
    assert set(r["opencv"]["video_backends"]) == {"v4l2", "gstreamer", "ffmpeg"}
    assert r["recommendation"].startswith(("use --engine", "no engine"))
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
