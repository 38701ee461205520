"""MQTT through paho-mqtt: QoS 1 (at least once), TLS with ``mqtts://``, reconnect with backoff.

    --mqtt mqtt://[user:password@]host[:port]/topic        (port 1883; mqtts: 8883, TLS)
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from edgeport.errors import ConfigError, MissingDependencyError
from edgeport.runtime.masking import mask_secrets
from edgeport.runtime.sinks.base import SINKS, QueuedSink, SinkDown, SinkOptions

#: CONNACK reason codes that no retry can fix (MQTT 3.1.1 return codes 1, 2, 4, 5 and their v5 equivalents)
_REFUSED = {"Unsupported protocol version", "Client identifier not valid", "Bad user name or password",
            "Not authorized", "Identifier rejected", "Bad username or password"}


@SINKS.register("mqtt")
class MqttSink(QueuedSink):
    """Publishes each message to a topic with QoS 1; up to :attr:`batch` in flight, each kept in the queue
    until the broker acknowledges it (paho resends the unacknowledged ones after a reconnect)."""

    name = "mqtt"
    target_help = "mqtt://[user:password@]host[:port]/topic (mqtts:// for TLS)"
    url_schemes = ("mqtt", "mqtts")
    module = "paho.mqtt.client"
    install = "pip install 'edgeport[mqtt]'"
    batch = 64

    def __init__(self, target: str, options: SinkOptions, ca_file: str | None = None,
                 client_id: str | None = None) -> None:
        super().__init__(target, options)
        url = urlsplit(target)
        self.tls = url.scheme.lower() == "mqtts"
        try:
            port = url.port
        except ValueError:
            raise ConfigError(f"expected a port number in --mqtt, received '{mask_secrets(target)}'") from None
        self.host, self.port = url.hostname or "", port or (8883 if self.tls else 1883)
        self.topic = unquote(url.path.lstrip("/"))
        if not self.host or not self.topic:
            raise ConfigError(f"expected --mqtt mqtt://[user:password@]host[:port]/topic, received "
                              f"'{mask_secrets(target)}' (no {'host' if not self.host else 'topic'})")
        if any(ch in self.topic for ch in "+#\0"):
            raise ConfigError(f"expected an MQTT topic without wildcards (+, #) in --mqtt, received '{self.topic}'")
        self.username = unquote(url.username) if url.username else None
        self.password = unquote(url.password) if url.password else None
        if ca_file is not None and not os.path.isfile(ca_file):
            raise ConfigError(f"expected --mqtt-ca to be a PEM file of CA certificates, received '{ca_file}', "
                              "which does not exist")
        self.ca_file = ca_file
        self.client_id = client_id or f"edgeport-{socket.gethostname()}-{os.getpid()}"
        self._client: Any = None
        self._state = threading.Condition()
        self._link = False  # the network link is up (CONNACK accepted)
        self._refused = ""

    def describe(self) -> str:
        return f"mqtt {'mqtts' if self.tls else 'mqtt'}://{'***@' if self.username else ''}{self.host}:{self.port}/" \
               f"{self.topic}"

    # -- paho callbacks (its network thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        with self._state:
            if getattr(reason, "is_failure", False):
                text = str(reason)
                self._refused = text if text in _REFUSED else ""
                self.last_error = f"the broker refused the connection: {text}"
                self._link = False
            else:
                self._link = True
                self._refused = ""
            self._state.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        with self._state:
            if self._link and not self._stop.is_set():
                self.reconnects += 1
            self._link = False
            self._state.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any = None, properties: Any = None) -> None:
        with self._state:
            self._state.notify_all()

    def start(self) -> None:
        """Connect (in paho's thread, which reconnects by itself); a refused login is a ConfigError at once,
        an unreachable broker only a warning (messages queue until it is back)."""
        try:
            import paho.mqtt.client as paho
        except ImportError as exc:
            raise MissingDependencyError(f"expected the paho-mqtt package for --mqtt, but it could not be imported "
                                         f"({exc}); install it with: {self.install}") from exc
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            import ssl

            try:
                client.tls_set(ca_certs=self.ca_file, cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConfigError(f"expected a readable PEM CA file for --mqtt-ca, received '{self.ca_file}' "
                                  f"({exc})") from exc
        client.max_inflight_messages_set(self.batch)
        client.reconnect_delay_set(min_delay=1, max_delay=int(self.backoff_max))
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        try:
            client.connect_async(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"expected a reachable MQTT broker address in --mqtt, received {self.describe()} "
                              f"({exc})") from exc
        client.loop_start()
        deadline = time.monotonic() + self.options.timeout
        with self._state:
            while not self._link and not self._refused and time.monotonic() < deadline:
                self._state.wait(0.05)
        if self._refused:
            self.close(0)
            raise ConfigError(f"expected the MQTT broker {self.describe()} to accept the login, but it refused it "
                              f"({self._refused}); check the user name and password in --mqtt")
        if not self._link:
            import logging

            logging.getLogger(__name__).warning(
                "%s is not reachable yet; results are queued until it is (%d in memory%s)", self.describe(),
                self.options.queue_size, f", then {self.options.spool_mb:g} MB in {self.options.spool_dir}"
                if self.options.spool_dir else "")
        super().start()

    # -- QueuedSink hooks (the delivery thread)
    def _connect(self) -> None:
        with self._state:
            if not self._link:
                self._state.wait(0.5)
            if not self._link:
                raise SinkDown(self.last_error or f"no connection to {self.host}:{self.port}")

    def _deliver(self, items: list[bytes]) -> int:
        infos = []
        if not self._link:
            raise SinkDown(self.last_error or "not connected")
        for item in items:
            info = self._client.publish(self.topic, item, qos=1)
            if info.rc not in (0,):  # not connected: paho keeps it, but we count only acknowledged ones
                if not infos:
                    raise SinkDown(f"publish failed (rc {info.rc})")
                break
            infos.append(info)
        # wait for every acknowledgement; what the broker did not acknowledge before the link dropped stays
        # queued and is published again after the reconnect (at least once: a subscriber may see it twice)
        deadline = time.monotonic() + 30.0
        for n, info in enumerate(infos):
            while not info.is_published():
                if self._stop.is_set() or time.monotonic() > deadline or not self._link:
                    if n:
                        return n
                    raise SinkDown("the connection dropped before the broker acknowledged")
                with self._state:
                    if not info.is_published():
                        self._state.wait(0.1)
        return len(infos)

    @property
    def up(self) -> bool:
        return self._link

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        if self._client is not None:
            try:
                self._client.disconnect()
                self._client.loop_stop()
            except (OSError, RuntimeError):
                pass
            self._client = None
