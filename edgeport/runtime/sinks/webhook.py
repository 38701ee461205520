"""An HTTP(S) webhook: each message POSTed as JSON, on one kept-alive connection.

    --webhook http[s]://[user:password@]host[:port]/path
"""

from __future__ import annotations

import base64
import http.client
import ssl
from urllib.parse import unquote, urlsplit

from edgeport.errors import ConfigError
from edgeport.runtime.masking import mask_secrets
from edgeport.runtime.sinks.base import SINKS, QueuedSink, SinkDown, SinkOptions, SinkRejected

#: answers that mean "try again later" rather than "never"
_RETRY = {408, 425, 429}


@SINKS.register("webhook")
class WebhookSink(QueuedSink):
    """POSTs each message (Content-Type: application/json). 2xx: delivered; 5xx, 408, 429 or no answer:
    kept and retried with backoff; another 4xx: the receiver refuses that message for good, so it is
    dropped and counted as rejected (it would otherwise block every later message)."""

    name = "webhook"
    target_help = "http[s]://[user:password@]host[:port]/path (each result POSTed as JSON)"
    url_schemes = ("http", "https")

    def __init__(self, target: str, options: SinkOptions) -> None:
        super().__init__(target, options)
        url = urlsplit(target)
        try:
            self.port = url.port
        except ValueError:
            raise ConfigError(f"expected a port number in --webhook, received '{mask_secrets(target)}'") from None
        self.host = url.hostname or ""
        if not self.host:
            raise ConfigError(f"expected --webhook http[s]://host[:port]/path, received '{mask_secrets(target)}'")
        self.https = url.scheme.lower() == "https"
        self.path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self.headers = {"Content-Type": "application/json", "User-Agent": "edgeport"}
        if url.username:
            token = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> None:
        if self.https:
            self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.options.timeout,
                                                     context=ssl.create_default_context())
        else:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.options.timeout)
        try:
            self._conn.connect()
        except OSError as exc:
            self._disconnect()
            raise SinkDown(f"cannot connect to {self.host}:{self.port or (443 if self.https else 80)}: {exc}") from exc

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _deliver(self, items: list[bytes]) -> int:
        if self._conn is None:
            self._connect()
        try:
            self._conn.request("POST", self.path, body=items[0], headers=self.headers)
            response = self._conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise SinkDown(f"no answer from the webhook: {exc}") from exc
        if response.will_close:
            self._disconnect()
        status = response.status
        if 200 <= status < 300:
            return 1
        if status >= 500 or status in _RETRY:
            raise SinkDown(f"the webhook answered {status} {response.reason}")
        raise SinkRejected(f"the webhook answered {status} {response.reason} to a message; dropped")
