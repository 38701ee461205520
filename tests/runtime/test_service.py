"""`edgeport run` as a service, against real components: a Mosquitto broker, an HTTP receiver, the live
view's HTTP server, systemd's notify socket and systemd-analyze (issue 19)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeport.runtime.sinks import DeliveryQueue, PublishPolicy

from .helpers import ROOT, shapes, write_video
from .services import Broker, Receiver, Subscriber, free_port, sink_counts, wait_port

needs_broker = pytest.mark.skipif(shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
                                  reason="Debian's mosquitto is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def model(export_dir) -> Path:
    from edgeport.runtime.engines import engines_for

    path = export_dir / "model_int8.tflite"
    if not path.is_file() or not engines_for(path):
        pytest.skip("no int8 TFLite artifact or no TFLite engine here")
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """100 frames of shapes at 100 FPS (the camera stand-in, looped with --loop, paced with --realtime)."""
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", [img for _, img in shapes(10, seed=2)] * 10,
                       fps=100)


def _edgeport(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeport", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _get(url: str, token: str | None = None, data: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=data, headers={**(headers or {}),
                                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _wait_url(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


# --- the queue and the policy ---------------------------------------------------------------


def test_queue_memory_then_disk_in_order_and_across_a_restart(tmp_path):
    q = DeliveryQueue(memory=3, spool=tmp_path / "spool", spool_bytes=200)
    accepted = [q.put(f'{{"i": {i}}}'.encode()) for i in range(40)]
    assert accepted[:3] == [True] * 3 and q.in_memory == 3 and q.on_disk > 0
    kept = sum(accepted)
    assert not all(accepted)  # the disk bound refuses the rest
    assert q.peek(2) == [b'{"i": 0}', b'{"i": 1}']
    q.pop(2)
    q.spill()  # at exit: memory to disk, before what is already there
    q.close()
    again = DeliveryQueue(memory=3, spool=tmp_path / "spool", spool_bytes=200)
    got = []
    while len(again):
        item = again.peek(1)[0]
        again.pop(1)
        got.append(json.loads(item)["i"])
    assert got == list(range(2, kept))
    assert not list((tmp_path / "spool").glob("seg-*"))  # delivered segments are removed


def test_publish_policy_every_change_and_interval():
    p = PublishPolicy("change")
    assert [p.wants(lab, t) for t, lab in enumerate("aabba")] == [True, False, True, False, True]
    p = PublishPolicy("every", interval=1.0)
    assert [p.wants("a", t) for t in (0.0, 0.5, 1.0, 1.2, 2.1)] == [True, False, True, False, True]


# --- sinks against real destinations ----------------------------------------------------------


@needs_broker
def test_mqtt_every_frame_through_a_broker_restart(model, clip, tmp_path):
    broker = Broker(tmp_path / "broker").start()
    sub = Subscriber(broker.port, "edge/cam1", client_id="sub-restart")
    try:
        proc = _edgeport("run", str(model), "--source", str(clip), "--loop", "--realtime", "--max-frames", "400",
                         "--mqtt", f"mqtt://127.0.0.1:{broker.port}/edge/cam1", "--headless", "--json-summary",
                         str(tmp_path / "s.json"))
        sub.wait_for(20, timeout=30)  # results are flowing
        broker.stop()  # killed mid-run ...
        time.sleep(1)
        broker.start()  # ... and back: the queued results follow
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        got = sub.wait_for(400, timeout=20)
    finally:
        sub.close()
        broker.stop()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 400 and summary["published"] == 400
    # --realtime paces the file like a camera, which drops frames when the loop falls behind (a loaded machine):
    # what must arrive is every result the run published (its stdout lines), whatever their frame numbers
    published = [json.loads(line)["index"] for line in out.splitlines()]
    assert len(published) == 400
    missing = sorted(set(published) - set(got))
    assert not missing, f"every published result reached the subscriber; missing {missing}, the broker's log:\n" + \
        (tmp_path / "broker" / "mosquitto.log").read_text()
    assert "sink mqtt sent 400, dropped 0" in err and "rejected 0, reconnects 0, queued" not in err


@needs_broker
def test_mqtt_queue_bound_drops_are_counted(model, clip, tmp_path):
    broker = Broker(tmp_path / "broker").start()
    sub = Subscriber(broker.port, "t", client_id="sub-bound")
    broker.stop()  # down from the start: only the queue's 50 survive
    try:
        proc = _edgeport("run", str(model), "--source", str(clip), "--max-frames", "100", "--queue-size", "50",
                         "--mqtt", f"mqtt://127.0.0.1:{broker.port}/t", "--json-summary", str(tmp_path / "s.json"))
        proc.stderr.readline()  # "... is not reachable yet" (start gave up waiting): the frames are flowing
        time.sleep(1.5)
        broker.start()
        out, err = proc.communicate(timeout=60)
        got = sub.wait_for(50, timeout=20)
    finally:
        sub.close()
        broker.stop()
    assert proc.returncode == 0, err
    s = json.loads((tmp_path / "s.json").read_text())
    line = s["sink mqtt"]
    sent, dropped = (sink_counts(line)[k] for k in ("sent", "dropped"))
    assert sent + dropped == 100 and dropped >= 50 and len(set(got)) == sent
    assert "queue full" in err


@needs_broker
def test_mqtt_refused_login_is_a_clear_error_without_the_password(model, clip, tmp_path):
    broker = Broker(tmp_path / "broker", users={"cam": "right-pw"}).start()
    try:
        proc = _edgeport("run", str(model), "--source", str(clip), "--max-frames", "5",
                         "--mqtt", f"mqtt://cam:wr0ng-pw@127.0.0.1:{broker.port}/t")
        out, err = proc.communicate(timeout=60)
    finally:
        broker.stop()
    assert proc.returncode == 2 and "Traceback" not in err
    assert "to accept the login, but it refused it" in err and "wr0ng-pw" not in out + err
    assert f"mqtt://***@127.0.0.1:{broker.port}/t" in err


@needs_broker
def test_mqtts_with_a_private_ca(model, clip, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path / "tls"
    d.mkdir()
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)  # noqa: E731 - a one-line local helper
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca", "-keyout", "ca.key",
        "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "srv.key", "-out", "srv.csr")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "ext", "-out", "srv.pem")
    broker = Broker(tmp_path / "broker", tls=(d / "ca.pem", d / "srv.pem", d / "srv.key")).start()
    sub = Subscriber(broker.port, "tls/t", client_id="sub-tls")
    try:
        proc = _edgeport("run", str(model), "--source", str(clip), "--max-frames", "20", "--mqtt",
                         f"mqtts://127.0.0.1:{broker.tls_port}/tls/t", "--mqtt-ca", str(d / "ca.pem"))
        out, err = proc.communicate(timeout=60)
        got = sub.wait_for(20, 10)
    finally:
        sub.close()
        broker.stop()
    assert proc.returncode == 0, err
    assert sorted(set(got)) == list(range(20))


def test_webhook_retries_a_500_and_counts_a_refusal(model, clip, tmp_path):
    rx = Receiver(fail_first=3)
    try:
        proc = _edgeport("run", str(model), "--source", str(clip), "--max-frames", "30",
                         "--webhook", f"http://hook:s3cret@127.0.0.1:{rx.port}/in", "--json-summary",
                         str(tmp_path / "s.json"))
        out, err = proc.communicate(timeout=60)
    finally:
        rx.close()
    assert proc.returncode == 0, err
    assert sorted(b["index"] for b in rx.bodies) == list(range(30))  # nothing lost to the three 500s
    assert rx.statuses[:3] == [500] * 3 and "answered 500" in err and "s3cret" not in out + err
    assert rx.auth[-1].startswith("Basic ")
    rx = Receiver(reject=("/in",))
    try:
        proc = _edgeport("run", str(model), "--source", str(clip), "--max-frames", "5",
                         "--webhook", f"http://127.0.0.1:{rx.port}/in")
        out, err = proc.communicate(timeout=60)
    finally:
        rx.close()
    assert proc.returncode == 0 and "rejected 5" in err


def test_jsonl_file_rotates_by_size(model, clip, tmp_path):
    out = tmp_path / "results.jsonl"
    proc = _edgeport("run", str(model), "--source", str(clip), "--max-frames", "100", "--jsonl", str(out),
                     "--jsonl-max-mb", "0.005", "--jsonl-keep", "2", "--publish", "change")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    files = sorted(tmp_path.glob("results.jsonl*"))
    assert [f.name for f in files] == ["results.jsonl", "results.jsonl.1", "results.jsonl.2"]
    rows = [json.loads(ln) for f in files for ln in f.read_text().splitlines()]
    assert all(f.stat().st_size <= 5 * 1024 + 400 for f in files) and rows
    labels = [r["top"][0]["label"] for r in sorted(rows, key=lambda r: r["index"])]
    assert all(a != b for a, b in zip(labels, labels[1:]))  # --publish change: only changes of the top label


# --- the live view and the API ---------------------------------------------------------------------


def _png_of_size(side: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_serve_api_metrics_health_token_and_uploads(model, clip):
    port = free_port()
    proc = _edgeport("run", str(model), "--source", str(clip), "--loop", "--realtime", "--serve", f"0.0.0.0:{port}",
                     "--max-upload-mb", "1")
    try:
        _wait_url(f"http://127.0.0.1:{port}/healthz")
        time.sleep(1.0)
        status, body, _ = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert _get(f"http://127.0.0.1:{port}/api/latest")[0] == 401  # a non-local bind: token required
        line = ""
        while "token=" not in line:
            line = proc.stderr.readline()
        token = line.split("token=")[1].split()[0]
        status, body, _ = _get(f"http://127.0.0.1:{port}/api/latest", token)
        latest = json.loads(body)
        assert status == 200 and latest["frames"] > 0 and latest["result"]["top"][0]["label"] in latest["labels"]
        assert latest["precision"] and latest["artifact"] == model.name and latest["health"]["camera"]["up"]
        assert set(latest["latency_ms_p50"]) >= {"preprocess", "invoke", "postprocess", "total"}
        status, body, _ = _get(f"http://127.0.0.1:{port}/metrics?token={token}")
        text = body.decode()
        assert status == 200 and "edgeport_frames_total " in text
        assert 'edgeport_stage_seconds_bucket{stage="invoke",le="+Inf"}' in text and "edgeport_source_up 1" in text
        for ln in text.splitlines():  # every sample line is NAME{labels} VALUE
            assert ln.startswith("#") or (len(ln.rsplit(" ", 1)) == 2 and float(ln.rsplit(" ", 1)[1]) >= 0), ln
        _, jpeg = cv2.imencode(".jpg", np.full((40, 40, 3), 200, np.uint8))
        status, body, _ = _get(f"http://127.0.0.1:{port}/api/classify", token, data=jpeg.tobytes())
        assert status == 200 and len(json.loads(body)["top"]) == 3
        status, body, _ = _get(f"http://127.0.0.1:{port}/api/classify", token, data=b"not an image")
        assert status == 415 and "expected a decodable" in json.loads(body)["error"]
        status, body, _ = _get(f"http://127.0.0.1:{port}/api/classify", token, data=_png_of_size(30000))
        assert status == 413 and "--max-image-pixels N flag" in json.loads(body)["error"]
        status, body, _ = _get(f"http://127.0.0.1:{port}/api/classify", token, data=b"\0" * (2 << 20))
        assert status == 413 and "--max-upload-mb" in json.loads(body)["error"]
        # a stream client that disconnects mid-frame
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"GET /stream.mjpg?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert b"multipart/x-mixed-replace" in s.recv(200)
        time.sleep(0.5)
        status, body, _ = _get(f"http://127.0.0.1:{port}/api/latest", token)
        assert status == 200 and json.loads(body)["stream"]["clients"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err and "stopped_by_signal True" in err


def test_serve_port_in_use_and_serve_without_camera(model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _edgeport("serve", str(model), "--serve", str(port))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "which is in use by another program" in err and "Traceback" not in err
    port = free_port()
    proc = _edgeport("serve", str(model), "--serve", str(port))
    try:
        wait_port(port, 30)
        _, jpeg = cv2.imencode(".png", np.full((40, 40, 3), 90, np.uint8))
        boundary = "XyZ"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + jpeg.tobytes() + f"\r\n--{boundary}--\r\n".encode()
        status, out, _ = _get(f"http://127.0.0.1:{port}/api/classify", data=body,
                              headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert status == 200 and json.loads(out)["top"][0]["label"]
        assert _get(f"http://127.0.0.1:{port}/stream.mjpg")[0] == 404
        assert b"upload" in _get(f"http://127.0.0.1:{port}/")[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


# --- systemd: the notify socket and the unit ------------------------------------------------------


def test_sd_notify_ready_watchdog_stopping(model, clip, tmp_path):
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(15)
    proc = _edgeport("run", str(model), "--source", str(clip), "--loop", "--realtime", "--headless",
                     env={"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "400000"})
    got = []
    try:
        while not any(m.startswith("WATCHDOG=1") for m in got):
            got.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        while "STOPPING=1" not in got:
            got.append(sock.recv(4096).decode())
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert got[0] == "READY=1" and "STOPPING=1" in got and proc.returncode == 0


def test_service_install_writes_a_verified_unit(model, tmp_path):
    from edgeport.cli import main

    units = tmp_path / "units"
    units.mkdir()
    rc = main(["service", "install", str(model), "--source", "0", "--serve", "0.0.0.0:8080", "--token",
               "a-long-token", "--mqtt", "mqtt://u:pw@broker.local/cam", "--unit-dir", str(units), "--name",
               "edgeport-test", "--user", "root", "--no-start"])
    assert rc == 0
    unit = units / "edgeport-test.service"
    text = unit.read_text()
    assert oct(unit.stat().st_mode & 0o777) == "0o600"  # its command line holds credentials
    for line in ("Type=notify", "Restart=on-failure", "WatchdogSec=30", "User=root", "WantedBy=multi-user.target"):
        assert line in text.splitlines()
    exec_start = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    assert exec_start.startswith(f"ExecStart={sys.executable} -m edgeport run {model.resolve()} ")
    assert "--serve 0.0.0.0:8080" in exec_start and "--mqtt mqtt://u:pw@broker.local/cam" in exec_start
    if shutil.which("systemd-analyze"):
        res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    assert main(["service", "uninstall", "--unit-dir", str(units), "--name", "edgeport-test"]) == 0
    assert not unit.exists()
    assert main(["service", "install", str(model), "--unit-dir", str(units), "--name", "bad name"]) == 2
