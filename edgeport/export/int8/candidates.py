"""Int8 candidates with some ops kept in float, from one calibration pass.

A :class:`Candidates` object holds one calibrated model and its op graph
(:mod:`edgeport.export.int8.graph`) and writes the int8 model for any set of
ops to keep in float:

    TFLite  the calibrated float model of :func:`edgeport.export.tflite.calibrate`,
            quantized by the MLIR quantizer with ``denylisted_nodes`` (the
            ops' output tensor names); a kept op runs on float kernels with
            DEQUANTIZE before it and QUANTIZE after it
    ONNX    the pre-processed float32 graph, calibrated once into a range cache,
            quantized by onnxruntime's QDQ quantizer with ``nodes_to_exclude``;
            a kept node gets no QDQ pair of its own and keeps float weights
            (a neighbour's QDQ still rounds the tensors it shares with it)

Either one quantizes on any of its scheme's activation-range rules
(:meth:`Candidates.use`: TFLite's ranges re-set from histograms,
:mod:`edgeport.export.int8.ranges`; ONNX's from onnxruntime's calibrators).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Collection, Iterable, Sequence

import numpy as np

from edgeport.errors import ConfigError, ModelError
from edgeport.export.int8.graph import OpNode, onnx_ops, sole_inputs, tflite_ops, tflite_outputs
from edgeport.schemes import Precision, get_scheme

log = logging.getLogger(__name__)


class Candidates:
    """One calibrated model; :meth:`write` makes its int8 model with ``float_ops`` kept float."""

    scheme: str = ""  #: the catalogue scheme they are for, by default
    suffix: str = ""

    def __init__(self, ops: Sequence[OpNode], scheme: str | None = None) -> None:
        self.scheme = scheme or type(self).scheme
        #: activation-range rules the scheme offers (:mod:`edgeport.export.int8.ranges`), the first the default
        self.rules: tuple[str, ...] = get_scheme(self.scheme).range_rules or ("minmax",)
        self.ops: tuple[OpNode, ...] = tuple(ops)
        self.by_index = {op.index: op for op in self.ops}
        self.rule = self.rules[0]

    def use(self, rule: str) -> None:
        """Quantize every later candidate on ``rule``'s activation ranges."""
        if rule not in self.rules:
            raise ConfigError(f"expected a range rule of {self.scheme}, one of {', '.join(self.rules)}, "
                              f"received '{rule}'")
        self.rule = rule

    @property
    def total_macs(self) -> int:
        return int(sum(op.macs for op in self.ops))

    def names(self, float_ops: Iterable[int]) -> list[str]:
        return [self.by_index[i].name for i in sorted(set(float_ops))]

    def describe(self, float_ops: Iterable[int]) -> dict:
        """The float set as recorded in a manifest: ops, Keras layers, MAC share."""
        idx = sorted(set(float_ops))
        nodes = [self.by_index[i] for i in idx]
        layers: list[str] = []
        for n in nodes:
            layers.extend(x for x in n.layers if x not in layers)
        macs = int(sum(n.macs for n in nodes))
        types: dict[str, int] = {}
        for n in nodes:
            types[n.type] = types.get(n.type, 0) + 1
        return {
            "ops": len(nodes), "total_ops": len(self.ops), "op_types": dict(sorted(types.items())),
            "macs": macs, "total_macs": self.total_macs,
            "macs_share": round(macs / self.total_macs, 6) if self.total_macs else 0.0,
            "layers": layers, "nodes": [{"name": n.name, "type": n.type, "layers": list(n.layers), "macs": n.macs}
                                        for n in nodes],
        }

    def write(self, float_ops: Collection[int], path: Path) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError


