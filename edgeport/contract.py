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

#: resize methods a contract may name (OpenCV's INTER_AREA / INTER_LINEAR / INTER_NEAREST)
RESIZE_METHODS = ("area", "bilinear", "nearest")
#: the method training uses unless told otherwise
DEFAULT_RESIZE = "area"
LAYOUTS = ("NHWC", "NCHW")
COLORS = ("RGB", "BGR")


@dataclass(frozen=True)
class InputContract:
    """What the model's input expects (the tensor dtype is read from the engine)."""

    height: int
    width: int
    channels: int = 3
    layout: str = "NHWC"
    color: str = "RGB"
    range: tuple[float, float] = (0.0, 255.0)
    resize: str = DEFAULT_RESIZE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["range"] = list(self.range)
        return d

    @classmethod
    def from_dict(cls, d: object, where: str = "input contract") -> "InputContract":
        """Read a contract from untrusted JSON, checking every field (ModelError names the bad one)."""
        if not isinstance(d, dict):
            raise ModelError(f"expected the input contract in {where} to be a JSON object, received {type(d).__name__}")

        def bad(key: str, expected: str) -> ModelError:
            return ModelError(f"expected '{key}' of the input contract in {where} to be {expected}, "
                              f"received {d.get(key)!r}; re-export the model with `edgeport export`")

        known: dict = {}
        for key in ("height", "width", "channels"):
            if key in d:
                v = d[key]
                if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= 65536:
                    raise bad(key, "a positive integer")
                known[key] = v
        for key in ("height", "width"):
            if key not in known:
                raise bad(key, "a positive integer")
        for key, allowed in (("layout", LAYOUTS), ("color", COLORS), ("resize", RESIZE_METHODS)):
            if key in d:
                if d[key] not in allowed:
                    raise bad(key, "one of " + ", ".join(allowed))
                known[key] = d[key]
        if "range" in d:
            r = d["range"]
            if (not isinstance(r, (list, tuple)) or len(r) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
                    or not float(r[0]) < float(r[1])):
                raise bad("range", "two increasing numbers [low, high]")
            known["range"] = (float(r[0]), float(r[1]))
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
        """Parse embedded metadata (untrusted: every field is checked)."""
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"expected edgeport metadata JSON in {where}, received unreadable bytes ({exc}); "
                             "the file is damaged: copy it again or re-export it") from exc
        if not isinstance(d, dict) or "labels" not in d or "input" not in d:
            raise ModelError(f"expected edgeport metadata JSON with 'labels' and 'input' in {where}, "
                             f"received {type(d).__name__ if not isinstance(d, dict) else 'keys ' + ', '.join(sorted(d))}")
        labels = check_labels(d["labels"], where)
        text_fields = {k: d.get(k, "") for k in ("scheme", "source_sha256", "backbone", "edgeport_version")}
        for k, v in text_fields.items():
            if not isinstance(v, str):
                raise ModelError(f"expected '{k}' in the edgeport metadata of {where} to be text, received {v!r}")
        extra = d.get("extra", {})
        if not isinstance(extra, dict):
            raise ModelError(f"expected 'extra' in the edgeport metadata of {where} to be an object, received {extra!r}")
        return cls(labels=labels, input=InputContract.from_dict(d["input"], where), extra=extra, **text_fields)


def check_labels(labels: object, where: str) -> tuple[str, ...]:
    """Class labels from untrusted JSON: a list of at least 2 distinct, non-empty strings."""
    if (not isinstance(labels, (list, tuple)) or len(labels) < 2
            or not all(isinstance(v, str) and v.strip() for v in labels)):
        raise ModelError(f"expected 'labels' in {where} to be a list of at least 2 non-empty names, "
                         f"received {str(labels)[:120]}; re-export the model with `edgeport export`")
    if len(set(labels)) != len(labels):
        dup = sorted({v for v in labels if list(labels).count(v) > 1})
        raise ModelError(f"expected distinct labels in {where}, received duplicates: {', '.join(dup)}")
    return tuple(labels)


def printable(text: str, limit: int = 200) -> str:
    """``text`` safe for a terminal: control characters (escape sequences included) shown as '?'."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def printable_lines(text: str, limit: int = 100_000) -> str:
    """:func:`printable` line by line: a table or report keeps its newlines, loses escape sequences."""
    return "\n".join(printable(line, limit) for line in str(text).split("\n"))
