"""Where results go: JSON lines on stdout, a rotated file, MQTT, an HTTP webhook.

Each sink is one module of this package that registers a :class:`Sink` subclass in :data:`SINKS` and
describes itself there (the option that names it, what a target looks like, its extra dependency);
every module here is imported when the package is. See :mod:`edgeport.runtime.sinks.base` for the
queue, the reconnects and the publishing policy.
"""

from __future__ import annotations

import importlib
import pkgutil

from edgeport.runtime.sinks.base import (
    PUBLISH_MODES,
    SINKS,
    DeliveryQueue,
    PublishPolicy,
    QueuedSink,
    Sink,
    SinkDown,
    SinkOptions,
    SinkRejected,
    sink_for,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["PUBLISH_MODES", "SINKS", "DeliveryQueue", "PublishPolicy", "QueuedSink", "Sink", "SinkDown", "SinkOptions",
           "SinkRejected", "sink_for"]
