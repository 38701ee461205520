"""`edgeport doctor`: what this device can run, and what to use.

Collects Python and numpy versions, each engine's presence/version and numpy
ABI compatibility, onnxruntime providers, the board and CPU (model, cores, SIMD
flags), OpenCV's version, GUI and video backends, the cameras present, then
recommends an engine and a quantisation scheme and turns what is missing into
advice (the exact install line, or the flag to use instead).

Each engine is imported in a child process with a timeout (:func:`probe_engines`):
an engine build that crashes on import (reported for some onnxruntime aarch64
wheels) or hangs is named in the report instead of taking doctor down. Never
imports TensorFlow or an engine in its own process.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: SIMD flags worth reporting, as named in /proc/cpuinfo
SIMD_FLAGS = ("neon", "asimd", "asimdhp", "asimddp", "sve", "sse4_1", "sse4_2", "avx", "avx2", "fma",
              "avx512f", "avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8")


#: where Linux names the board (Raspberry Pi, Jetson); arm64 /proc/cpuinfo has no "model name" line
DEVICE_TREE_MODEL = "/proc/device-tree/model"
#: the installed OpenCV distributions edgeport can work with (each provides ``cv2``)
OPENCV_DISTRIBUTIONS = ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
                        "opencv-contrib-python")
#: how to get a window for --show (pip cannot hold both OpenCV builds: remove the headless one first)
GUI_OPENCV_FIX = "pip uninstall -y opencv-python-headless && pip install opencv-python"


def board_model(path: str | os.PathLike[str] = DEVICE_TREE_MODEL) -> str:
    """The board's name from the device tree ("Raspberry Pi 5 Model B Rev 1.0"), or '' elsewhere."""
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return ""


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
            "gui": (gui.group(1) if gui else "unknown"), "distribution": opencv_distribution()}


def opencv_distribution() -> str:
    """Which pip distribution provides cv2 here ('' when none is known, e.g. the distro's python3-opencv)."""
    from importlib.metadata import PackageNotFoundError, version

    for name in OPENCV_DISTRIBUTIONS:
        try:
            version(name)
            return name
        except PackageNotFoundError:
            continue
    return ""


def _gui_check(cv: dict[str, Any], env: Any) -> tuple[str, str, str] | None:
    """(what --show expected, what it found, what to do), or None when a window can open."""
    without = "run without a window: --save out.mp4 writes the annotated video, --headless prints JSON lines"
    if not cv.get("installed"):
        return "OpenCV", f"none ({cv.get('error')})", "install the GUI build: pip install opencv-python"
    if str(cv.get("gui", "")).upper() in ("NONE", "UNKNOWN", ""):
        dist = cv.get("distribution") or "this OpenCV"
        return ("an OpenCV with a GUI", f"{dist} {cv.get('version', '')} without one",
                f"install the GUI build ({GUI_OPENCV_FIX}; the two cannot be installed together) or {without}")
    if sys.platform.startswith("linux") and not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return ("a display", "none (DISPLAY and WAYLAND_DISPLAY are unset: a console or ssh session)",
                f"run it on the device's desktop or with ssh -X, or {without}")
    return None


def gui_problem(opencv: dict[str, Any] | None = None, environ: Any = None) -> str | None:
    """Why ``--show`` cannot open a window here, with what to do (an error message), or None when it can."""
    found = _gui_check(opencv if opencv is not None else opencv_info(), os.environ if environ is None else environ)
    return None if found is None else f"expected {found[0]} for --show, received {found[1]}; {found[2]}"


#: run in a child process per engine: import the engine's probe module, call its probe functions
_PROBE_CODE = """
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
out = {"ok": True}
for key, call in json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}").items():
    out[key] = list(getattr(module, call)())
sys.stdout.write("\\nedgeport-probe " + json.dumps(out) + "\\n")
"""
_SIGNAL_HINTS = {"SIGILL": "an illegal instruction: a build for a newer CPU than this one",
                 "SIGSEGV": "a segmentation fault", "SIGABRT": "an abort", "SIGBUS": "a bus error"}


