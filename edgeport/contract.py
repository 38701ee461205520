"""The contract between a model and whoever feeds it, stored with every artifact.

Every edgeport model takes raw RGB pixels in [0, 255], NHWC, resized with the
method training used; the backbone's normalisation lives inside the model.
The export stage writes :class:`ModelInfo` as JSON into each artifact (TFLite
metadata entry ``edgeport``, ONNX ``metadata_props['edgeport']``) and into
``manifest.json``; the runtime reads it back without TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from edgeport.errors import ModelError

METADATA_KEY = "edgeport"
METADATA_FORMAT = 1


@dataclass(frozen=True)
class InputContract:
    """What the model's input expects (the tensor dtype is read from the engine)."""

    height: int
    width: int
    channels: int = 3
    layout: str = "NHWC"
    color: str = "RGB"
    range: tuple[float, float] = (0.0, 255.0)
    resize: str = "area"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["range"] = list(self.range)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "InputContract":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "range" in known:
            known["range"] = tuple(float(v) for v in known["range"])
        return cls(**known)


@dataclass(frozen=True)
class ModelInfo:
    """Everything a device needs to use one artifact, embedded in the file."""

    labels: tuple[str, ...]
    input: InputContract
    scheme: str
    source_sha256: str = ""
    backbone: str = ""
    edgeport_version: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": METADATA_FORMAT,
                "labels": list(self.labels),
                "input": self.input.to_dict(),
                "scheme": self.scheme,
                "source_sha256": self.source_sha256,
                "backbone": self.backbone,
                "edgeport_version": self.edgeport_version,
                "extra": self.extra,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "metadata") -> "ModelInfo":
        try:
            d = json.loads(text)
            return cls(
                labels=tuple(d["labels"]),
                input=InputContract.from_dict(d["input"]),
                scheme=d.get("scheme", ""),
                source_sha256=d.get("source_sha256", ""),
                backbone=d.get("backbone", ""),
                edgeport_version=d.get("edgeport_version", ""),
                extra=d.get("extra", {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"expected edgeport metadata JSON with 'labels' and 'input' in {where}, "
                f"received something unreadable ({exc})"
            ) from exc
