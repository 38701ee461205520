"""The live view and the API (standard library only: ``http.server``).

    GET  /               the page: the annotated stream, top-k, FPS, latency per stage, artifact and
                         precision, uptime, camera and sink health (and an upload form)
    GET  /stream.mjpg    the annotated stream (MJPEG, at most --stream-fps frames a second)
    GET  /snapshot.jpg   the newest annotated frame
    GET  /api/latest     the newest result and the state, as JSON
    POST /api/classify   an image (raw bytes or multipart/form-data) -> its top-k, as JSON
    GET  /metrics        Prometheus text: frames, latency histograms, drops, reconnects, sink queues
    GET  /healthz        {"status": "ok"} (200) or "degraded" with the problems (503); no token needed

It binds 127.0.0.1 unless told otherwise; a non-local bind needs a token (``--token``, or one made
and printed at start), checked on every endpoint but /healthz: ``Authorization: Bearer TOKEN``, or
``?token=TOKEN`` (how the page passes it on). Uploads are held to ``max_upload_mb`` and to the pixel
limit of every other image edgeport reads (``--max-image-pixels``), checked before decoding.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edgeport.errors import ConfigError

log = logging.getLogger(__name__)

#: MJPEG clients at once (each holds a thread); more get 503
MAX_STREAM_CLIENTS = 8
BOUNDARY = "edgeportframe"
#: how much of an oversized upload is read and discarded before the 413 (the client then reads the answer)
DRAIN_BYTES = 16 << 20


def parse_bind(text: str, flag: str = "--serve") -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); host 127.0.0.1 when not given. IPv6 hosts in brackets: [::1]:8080."""
    text = str(text).strip()
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigError(f"expected {flag} [HOST:]PORT with a port 0-65535, like 8080 or 0.0.0.0:8080, "
                          f"received '{text}'")
    return host, number


def is_local(host: str) -> bool:
    """True for a loopback address or name (only this machine can connect)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None) -> tuple[str | None, bool]:
    """(the token to require, whether it was generated). A non-local bind always gets one."""
    if token is not None and len(token) < 8:
        raise ConfigError(f"expected --token of at least 8 characters, received {len(token)}")
    if token:
        return token, False
    if is_local(host):
        return None, False
    return secrets.token_urlsafe(18), True


class Classify:
    """Upload classification: decode within the limits, classify under the engine's lock; a plain callable."""

    def __init__(self, classifier: Any, lock: threading.Lock, top_k: int, max_upload_mb: float) -> None:
        self.classifier, self.lock, self.top_k = classifier, lock, top_k
        self.max_bytes = int(max_upload_mb * (1 << 20))

    def __call__(self, data: bytes, name: str) -> tuple[list[tuple[str, float]], float]:
        from edgeport.imaging import decode_rgb

        rgb = decode_rgb(data, name)  # pixel limit from the header, before decoding
        t0 = time.monotonic()
        with self.lock:
            top = self.classifier.classify(rgb, self.top_k, color="rgb")
        return top, (time.monotonic() - t0) * 1e3


def _multipart_file(body: bytes, content_type: str) -> tuple[bytes, str] | None:
    """The first file part of a multipart/form-data body (its bytes and file name), or None."""
    from email.parser import BytesParser
    from email.policy import HTTP

    msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    if not msg.is_multipart():
        return None
    for part in msg.iter_parts():
        if part.get_filename() is not None or part.get_content_maintype() == "image":
            return part.get_payload(decode=True) or b"", part.get_filename() or "upload"
    return None


