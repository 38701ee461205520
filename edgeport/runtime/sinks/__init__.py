"""Where results go: JSON lines on stdout, a rotated file, MQTT, an HTTP webhook.

Each sink is one module of this package that registers a :class:`Sink` subclass in :data:`SINKS` and
describes itself there (the option that names it, what a target looks like, its extra dependency);
every module here is imported when the package is. See :mod:`edgeport.runtime.sinks.base` for the
queue, the reconnects and the publishing policy.
"""

from __future__ import annotations

from edgeport.registry import import_entries
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

import_entries(__name__, __path__)

__all__ = ["PUBLISH_MODES", "SINKS", "DeliveryQueue", "PublishPolicy", "QueuedSink", "Sink", "SinkDown", "SinkOptions",
           "SinkRejected", "sink_for"]
