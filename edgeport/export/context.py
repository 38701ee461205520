"""What the converters of one export share: the model, the calibration images, the intermediates.

A :class:`ConversionContext` builds each shared intermediate (the SavedModel,
the calibrated float .tflite, the float32 ONNX graph, each searchable scheme's
int8 candidates) once, on first use, for every converter of
:mod:`edgeport.export.converters` that needs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeport.schemes import SchemeSpec


@dataclass
class ConversionContext:
    """What converters share: the Keras model, calibration images, a scratch folder."""

    model: object
    workdir: Path
    calibration: np.ndarray | None
    io_dtype: str = "uint8"
    opset: int = 17
    progress: bool = True
    calibration_method: str = "auto"  #: int8/onnx-int8 activation ranges (``--calibration-method``)
    shared_seconds: dict[str, float] = field(default_factory=dict)
    graphs: dict[str, dict] = field(default_factory=dict)
    #: what a QAT fine-tune needs (:meth:`qat`): its settings and the run's train split, checkpoints, labels
    qat_options: dict = field(default_factory=dict)
    _saved_model: Path | None = None
    _qat: object = None
    _onnx_base: Path | None = None
    _calibrated: bytes | BaseException | None = None
    _candidates: dict = field(default_factory=dict)

    def saved_model(self) -> Path:
        """The model as a SavedModel (exported on first call)."""
        if self._saved_model is None:
            from edgeport.export.tflite import export_saved_model

            t0 = time.perf_counter()
            self._saved_model = export_saved_model(self.model, self.workdir / "saved_model")
            self.shared_seconds["saved_model"] = time.perf_counter() - t0
        return self._saved_model

    def calibrated_tflite(self) -> bytes:
        """The float .tflite with calibration min/max, shared by int8 and int16x8 (made on first call).

        A failure is remembered, so the second integer scheme fails at once
        with the same reason instead of calibrating again.
        """
        if self._calibrated is None:
            from edgeport.export.tflite import calibrate

            t0 = time.perf_counter()
            try:
                self._calibrated = calibrate(self.saved_model(), self.calibration, self.progress)
            except Exception as exc:  # noqa: BLE001 - re-raised now and for the next scheme
                self._calibrated = exc
            self.shared_seconds["tflite_calibration"] = time.perf_counter() - t0
        if isinstance(self._calibrated, BaseException):
            raise self._calibrated
        return self._calibrated

    def layer_names(self) -> list[str]:
        """Every Keras layer name of the model (nested ones too): what converter op names are mapped back to."""
        from edgeport.export.int8.graph import keras_layer_names

        return keras_layer_names(self.model)

    def candidates(self, scheme: SchemeSpec):
        """``scheme``'s int8 models with any ops kept float, from one calibration (made on first call):
        TFLite's from the calibrated float .tflite, ONNX's from the float32 graph (calibrated on first write)."""
        if scheme.name not in self._candidates:
            from edgeport.export.int8.candidates import OnnxCandidates, TFLiteCandidates

            t0 = time.perf_counter()
            rule = self.range_rules(scheme.name)[0]
            if scheme.format == "tflite":
                cands = TFLiteCandidates(self.calibrated_tflite(), self.io_dtype, self.layer_names(),
                                         images=self.calibration, progress=self.progress, scheme=scheme.name)
                cands.use(rule)
            else:
                cands = OnnxCandidates(self.onnx_base(), self.calibration, self.workdir / scheme.name, rule,
                                       self.layer_names(), progress=self.progress, scheme=scheme.name)
                self.shared_seconds["onnx_preprocess"] = time.perf_counter() - t0
            self._candidates[scheme.name] = cands
        return self._candidates[scheme.name]

    def qat(self, rule: str):
        """The QAT fine-tune of the model (once per export, shared by every searchable scheme) and a context on
        the fine-tuned model (its own SavedModel, calibration and candidates); (QATResult, ConversionContext)."""
        if self._qat is None:
            from dataclasses import replace

            from edgeport.export.exporter import load_keras_model
            from edgeport.export.int8.qat import QATSettings, fine_tune

            o = self.qat_options
            settings = QATSettings(epochs=o["epochs"], lr=o["lr"], rule=rule, seed=o.get("seed", 0))
            student = load_keras_model(o["model_path"])  # a copy to fine-tune; self.model stays the reference
            t0 = time.perf_counter()
            result = fine_tune(self.model, student, o["train"], o["classes"], o["contract"], self.calibration,
                               settings, o.get("checkpoint_dir"), o.get("resume", False), self.progress,
                               fingerprint=f"{o.get('source_sha256', '')}:{settings}")
            self.shared_seconds["qat"] = time.perf_counter() - t0
            child = replace(self, model=result.model, workdir=self.workdir / "qat", shared_seconds={}, graphs={},
                            _saved_model=None, _onnx_base=None, _calibrated=None, _candidates={}, _qat=None)
            child.workdir.mkdir(parents=True, exist_ok=True)
            self._qat = (result, child)
        return self._qat

    def range_rules(self, scheme: str) -> tuple[str, ...]:
        """The activation-range rules ``scheme`` may use (the first is its full-integer model's)."""
        from edgeport.export.int8.ranges import range_rules

        return range_rules(scheme, self.calibration_method)

    def onnx_base(self) -> Path:
        """The float32 ONNX model without metadata (converted on first call)."""
        if self._onnx_base is None:
            from edgeport.export.onnx import export_float32

            t0 = time.perf_counter()
            self._onnx_base = export_float32(self.model, self.workdir / "base.onnx", self.opset)
            self.shared_seconds["onnx_base"] = time.perf_counter() - t0
        return self._onnx_base