class LiveServer:
    """The HTTP server of ``--serve`` and ``edgeport serve``: a resource (its socket and threads)."""

    def __init__(self, state: Any, host: str, port: int, token: str | None = None,
                 classify: Classify | None = None, page_title: str = "edgeport") -> None:
        self.state, self.token, self.classify_upload, self.title = state, token, classify, page_title
        server = self

        class Handler(_Handler):
            owner = server

        try:
            self.httpd = _Server((host, port), Handler)
        except OSError as exc:
            what = "in use by another program" if exc.errno in (98, 48) else str(exc.strerror or exc)
            raise ConfigError(f"expected --serve to name a free port on this machine, received {host}:{port}, "
                              f"which is {what}; choose another port or stop that program") from exc
        self.host, self.port = self.httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
        return f"http://{shown}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> "LiveServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="edgeport-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "LiveServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 32

    def server_bind(self) -> None:
        if ":" in self.server_address[0]:
            self.address_family = socket.AF_INET6
            self.socket = socket.socket(self.address_family, self.socket_type)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that went away: not our error
        log.debug("HTTP client %s: connection error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    owner: LiveServer
    protocol_version = "HTTP/1.1"
    server_version = "edgeport"
    timeout = 30  # a client that stops reading releases its thread

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("http %s " + fmt, self.address_string(), *args)

    # -- helpers
    def _discard(self, n: int) -> None:
        try:
            while n > 0:
                chunk = self.rfile.read(min(n, 1 << 16))
                if not chunk:
                    return
                n -= len(chunk)
        except OSError:
            return

    def _count(self, endpoint: str, code: int) -> None:
        key = (endpoint, code)
        requests = self.owner.state.requests
        requests[key] = requests.get(key, 0) + 1

    def _send(self, code: int, body: bytes, ctype: str, endpoint: str, headers: dict[str, str] | None = None) -> None:
        self._count(endpoint, code)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, data: Any, endpoint: str) -> None:
        self._send(code, json.dumps(data, default=str).encode(), "application/json", endpoint)

    def _error(self, code: int, message: str, endpoint: str) -> None:
        self._json(code, {"error": message}, endpoint)

    def _authorized(self, query: dict[str, list[str]]) -> bool:
        token = self.owner.token
        if token is None:
            return True
        given = ""
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        elif query.get("token"):
            given = query["token"][0]
        return hmac.compare_digest(given.encode(), token.encode())

    def _route(self) -> tuple[str, dict[str, list[str]]] | None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path.rstrip("/") or "/"
        if path != "/healthz" and not self._authorized(query):
            self._error(401, "expected a valid token (Authorization: Bearer TOKEN, or ?token=TOKEN), "
                             "received none or another one; the token was printed when the server started", path)
            return None
        return path, query

    # -- GET
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        routed = self._route()
        if routed is None:
            return
        path, _ = routed
        state = self.owner.state
        if path == "/":
            self._send(200, _page(self.owner).encode(), "text/html; charset=utf-8", path)
        elif path == "/healthz":
            health = state.health()
            self._json(200 if health["status"] == "ok" else 503, health, path)
        elif path == "/api/latest":
            self._send(200, state.to_json(), "application/json", path)
        elif path == "/metrics":
            self._send(200, state.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8", path)
        elif path == "/snapshot.jpg":
            state.watch()
            try:
                _, jpeg = state.next_jpeg(0, timeout=3)
            finally:
                state.unwatch()
            if jpeg:
                self._send(200, jpeg, "image/jpeg", path)
            else:
                self._error(503, "no frame yet", path)
        elif path == "/stream.mjpg":
            self._stream(path)
        else:
            self._error(404, f"expected one of /, /stream.mjpg, /snapshot.jpg, /api/latest, /api/classify (POST), "
                             f"/metrics, /healthz; received {path}", path)

    def _stream(self, path: str) -> None:
        state = self.owner.state
        if getattr(state, "source", None) is None:
            self._error(404, "no camera in `edgeport serve`: POST images to /api/classify", path)
            return
        if state.stream_clients >= MAX_STREAM_CLIENTS:
            self._error(503, f"expected at most {MAX_STREAM_CLIENTS} stream clients at once; close one", path)
            return
        self._count(path, 200)
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        state.stream_clients += 1
        state.watch()
        seq = 0
        try:
            while not state.stopped:
                seq, jpeg = state.next_jpeg(seq, timeout=5)
                if not jpeg:
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            pass  # the viewer went away (mid-frame or not): nothing to report
        finally:
            state.unwatch()
            state.stream_clients -= 1

    # -- POST
    def do_POST(self) -> None:
        routed = self._route()
        if routed is None:
            return
        path, _ = routed
        if path != "/api/classify":
            self._error(404, f"expected POST /api/classify, received POST {path}", path)
            return
        upload = self.owner.classify_upload
        if upload is None:
            self._error(404, "this server does not classify uploads", path)
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._error(411, "expected a Content-Length header with the image's size, received none", path)
            return
        size = int(length)
        if size > upload.max_bytes:
            # read what a client that sends its whole body before reading the answer will send, up to a bound,
            # so that it gets the 413 rather than a broken pipe; past the bound, answer and close
            self._discard(min(size, DRAIN_BYTES))
            self.close_connection = True
            self._error(413, f"expected an image of at most {upload.max_bytes:,} bytes (--max-upload-mb), "
                             f"received {size:,} bytes", path)
            return
        body = self.rfile.read(size)
        if len(body) < size:
            self._error(400, f"expected {size} bytes, received {len(body)} (the client stopped sending)", path)
            return
        ctype = self.headers.get("Content-Type", "")
        name = "upload"
        if ctype.lower().startswith("multipart/form-data"):
            found = _multipart_file(body, ctype)
            if found is None:
                self._error(400, "expected a file field in the multipart/form-data body, received none", path)
                return
            body, name = found
        from edgeport.imaging import ImageDecodeError, ImageTooLargeError

        try:
            top, ms = upload(body, name)
        except ImageTooLargeError as exc:
            self._error(413, str(exc), path)
            return
        except ImageDecodeError as exc:
            self._error(415, str(exc), path)
            return
        self.owner.state.record_upload(top, ms)
        self._json(200, {"top": [{"label": lab, "prob": round(p, 6)} for lab, p in top], "ms": round(ms, 3),
                         **{k: self.owner.state.info.get(k) for k in ("artifact", "precision", "engine")}}, path)


def _page(server: LiveServer) -> str:
    has_camera = getattr(server.state, "source", None) is not None
    return _PAGE.replace("{{TITLE}}", _html(server.title)).replace("{{CAMERA}}", "true" if has_camera else "false")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee}