class TFLiteCandidates(Candidates):
    """int8 TFLite models from one :func:`~edgeport.export.tflite.calibrate` result."""

    scheme = "int8"
    suffix = ".tflite"

    def __init__(self, calibrated: bytes, io_dtype: str = "uint8", layer_names: Collection[str] = (),
                 images: np.ndarray | None = None, progress: bool = False, scheme: str | None = None) -> None:
        """``images``: the calibration images, run again (once, in float) for the histograms of the rules
        other than min/max; ``scheme``: the catalogue scheme they are for (its range rules)."""
        super().__init__(tflite_ops(calibrated, layer_names), scheme)
        self.calibrated = calibrated
        self.io_dtype = io_dtype
        self.images, self.progress = images, progress
        self._hists: dict | None = None
        self._ranged: dict[str, bytes] = {}
        #: the tensors SOFTMAX alone reads (the logits): every rule's range for them keeps what the int8 output
        #: shows (a tensor other ops or the model's outputs read too keeps the rule's range: they would see the
        #: clipped values)
        self.softmax_inputs = {int(i) for i in sole_inputs(self.ops, "SOFTMAX", tflite_outputs(calibrated))}

    def ranged(self, rule: str) -> bytes:
        """The calibrated model with ``rule``'s activation ranges (histograms made on first need), a SOFTMAX's
        input under :func:`~edgeport.export.int8.ranges.softmax_input_range` whatever the rule. Min/max without
        calibration images: the converter's own ranges."""
        if rule not in self._ranged:
            from edgeport.export.int8.ranges import clip_range
            from edgeport.export.tflite import activation_histograms, with_ranges

            no_images = self.images is None or len(self.images) == 0
            if rule == "minmax" and (no_images or not self.softmax_inputs):
                return self.calibrated  # the converter's own ranges
            if no_images:
                raise ModelError(f"expected the calibration images for {rule} activation ranges, received none")
            if self._hists is None:
                self._hists = activation_histograms(self.calibrated, self.images, self.progress,
                                                    rows=self.softmax_inputs)
            ranges = {i: clip_range(h, rule) for i, h in self._hists.items()}
            for i, h in self._hists.items():
                if h.rows is not None:
                    ranges[i] = h.rows.range(*ranges[i])
            self._ranged[rule] = with_ranges(self.calibrated, ranges)
        return self._ranged[rule]

    def quantize(self, float_ops: Collection[int]) -> bytes:
        from edgeport.export.tflite import quantize_calibrated

        return quantize_calibrated(self.ranged(self.rule), Precision.INT8, self.io_dtype,
                                   float_nodes=self.names(float_ops))

    def write(self, float_ops: Collection[int], path: Path) -> Path:
        Path(path).write_bytes(self.quantize(float_ops))
        return Path(path)


class OnnxCandidates(Candidates):
    """QDQ int8 ONNX models from one pre-processed graph and one calibration pass.

    The first :meth:`write` calibrates on ``calibration``
    and keeps the tensor ranges in ``workdir``; every candidate after it is
    quantized from those ranges.
    """

    scheme = "onnx-int8"
    suffix = ".onnx"

    def __init__(self, float_model: str | Path, calibration: np.ndarray | None, workdir: str | Path,
                 calibration_method: str = "minmax", layer_names: Collection[str] = (),
                 progress: bool = True, scheme: str | None = None) -> None:
        from edgeport.export.onnx import check_calibration_method, preprocess

        method = check_calibration_method(calibration_method)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.preprocessed = preprocess(float_model, self.workdir / "preprocessed.onnx")
        self.calibration = calibration
        self.progress = progress
        super().__init__(onnx_ops(self.preprocessed, layer_names), scheme)
        self.use(method)

    @property
    def ranges(self) -> Path:
        """The range cache of the current rule's calibrator (each calibrates once, on first use)."""
        return self.workdir / f"ranges_{self.rule}.json"

    def write(self, float_ops: Collection[int], path: Path) -> Path:
        from edgeport.export.onnx import quantize_qdq

        return quantize_qdq(self.preprocessed, path, self.calibration, progress=self.progress,
                            calibration_method=self.rule, nodes_to_exclude=self.names(float_ops),
                            ranges_cache=self.ranges)