def probe_engines(modules: dict[str, str], timeout: float = 30.0,
                  calls: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, Any]]:
    """Import each engine module in its own child process (all at once), within ``timeout`` seconds.

    Returns {name: {"ok": bool, "problem": str (when not ok), KEY: [...] for each of ``calls[name]``
    (e.g. the onnxruntime providers)}}. A child that dies on a signal, exits with an error or hangs is a
    problem named in words.
    """
    procs = {}
    for name, module in modules.items():
        argv = [sys.executable, "-c", _PROBE_CODE, module, json.dumps((calls or {}).get(name, {}))]
        procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       errors="replace")
    deadline = time.monotonic() + timeout
    results: dict[str, dict[str, Any]] = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            results[name] = {"ok": False, "problem": f"importing {modules[name]} did not finish within {timeout:g} s "
                                                     "(hung); run `python -c 'import "
                                                     f"{modules[name]}'` to see where"}
            continue
        line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("edgeport-probe ")), None)
        if proc.returncode == 0 and line:
            results[name] = json.loads(line[len("edgeport-probe "):])
        elif proc.returncode < 0:
            sig = signal.Signals(-proc.returncode).name if -proc.returncode in signal.valid_signals() \
                else f"signal {-proc.returncode}"
            results[name] = {"ok": False, "crashed": sig,
                             "problem": f"installed, but importing {modules[name]} crashes the process "
                                        f"({sig}: {_SIGNAL_HINTS.get(sig, 'killed')})"}
        else:
            last = next((ln.strip() for ln in reversed(err.splitlines()) if ln.strip()), f"exit {proc.returncode}")
            results[name] = {"ok": False, "problem": f"installed, but importing {modules[name]} fails: {last[-300:]}"}
    return results


def engines_info(probe_timeout: float = 30.0) -> list[dict[str, Any]]:
    """Each registered engine: installed, usable, version, numpy ABI check; onnxruntime providers.

    Installation is checked without importing; usability by importing in a child process.
    """
    import numpy as np

    from edgeport.runtime.engines import ENGINES, by_preference, installed

    rows = []
    for name in by_preference():
        cls = ENGINES.get(name)
        row: dict[str, Any] = {"name": name, "installed": installed(cls.module), "usable": cls.available(),
                               "version": cls.version()}
        problem = cls.problem()
        if problem and "numpy" in problem:
            row["numpy_compatible"] = False
        if problem and row["installed"]:
            row["problem"] = problem
        if cls.note:
            row["note"] = cls.note
        rows.append(row)
    # the engines only used by name (TensorFlow) are too heavy to import for a report
    probed = [ENGINES.get(r["name"]) for r in rows if r["usable"] and ENGINES.get(r["name"]).preference is not None]
    probes = probe_engines({c.name: c.probe_module or c.module for c in probed}, probe_timeout,
                           {c.name: dict(c.probe_calls) for c in probed})
    for row in rows:
        found = probes.get(row["name"])
        if found is None:
            continue
        if found["ok"]:
            row["numpy_compatible"] = True
            row.update({k: v for k, v in found.items() if k != "ok"})
        else:
            row.update(usable=False, problem=found["problem"])
            if found.get("crashed"):
                row["crashed"] = found["crashed"]
            elif "numpy" in found["problem"] or "_ARRAY_API" in found["problem"]:
                row["numpy_compatible"] = False
                row["problem"] += f" (numpy {np.__version__} here)"
    return rows


def _engine(name: str) -> Any:
    """The registered engine class called ``name``, or None (a report from another edgeport version)."""
    from edgeport.runtime.engines import ENGINES

    return ENGINES.get(name) if name in ENGINES else None


def recommend(report: dict[str, Any]) -> str:
    """One line: which engine and scheme to use on this machine."""
    from edgeport.runtime.engines import auto_order, install_hint, model_suffixes

    usable = {e["name"]: e for e in report["engines"] if e["usable"] and (c := _engine(e["name"])) is not None
              and c.preference is not None}
    for name, row in usable.items():
        providers = row.get("providers", [])
        if "TensorrtExecutionProvider" in providers or "CUDAExecutionProvider" in providers:
            best = "TensorRT" if "TensorrtExecutionProvider" in providers else "CUDA"
            return (f"use --engine {name} with the fp16/fp32 ONNX model ({best} execution provider present; "
                    f"--providers {best.lower()},cpu)")
    simd = set(report["cpu"]["simd"])
    # XNNPACK's int8 kernels beat fp32 on ARM NEON and on x86 with VNNI; on plain AVX2 they
    # measured slower here (ResNet50V2: 148 ms int8 vs 101 ms fp32 on an EPYC without VNNI).
    int8_fast = bool(simd & {"asimd", "neon", "asimddp", "avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8"})
    scheme = "int8" if int8_fast else "fp32"
    threads = report["cpu"]["usable_cores"]
    suffixes = model_suffixes()
    for suffix in suffixes:
        for name in auto_order(suffix):
            if name not in usable:
                continue
            kind = suffix.lstrip(".").upper().replace("TFLITE", "TFLite")
            if suffix == suffixes[0]:
                return (f"use --engine {name} with the {scheme} {kind} model (--scheme {scheme} --threads {threads}); "
                        f"confirm with `edgeport bench` on this device")
            return (f"use --engine {name} with the {kind} model (CPU; --threads {threads}); "
                    f"{install_hint(suffixes[0]).split(' (or')[0]} would run int8 {suffixes[0]} models faster")
    problems = "".join(f" ({e['problem']})" for e in report["engines"] if e.get("problem") and e.get("installed"))
    return f"no engine is usable: {install_hint(suffixes[0]).split(' (or')[0]} (or {install_hint(suffixes[-1])})" + problems