main{display:flex;flex-wrap:wrap;gap:16px;padding:16px}
#view{flex:1 1 480px;min-width:320px}#view img{width:100%;background:#000;image-rendering:auto}
aside{flex:0 1 360px}h1{font-size:18px;margin:0 0 8px}h2{font-size:14px;margin:14px 0 4px;color:#9cf}
#label{font-size:28px;font-weight:bold;color:#7f7}table{border-collapse:collapse;width:100%}
td{padding:2px 6px;border-bottom:1px solid #333;font-variant-numeric:tabular-nums}
.bad{color:#f77}.ok{color:#7f7}.muted{color:#999}
</style></head><body><main>
<section id="view"><img id="stream" alt="live stream"></section>
<aside><h1>{{TITLE}}</h1>
<div id="label">-</div><table id="top"></table>
<h2>speed</h2><div><span id="fps">-</span> FPS, <span id="frames">0</span> frames, up <span id="uptime">-</span></div>
<table id="lat"></table>
<h2>model</h2><div id="artifact" class="muted"></div>
<h2>health</h2><div id="health"></div><table id="sinks"></table>
<h2>classify an image</h2><input type="file" id="file" accept="image/*"><div id="upload" class="muted"></div>
</aside></main>
<script>
const q = new URLSearchParams(location.search); const token = q.get("token");
const withToken = (u) => token ? u + (u.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : u;
const headers = token ? {"Authorization": "Bearer " + token} : {};
if ({{CAMERA}}) document.getElementById("stream").src = withToken("stream.mjpg");
else document.getElementById("view").innerHTML = "<p class=muted>no camera: upload an image</p>";
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
function rows(el, pairs) { document.getElementById(el).innerHTML = pairs.map(
  ([a, b, cls]) => `<tr><td>${esc(a)}</td><td class="${cls||""}">${esc(b)}</td></tr>`).join(""); }
function dur(s) { s = Math.floor(s); const d = Math.floor(s/86400), h = Math.floor(s%86400/3600),
  m = Math.floor(s%3600/60); return (d ? d + "d " : "") + (h ? h + "h " : "") + m + "m " + (s%60) + "s"; }
async function tick() {
  try {
    const r = await fetch("api/latest", {headers}); const d = await r.json();
    const top = (d.result && d.result.top) || (d.last_upload && d.last_upload.top) || [];
    document.getElementById("label").textContent = top.length ? top[0].label + " " + (100*top[0].prob).toFixed(1) + "%" : "-";
    rows("top", top.map((t) => [t.label, (100*t.prob).toFixed(1) + " %"]));
    document.getElementById("fps").textContent = d.fps.toFixed(1);
    document.getElementById("frames").textContent = d.frames;
    document.getElementById("uptime").textContent = dur(d.uptime_s);
    rows("lat", Object.entries(d.latency_ms_p50).map(([k, v]) => [k + " p50", v.toFixed(2) + " ms"]));
    document.getElementById("artifact").textContent = d.artifact + " - " + d.precision + " on " + d.engine;
    const h = d.health; const cam = h.camera.up ? "camera ok" : "camera DOWN";
    document.getElementById("health").innerHTML = `<span class="${h.status == "ok" ? "ok" : "bad"}">${esc(h.status)}</span>` +
      ({{CAMERA}} ? ` - <span class="${h.camera.up ? "ok" : "bad"}">${esc(cam)}</span> (${esc(h.camera.source || "")},` +
      ` ${h.camera.reconnects} reconnects)` : "");
    rows("sinks", h.sinks.map((s) => [s.sink + " " + s.target, (s.up ? "up" : "DOWN") + `, sent ${s.sent}, dropped ${s.dropped},` +
      ` queued ${s.queued_memory + s.queued_disk}`, s.up ? "ok" : "bad"]));
  } catch (e) { document.getElementById("health").textContent = "no answer from the device"; }
}
document.getElementById("file").onchange = async (ev) => {
  const f = ev.target.files[0]; if (!f) return;
  const r = await fetch("api/classify", {method: "POST", headers, body: f}); const d = await r.json();
  document.getElementById("upload").textContent = r.ok ? d.top.map((t) => t.label + " " + (100*t.prob).toFixed(1) + "%").join(", ")
    : d.error;
};
tick(); setInterval(tick, 500);
</script></body></html>
"""


def serve_forever_hint(server: LiveServer, generated: bool) -> str:
    """The line printed at start: where the page is (with the token when one is needed)."""
    tail = " (token generated for this non-local bind; pass --token to choose it)" if generated else ""
    return f"live view and API on {server.url}{tail}"

