"""What machine and software a benchmark ran on (stdlib + numpy/OpenCV only)."""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from pathlib import Path


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's name, as `edgeport doctor` names it (one naming for both reports)."""
    from edgeport.runtime.doctor import cpu_info

    return cpu_info()["model"] or "unknown"


def board_model() -> str:
    """The board (Raspberry Pi / Jetson) from the device tree, or '' (as `edgeport doctor` reads it)."""
    from edgeport.runtime.doctor import board_model as read_board

    return read_board()


def total_memory_mb() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return None


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - any import failure means "not installed"
        return None
    return str(getattr(mod, "__version__", "unknown"))


def engine_versions() -> dict[str, dict]:
    """{engine name: {"available": bool, "version": str|None}} from the runtime registry."""
    try:
        from edgeport.runtime import ENGINES
    except ImportError as exc:
        return {"error": {"available": False, "version": None, "reason": str(exc)}}
    out: dict[str, dict] = {}
    for name in ENGINES.names():
        cls = ENGINES.get(name)
        try:
            ok = bool(cls.available())
        except Exception as exc:  # noqa: BLE001 - a broken engine is reported, not fatal
            out[name] = {"available": False, "version": None, "reason": str(exc)}
            continue
        version = None
        if ok:
            try:
                version = str(cls.version())
            except Exception as exc:  # noqa: BLE001 - a broken engine install must not stop the report
                version = f"unknown ({exc})"
        out[name] = {"available": ok, "version": version}
    return out


def describe(device_name: str | None = None) -> dict:
    """A JSON-ready description of this device and its software.

    ``device`` is ``device_name`` as given, else the board (Raspberry Pi /
    Jetson model), else the CPU model; the hostname is never recorded.
    """
    from edgeport.runtime.doctor import cpu_info

    board = board_model()
    info = cpu_info()
    cpu = info["model"] or "unknown"
    import numpy

    return {
        # the name only as given: a report is shared, and the hostname (often a person's or a site's name)
        # is not recorded unless the user passes it as --device-name
        "device": device_name or board or cpu,
        "board": board or None,
        "cpu": cpu,
        "machine": platform.machine(),
        "cores": info["cores"],
        "usable_cores": info["usable_cores"],
        "memory_mb": total_memory_mb(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "opencv": _version("cv2"),
        "engines": engine_versions(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