def doctor(board_path: str | os.PathLike[str] = DEVICE_TREE_MODEL, probe_timeout: float = 30.0) -> dict[str, Any]:
    """The full report as a dict (JSON-serialisable); ``board_path``: where the board's name is read."""
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
        "engines": engines_info(probe_timeout),
        "board": board_model(board_path),
        "cpu": cpu_info(),
        "opencv": opencv_info(),
        "cameras": sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p)),
        "picamera2": _has_module("picamera2"),
        "tensorflow_imported": "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None,
    }
    report["recommendation"] = recommend(report)
    report["advice"] = advise(report)
    return report


def advise(report: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    """What to do about what the report found missing or broken: one line each, with the exact command."""
    from edgeport.runtime.engines import ENGINES, auto_order, model_suffixes

    tips: list[str] = []
    engines = {e["name"]: e for e in report["engines"]}
    for e in report["engines"]:
        cls = _engine(e["name"])
        if e.get("crashed") and cls is not None:
            tips.append(f"{e['name']} crashes on import here ({e['crashed']}): reinstall a build made for this "
                        f"board (pip install --force-reinstall --no-cache-dir {cls.install.split()[-1]}) "
                        "or use another engine with --engine")
        elif e["installed"] and not e["usable"] and e.get("problem") and cls is not None and cls.problem() is None:
            tips.append(f"{e['name']} is installed but does not load: {e['problem']}")
    for suffix in model_suffixes():
        names = auto_order(suffix)
        if not names or any(engines.get(n, {}).get("usable") for n in names):
            continue
        first = ENGINES.get(names[0])
        why = "".join(f" ({engines[n]['problem']})" for n in names
                      if engines.get(n, {}).get("installed") and engines[n].get("problem"))
        note = f" ({first.install_note})" if first.install_note else ""
        tips.append(f"no engine can run the {suffix} artifacts{why}{note}: {first.install}")
    cv = report.get("opencv") or {}
    if not cv.get("installed"):
        tips.append("OpenCV is missing (edgeport run needs it): pip install opencv-python-headless")
    else:
        found = _gui_check(cv, os.environ if environ is None else environ)
        if found:
            tips.append(f"no window for --show (it needs {found[0]}, found {found[1]}): {found[2]}")
    board = report.get("board") or ""
    on_pi = board.startswith("Raspberry Pi")
    if on_pi and not report.get("picamera2"):
        tips.append("for a Pi CSI camera (libcamera) install Picamera2 (sudo apt install python3-picamera2) into a "
                    "venv made with --system-site-packages, then --source picamera2")
    elif not report.get("cameras") and not report.get("picamera2"):
        tips.append("no camera found (/dev/video*): connect a USB camera, or on a Pi a CSI camera with Picamera2 "
                    "(sudo apt install python3-picamera2, then --source picamera2); a video file or image folder "
                    "also works: --source video.mp4")
    elif report.get("picamera2") and on_pi:
        tips.append("Pi CSI camera: --source picamera2")
    return tips


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
    if report.get("board"):
        lines.append(f"board        {report['board']}")
    lines.append(f"cpu          {cpu['model']} ({cpu['machine']}), {cpu['cores']} cores "
                 f"({cpu['usable_cores']} usable), SIMD: {', '.join(cpu['simd']) or 'none found'}")
    cv = report["opencv"]
    if cv.get("installed"):
        b = ", ".join(f"{k} {ok[v]}" for k, v in cv["video_backends"].items())
        dist = f" ({cv['distribution']})" if cv.get("distribution") else ""
        lines.append(f"opencv       {cv['version']}{dist}: {b}; GUI {cv['gui']}")
    else:
        lines.append(f"opencv       not installed ({cv.get('error')})")
    lines.append(f"cameras      {', '.join(report['cameras']) or 'none found (/dev/video*)'}"
                 f"{'; picamera2 present' if report['picamera2'] else ''}")
    lines.append(f"recommend    {report['recommendation']}")
    lines += format_advice(report).splitlines()
    return "\n".join(lines)


def format_advice(report: dict[str, Any]) -> str:
    """The advice lines alone (what ``edgeport doctor -q`` prints), '' when there is none."""
    return "\n".join(["advice:"] + [f"  - {tip}" for tip in report.get("advice", [])]) if report.get("advice") else ""
