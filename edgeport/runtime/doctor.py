"""`edgeport doctor`: what this device can run, and what to use.

Collects Python and numpy versions, each engine's presence/version and numpy
ABI compatibility, onnxruntime providers, the CPU (model, cores, SIMD flags),
OpenCV's version and video backends, the cameras present, then recommends an
engine and a quantisation scheme. Never imports TensorFlow.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

#: SIMD flags worth reporting, as named in /proc/cpuinfo
SIMD_FLAGS = ("neon", "asimd", "asimdhp", "asimddp", "sve", "sse4_1", "sse4_2", "avx", "avx2", "fma",
              "avx512f", "avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8")


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model, core count and SIMD features (from /proc/cpuinfo when present)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    if not model:
        try:
            model = Path("/sys/firmware/devicetree/base/model").read_text(errors="replace").strip("\x00\n ")
        except OSError:
            model = platform.processor() or platform.machine()
    return {
        "model": model,
        "machine": platform.machine(),
        "cores": os.cpu_count() or 0,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0),
        "simd": [f for f in SIMD_FLAGS if f in flags],
    }


def opencv_info() -> dict[str, Any]:
    """OpenCV version and which video backends it has."""
    try:
        import cv2
    except ImportError as exc:
        return {"installed": False, "error": str(exc)}
    build = cv2.getBuildInformation()
    from edgeport.runtime.sources import opencv_has

    backends = {name.lower(): opencv_has(name) for name in ("V4L2", "GSTREAMER", "FFMPEG")}
    gui = re.search(r"^\s*GUI:\s*(\S+)", build, re.M)
    return {"installed": True, "version": cv2.__version__, "video_backends": backends,
            "gui": (gui.group(1) if gui else "unknown")}


#: what doctor imports to prove an engine loads with this numpy (never TensorFlow: too heavy)
_PROBE = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter",
          "onnxruntime": "onnxruntime"}


def engines_info() -> list[dict[str, Any]]:
    """Each registered engine: installed, usable, version, numpy ABI check; onnxruntime providers."""
    import importlib

    import numpy as np

    from edgeport.runtime.engines import ENGINES, _installed, tflite_runtime_problem

    rows = []
    for name in ENGINES.names():
        cls = ENGINES.get(name)
        row: dict[str, Any] = {"name": name, "installed": _installed(cls.module), "usable": cls.available(),
                               "version": cls.version()}
        if name == "tflite-runtime":
            problem = tflite_runtime_problem()
            row["numpy_compatible"] = problem is None
            if row["installed"] and problem:
                row["problem"] = problem
        if name == "tensorflow":
            row["note"] = "used only with --engine tensorflow"
        if row["usable"] and name in _PROBE:
            try:
                module = importlib.import_module(_PROBE[name])
                row["numpy_compatible"] = True
            except ImportError as exc:  # e.g. built against another numpy ABI
                row.update(usable=False, numpy_compatible=False,
                           problem=f"installed but cannot be imported with numpy {np.__version__}: {exc}")
                module = None
            if name == "onnxruntime" and module is not None:
                row["providers"] = list(module.get_available_providers())
        rows.append(row)
    return rows


def recommend(report: dict[str, Any]) -> str:
    """One line: which engine and scheme to use on this machine."""
    usable = {e["name"]: e for e in report["engines"] if e["usable"] and e["name"] != "tensorflow"}
    providers = usable.get("onnxruntime", {}).get("providers", [])
    if "TensorrtExecutionProvider" in providers or "CUDAExecutionProvider" in providers:
        best = "TensorRT" if "TensorrtExecutionProvider" in providers else "CUDA"
        return (f"use --engine onnxruntime with the fp16/fp32 ONNX model ({best} execution provider present; "
                f"--providers {best.lower()},cpu)")
    simd = set(report["cpu"]["simd"])
    # XNNPACK's int8 kernels beat fp32 on ARM NEON and on x86 with VNNI; on plain AVX2 they
    # measured slower here (ResNet50V2: 148 ms int8 vs 101 ms fp32 on an EPYC without VNNI).
    int8_fast = bool(simd & {"asimd", "neon", "asimddp", "avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8"})
    scheme = "int8" if int8_fast else "fp32"
    threads = report["cpu"]["usable_cores"]
    for name in ("litert", "tflite-runtime"):
        if name in usable:
            return (f"use --engine {name} with the {scheme} TFLite model (--scheme {scheme} --threads {threads}); "
                    f"confirm with `edgeport bench` on this device")
    if "onnxruntime" in usable:
        return f"use --engine onnxruntime with the ONNX model (CPU; --threads {threads}); ai-edge-litert would run int8 TFLite faster"
    tfl = next((e for e in report["engines"] if e["name"] == "tflite-runtime"), {})
    fix = f" ({tfl['problem']})" if tfl.get("problem") else ""
    return "no engine is usable: pip install ai-edge-litert (or onnxruntime)" + fix


def doctor() -> dict[str, Any]:
    """The full report as a dict (JSON-serialisable)."""
    try:
        import numpy as np

        numpy_version = np.__version__
    except ImportError:
        numpy_version = ""
    from edgeport import __version__

    report: dict[str, Any] = {
        "edgeport": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "numpy": numpy_version,
        "engines": engines_info(),
        "cpu": cpu_info(),
        "opencv": opencv_info(),
        "cameras": sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p)),
        "picamera2": _has_module("picamera2"),
        "tensorflow_imported": "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None,
    }
    report["recommendation"] = recommend(report)
    return report


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned human-readable lines."""
    ok = {True: "yes", False: "no"}
    lines = [
        f"edgeport     {report['edgeport']}",
        f"python       {report['python']} ({report['python_executable']})",
        f"platform     {report['platform']}",
        f"numpy        {report['numpy'] or 'not installed'}",
        "engines:",
    ]
    for e in report["engines"]:
        state = "usable" if e["usable"] else ("installed, NOT usable" if e["installed"] else "not installed")
        line = f"  {e['name']:<15} {state:<22} {e['version']}"
        if e.get("providers"):
            line += f"  providers: {', '.join(e['providers'])}"
        if e.get("note"):
            line += f"  ({e['note']})"
        lines.append(line)
        if e.get("problem"):
            lines.append(f"    -> {e['problem']}")
    cpu = report["cpu"]
    lines.append(f"cpu          {cpu['model']} ({cpu['machine']}), {cpu['cores']} cores "
                 f"({cpu['usable_cores']} usable), SIMD: {', '.join(cpu['simd']) or 'none found'}")
    cv = report["opencv"]
    if cv.get("installed"):
        b = ", ".join(f"{k} {ok[v]}" for k, v in cv["video_backends"].items())
        lines.append(f"opencv       {cv['version']}: {b}; GUI {cv['gui']}")
    else:
        lines.append(f"opencv       not installed ({cv.get('error')})")
    lines.append(f"cameras      {', '.join(report['cameras']) or 'none found (/dev/video*)'}"
                 f"{'; picamera2 present' if report['picamera2'] else ''}")
    lines.append(f"recommend    {report['recommendation']}")
    return "\n".join(lines)
