"""Running for weeks under systemd: sd_notify over a plain socket, the watchdog, and the unit file of
``edgeport service install`` (standard library only; no python-systemd needed).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from edgeport.errors import ConfigError

log = logging.getLogger(__name__)

UNIT_DIR = "/etc/systemd/system"


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. "READY=1", "WATCHDOG=1") to systemd's $NOTIFY_SOCKET; False when there is none."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError as exc:
        log.debug("sd_notify %s: %s", state, exc)
        return False


def watchdog_seconds(environ: dict[str, str] | None = None) -> float | None:
    """The watchdog period systemd asks for (WatchdogSec=, via $WATCHDOG_USEC for this process), or None."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        return int(usec) / 1e6
    except ValueError:
        return None


class Watchdog:
    """Pings systemd's watchdog at half its period while ``alive()`` says the loop makes progress (a hung
    engine or a wedged loop stops the pings, and systemd restarts the service). A resource (a thread)."""

    def __init__(self, alive: Callable[[], bool], status: Callable[[], str] | None = None,
                 environ: dict[str, str] | None = None) -> None:
        self.alive, self.status = alive, status
        self.environ = environ
        self.period = watchdog_seconds(environ)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0

    def start(self) -> "Watchdog":
        notify("READY=1", self.environ)
        if self.period:
            self._thread = threading.Thread(target=self._run, name="edgeport-watchdog", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period / 2):
            if self.alive():
                notify("WATCHDOG=1" + (f"\nSTATUS={self.status()}" if self.status else ""), self.environ)
                self.pings += 1
            else:
                log.warning("the loop made no progress for %.0f s: not telling the watchdog", self.period / 2)

    def close(self) -> None:
        self._stop.set()
        notify("STOPPING=1", self.environ)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> "Watchdog":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- unit files ----------------------------------------------------------------------------


def _quote(arg: str) -> str:
    """One ExecStart argument, quoted for systemd (its own rules: % and $ are special too)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not re.search(r"[\s\"'\\;]", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(name: str, argv: Sequence[str], user: str, workdir: str, watchdog_s: int = 30,
              description: str = "") -> str:
    """The text of ``NAME.service``: the run command, restart on failure, the watchdog, the user."""
    return "\n".join([
        "[Unit]",
        f"Description={description or 'edgeport ' + name}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={' '.join(_quote(a) for a in argv)}",
        f"User={user}",
        f"WorkingDirectory={workdir}",
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=5",
        f"WatchdogSec={watchdog_s}",
        "TimeoutStopSec=20",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def check_unit_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,200}", name) or name.endswith(".service"):
        raise ConfigError(f"expected --name to be a unit name like edgeport or edgeport-door (letters, digits, "
                          f"- _ . @), received '{name}'")
    return name


def verify(path: Path) -> str | None:
    """``systemd-analyze verify`` of a unit file where the tool exists: its complaint, or None when it passed
    (or is not installed)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return None
    res = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60)
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip() and str(path.name) in ln
             or "ExecStart" in ln]
    return None if res.returncode == 0 else "\n".join(lines or [res.stderr.strip()])


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def install(name: str, argv: Sequence[str], user: str, unit_dir: str = UNIT_DIR, workdir: str | None = None,
            watchdog_s: int = 30, start: bool = True) -> tuple[Path, list[str]]:
    """Write ``NAME.service`` (mode 0600: its command line may hold credentials), verify it, and enable and
    start it where systemd runs; returns the path and the commands left for the user to run."""
    from edgeport.files import atomic_write_text

    check_unit_name(name)
    folder = Path(unit_dir)
    if not folder.is_dir():
        raise ConfigError(f"expected --unit-dir to be an existing folder, received {unit_dir}")
    path = folder / f"{name}.service"
    text = unit_text(name, argv, user, workdir or str(Path.home()), watchdog_s)
    atomic_write_text(path, text)
    os.chmod(path, 0o600)
    problem = verify(path)
    if problem:
        path.unlink()
        raise ConfigError(f"expected systemd-analyze to accept the unit, but it said: {problem}")
    todo = ["systemctl daemon-reload", f"systemctl enable --now {name}.service"]
    if start and systemd_running() and folder == Path(UNIT_DIR):
        for cmd in todo:
            subprocess.run(shlex.split(cmd), check=False, timeout=120)
        todo = []
    return path, todo


def uninstall(name: str, unit_dir: str = UNIT_DIR) -> tuple[Path, bool, list[str]]:
    """Stop, disable and remove ``NAME.service``; (path, whether it existed, commands left for the user)."""
    check_unit_name(name)
    path = Path(unit_dir) / f"{name}.service"
    existed = path.is_file()
    todo = [f"systemctl disable --now {name}.service", "systemctl daemon-reload"]
    running = systemd_running() and Path(unit_dir) == Path(UNIT_DIR)
    if running and existed:
        subprocess.run(shlex.split(todo[0]), check=False, timeout=120)
    if existed:
        path.unlink()
    if running:
        subprocess.run(shlex.split(todo[1]), check=False, timeout=120)
        todo = []
    elif not existed:
        todo = []
    return path, existed, todo


def wait_alive(last_progress: Callable[[], float], period: float) -> bool:
    """True when the loop made progress within ``period`` seconds."""
    return time.monotonic() - last_progress() < period
