"""Real services for the sink and live-view tests: a Mosquitto broker, an HTTP receiver, a subscriber.

Each is started on a free loopback port and stopped by the test that started it (no traffic leaves
127.0.0.1). Mosquitto is Debian's ``mosquitto`` (installed by .ci/run).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Broker:
    """A Mosquitto broker on 127.0.0.1:``port`` with persistence (so a subscriber's queued messages survive a
    restart), optionally with a password file and a TLS listener. ``stop()``/``start()`` restart it."""

    def __init__(self, root: Path, users: dict[str, str] | None = None, tls: tuple[Path, Path, Path] | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        import getpass

        # as root, mosquitto would drop to the 'mosquitto' user, who cannot read the test's private folders
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {root}/",
                 "max_queued_messages 0", "max_inflight_messages 0", "log_dest stderr",
                 "log_type error", "log_type warning"]
        if users:
            pw = root / "passwd"
            pw.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines += ["allow_anonymous true"]
        if tls:
            ca, cert, key = tls
            self.tls_port = free_port()
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
            if not users:
                lines += ["allow_anonymous true"]
        self.conf = root / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.log = root / "mosquitto.log"

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        wait_port(self.port)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Subscriber:
    """A paho subscriber with a persistent session (clean_session=False, QoS 1) that records every payload."""

    def __init__(self, port: int, topic: str, auth: tuple[str, str] | None = None, client_id: str = "test-sub"):
        import paho.mqtt.client as paho

        self.messages: list[dict] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if auth:
            c.username_pw_set(*auth)

        def on_connect(client, userdata, flags, reason, properties=None):
            if not reason.is_failure:
                client.subscribe(topic, qos=1)
                self.connected.set()

        def on_subscribe(client, userdata, mid, reason_codes, properties=None):
            self.subscribed.set()

        def on_message(client, userdata, msg):
            with self.lock:
                self.messages.append(json.loads(msg.payload))

        c.on_connect, c.on_message, c.on_subscribe = on_connect, on_message, on_subscribe
        c.reconnect_delay_set(0.1, 1)
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        self.client = c
        assert self.connected.wait(10), "the subscriber could not connect"
        assert self.subscribed.wait(10), "the broker did not acknowledge the subscription"  # before any publish

    def indices(self) -> list[int]:
        with self.lock:
            return [m["index"] for m in self.messages]

    def wait_for(self, n: int, timeout: float = 30.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(set(self.indices())) < n:
            time.sleep(0.05)
        return self.indices()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Receiver:
    """An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it; ``fail_first`` requests get a 500,
    paths in ``reject`` a 400."""

    def __init__(self, fail_first: int = 0, reject: tuple[str, ...] = ()):
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        self.auth: list[str | None] = []
        self.fail_left = fail_first
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    if outer.fail_left > 0:
                        outer.fail_left -= 1
                        status = 500
                    elif self.path in reject:
                        status = 400
                    else:
                        status = 200
                        outer.bodies.append(json.loads(body))
                    outer.statuses.append(status)
                    outer.auth.append(self.headers.get("Authorization"))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sink_counts(line: str) -> dict[str, int]:
    """A run summary's sink line ('sent 98, dropped 2, rejected 0, reconnects 1, ...') as numbers by name."""
    counts = {}
    for part in line.split(","):
        words = part.split()
        if len(words) >= 2 and words[-1].isdigit():
            counts[" ".join(words[:-1])] = int(words[-1])
    return counts
