"""Quantization-aware fine-tuning (QAT): the trained model fine-tuned under simulated int8, as TFLite computes it.

Post-training int8 rounds weights and activations the model never saw rounded;
on some backbones (EfficientNet-B0's swish and squeeze-excitation, MobileNetV2
trained briefly) no choice of ranges or of ops kept float repairs that within
the budget. QAT lets the weights learn to live with the rounding:

* **What is simulated** (:func:`plan`): each Conv2D, DepthwiseConv2D and Dense
  computes with its weights fake-quantized per output channel, symmetric, to
  [-127, 127] steps of max|w| / 127 - TFLite's int8 weights. A BatchNormalization
  that directly follows one of them is folded first (the converter folds it),
  so the weights rounded are the folded ones; the BatchNormalization itself
  then runs frozen, in inference mode. Every tensor TFLite keeps as an int8
  activation (a layer's output, or a Keras op's such as hard-sigmoid's
  ``* (1 / 6)``, unless the converter fuses it into the next op: a conv before
  its BatchNormalization, a conv or folded BatchNormalization before a
  ReLU/ReLU6, a constant added between the two) is fake-quantized per tensor on
  its activation range; what feeds a residual ADD on the ADD's range where the
  converter sets it so (:attr:`Plan.widen`). Checked against the converter's
  own ranges, within 5 %: MobileNetV2 67 of 68 int8 tensors, MobileNetV3Small
  108 of 109 (the other: the input Rescaling's MUL, whose range the converter
  joins with the ADD after it in some models), EfficientNet-B0 175 of 178 (the
  others within 10 %).
* **Ranges**: each activation's range is set from the calibration images by the
  scheme's range rule (:mod:`edgeport.export.int8.ranges`) on the float model
  with the current weights, before the first epoch and again after each, so
  that the ranges training rounds on are those the converter will calibrate;
  the logits (what a softmax reads, :attr:`Plan.logits`) keep only what the
  int8 SOFTMAX shows, as the export's candidates set them
  (:func:`edgeport.export.int8.ranges.softmax_input_range`).
* **Objective**: distillation from the original Keras model on the same
  augmented image (the run's own augmentation over its train split): KL
  divergence from its probabilities; optionally (:attr:`QATSettings.margin`,
  Python API) plus a hinge on the student's margin for the original's top-1
  class, ``max(0, m - (log p[top-1] - max log p[other]))``, which asks for
  the original's answer by a margin where KL asks the student to copy
  near-ties it cannot keep rounded. Simulated int8 agreement on all 736
  validation photos after 2 epochs (flowers, 96 px): EfficientNet-B0 on
  entropy ranges 84.2 -> 88.3 % with KL alone, 89.4 % with cross-entropy on
  the top-1 class beside it, 90.1 % with the hinge (m = 0.1); on min/max
  ranges 77.3 -> 77.9 / 88.9 / 85.2 %. MobileNetV2 on percentile ranges 97.0
  -> 96.7 / 95.0 / 96.1 %. In the exports the differences were within the
  noise of one QAT run to the next (EfficientNet-B0's QAT full int8 89.4 to
  92.7 % on the selection with either term), and MobileNetV2's full int8
  met its budget after KL alone (98.1 %) and not after either term (95.7 %):
  KL alone stays the default. Labels are not needed.
* **Result**: the same architecture with fine-tuned float weights
  (:func:`fine_tune` returns it); the export then converts it like any model
  (one calibration, the range rules, the float-fallback search) and verifies
  it against the *original* Keras model on images neither the fine-tune nor
  the search saw.

Checkpoints (weights and state after each epoch) go to ``checkpoint_dir``;
``resume`` continues an interrupted fine-tune from the last one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterable

import numpy as np

from edgeport._lazy import require
from edgeport.errors import ConfigError, ModelError
from edgeport.export.int8.ranges import RowPeak
from edgeport.files import atomic_path, atomic_write_text
from edgeport.metrics import agreement_pct
from edgeport.progress import Progress

log = logging.getLogger(__name__)

#: weight and activation layers the simulation knows (their Keras class names)
CONV_LIKE = ("Conv2D", "DepthwiseConv2D", "Dense")
#: layers that compute nothing at inference (their output keeps its input's quantization)
PASS_THROUGH = ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "Flatten", "Reshape",
                "ActivityRegularization", "InputLayer", "ZeroPadding2D", "MaxPooling2D", "Cropping2D")
#: identity at inference; the converter gives what feeds one into an ADD the ADD's range (Plan.widen)
DROPOUTS = ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout")
#: Keras ops (not layers) the converter makes one int8 ADD / SUB / MUL / DIV of (``x * (1 / 6)``)
ARITHMETIC = ("Add", "Subtract", "Multiply", "Divide", "TrueDivide")
STATE_FILE = "qat_state.json"
WEIGHTS_FILE = "qat.weights.h5"


@dataclass(frozen=True)
class QATSettings:
    """How the fine-tune runs (``--qat-epochs``, ``--qat-lr``; the rest follows the run and the export)."""

    epochs: int = 2
    lr: float = 1e-5
    batch_size: int = 32
    rule: str = "minmax"  #: the activation-range rule the ranges are set by
    seed: int = 0
    #: distillation temperature: > 1 weighs the teacher's small probabilities, where int8 flips near-ties
    temperature: float = 1.0
    #: log-probability margin the student is asked to keep for the original model's top-1 class, a hinge beside
    #: the KL term (0, the default: KL alone; 0.1 measured in the module doc)
    margin: float = 0.0

    def __post_init__(self) -> None:
        if int(self.epochs) < 1:
            raise ConfigError(f"expected --qat-epochs >= 1, received {self.epochs}")
        if not 0 < float(self.lr) < 1:
            raise ConfigError(f"expected --qat-lr between 0 and 1 (e.g. 1e-4), received {self.lr}")
        if not float(self.margin) >= 0:
            raise ConfigError(f"expected a QAT margin >= 0 (a log-probability difference), received {self.margin}")

    def objective(self) -> str:
        """What the fine-tune minimises, in words (the manifest's ``quantization.qat.objective``)."""
        text = "distillation: KL divergence from the original Keras model's probabilities"
        if float(self.temperature) != 1.0:
            text += f" at temperature {self.temperature:g}"
        if self.margin:
            text += f" plus a hinge asking a log-probability margin of {self.margin:g} for its top-1 class"
        return text


@dataclass
class QATResult:
    """What :func:`fine_tune` did: the fine-tuned model and what the manifest records of it."""

    model: Any
    epochs: int
    images: int  #: training images per epoch
    seconds: float
    history: list[dict] = field(default_factory=list)  #: per epoch: loss, agreement with Keras on calibration images
    resumed_from: int = 0  #: epochs already done by an earlier, interrupted run
    settings: QATSettings = field(default_factory=QATSettings)
    quantized_tensors: int = 0
    quantized_weights: int = 0

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "images": self.images, "seconds": round(self.seconds, 1),
                "history": self.history, "resumed_from": self.resumed_from, "settings": asdict(self.settings),
                "quantized_tensors": self.quantized_tensors, "quantized_weights": self.quantized_weights,
                "objective": self.settings.objective()}


# --------------------------------------------------------------------------- what is quantized


@dataclass
class Plan:
    """Per layer name: the BatchNormalization folded into a conv-like layer, and whether its output is an int8
    tensor of the converted model."""

    fold: dict[str, Any] = field(default_factory=dict)  #: conv-like layer name -> its BatchNormalization layer
    folded: set[str] = field(default_factory=set)  #: BatchNormalization layers folded into the layer before
    quantize: set[str] = field(default_factory=set)  #: layers (and Keras ops) whose output is fake-quantized
    weights: set[str] = field(default_factory=set)  #: conv-like layers whose weights are fake-quantized
    #: an ADD -> the inputs the converter gives the union of their range and the ADD's: the others when one
    #: input is a ReLU's output, any input that reaches it through a Dropout (EfficientNet's project_bn), and any
    #: that feeds nothing else (every residual block's project output); seen on every such ADD measured
    widen: dict[str, list[str]] = field(default_factory=dict)
    #: the tensors a softmax reads (the logits), whose range keeps what the int8 SOFTMAX shows
    #: (:func:`edgeport.export.int8.ranges.softmax_input_range`, as the converter's candidates set it)
    logits: set[str] = field(default_factory=set)
    #: the model's own graph (its nodes and its nested models'), read while planning: a layer shared with a clone
    #: (:func:`probe`, :func:`simulated`) also has the clone's calls on it, which are not the converter's graph
    nodes: set[int] = field(default_factory=set, repr=False, compare=False)


def _layers(model, operations: bool = False) -> Iterable[Any]:
    """Every layer, nested models' layers included (outer first); with ``operations``, also the Keras ops between
    them (``x + 3.0``)."""
    for layer in (getattr(model, "operations", model.layers) if operations else model.layers):
        yield layer
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Model", "Sequential"):
            yield from _layers(layer, operations)


def _is_layer(op) -> bool:
    keras = require("keras", "quantization-aware fine-tuning")
    return isinstance(op, keras.layers.Layer)


def _fuses_into(layer, after, p: Plan) -> bool:
    """``after`` is a ReLU / ReLU6 that TFLite fuses into ``layer`` (a conv-like layer without an activation of
    its own, or a folded BatchNormalization)."""
    fusable = layer.name in p.folded or (layer.name in p.weights and _linear(layer))
    return fusable and _fused_relu(after)


def _bias_add(op, p: Plan) -> bool:
    """A constant added to the output of a conv-like layer (or folded BatchNormalization) that feeds nothing
    else, before a ReLU that then fuses (MobileNetV3's hard-sigmoid, ``relu6(x + 3)``): the converter adds the
    constant to the bias and fuses the ReLU, so neither the conv's nor the ADD's output is an int8 tensor."""
    if _is_layer(op) or op.__class__.__name__ not in ("Add", "Subtract"):
        return False
    before, after = _producers(op), _consumers(op, p)
    return (len(before) == 1 and len(after) == 1 and len(_consumers(before[0], p)) == 1
            and _fuses_into(before[0], after[0], p))


def _consumers(layer, p: Plan) -> list[Any]:
    """The layers that read this layer's output in the planned model's graph (``p.nodes``; Keras keeps every
    call's reader on the layer's outbound nodes, a clone's too)."""
    out = []
    for node in getattr(layer, "_outbound_nodes", []):
        op = getattr(node, "operation", None)
        if op is not None and (not p.nodes or id(node) in p.nodes):
            out.append(op)
    return out


def _graph_nodes(model) -> set[int]:
    """The nodes (by identity) of ``model``'s graph and of its nested models' graphs, as Keras lists them by
    depth (a Sequential keeps its graph on a Functional of its own). Empty where Keras lists none: every reader
    then counts, which is right for a model no clone has called."""
    nodes: set[int] = set()
    for m in [model, *_layers(model)]:
        by_depth = getattr(m, "_nodes_by_depth", None) or getattr(getattr(m, "_functional", None),
                                                                   "_nodes_by_depth", None) or {}
        nodes |= {id(node) for level in by_depth.values() for node in level}
    return nodes


def _fused_relu(layer) -> bool:
    """A ReLU / ReLU6 that TFLite fuses into the conv (or folded BatchNormalization) before it."""
    name = layer.__class__.__name__
    if name == "ReLU":
        return (getattr(layer, "max_value", None) in (None, 6.0) and not getattr(layer, "negative_slope", 0.0)
                and not getattr(layer, "threshold", 0.0))
    if name == "Activation":
        fn = getattr(layer.activation, "__name__", "")
        return fn in ("relu", "relu6")
    return False


def _linear(layer) -> bool:
    return getattr(getattr(layer, "activation", None), "__name__", "linear") == "linear"


def plan(model) -> Plan:
    """Which weights and which activation tensors the simulation rounds, from the model's graph (module doc)."""
    p = Plan(nodes=_graph_nodes(model))
    layers = list(_layers(model))
    for layer in layers:
        kind = layer.__class__.__name__
        if kind in CONV_LIKE and not (kind == "Conv2D" and getattr(layer, "groups", 1) != 1):
            p.weights.add(layer.name)
            after = _consumers(layer, p)
            if len(after) == 1 and after[0].__class__.__name__ == "BatchNormalization" and _linear(layer):
                p.fold[layer.name] = after[0]
                p.folded.add(after[0].name)
    for layer in _layers(model, operations=True):
        kind = layer.__class__.__name__
        if kind in PASS_THROUGH or kind in ("Functional", "Model", "Sequential"):
            continue
        if not _is_layer(layer) and kind not in ARITHMETIC:
            continue  # other Keras ops are not simulated
        after = _consumers(layer, p)
        if layer.name in p.fold:
            continue  # its BatchNormalization's output is the int8 tensor
        if len(after) == 1 and _fuses_into(layer, after[0], p):
            continue  # TFLite fuses the ReLU into this op: one int8 tensor, after the ReLU
        if (len(after) == 1 and _bias_add(after[0], p)) or _bias_add(layer, p):
            continue  # a constant added to a conv's output before a ReLU (hard-sigmoid's x + 3): in its bias, fused
        p.quantize.add(layer.name)
    for layer in layers:
        if layer.name in p.weights and layer.name in p.quantize and _act_name(layer) == "softmax":
            p.logits.add(f"{layer.name}/pre")  # FULLY_CONNECTED, then SOFTMAX (_forward)
        elif (layer.__class__.__name__ == "Softmax" and getattr(layer, "axis", -1) in (-1, [-1])) or (
                layer.__class__.__name__ == "Activation" and _act_name(layer) == "softmax"):
            # over the last axis, and the logits read by nothing else (others would see the clipped values)
            p.logits.update(src for x in _producers(layer) if len(_consumers(x, p)) == 1
                            and (src := _quantized_source(x, p)))
    for layer in layers:
        if layer.__class__.__name__ == "Add" and _is_layer(layer) and layer.name in p.quantize:
            sources = [_quantized_source(x, p) for x in _producers(layer)]
            clamped = [x for x in sources if x and _relu_output(x, layers)]
            widened = [x for x in sources if x and x not in clamped] if clamped else []
            widened += [src for x in _producers(layer) if (x.__class__.__name__ in DROPOUTS or _only_feeds(x, layer, p))
                        and (src := _quantized_source(x, p)) and src not in widened]
            if widened:
                p.widen[layer.name] = widened
    return p


def _producers(layer) -> list[Any]:
    """The layers whose outputs this layer reads (at its first call)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        return []
    return [n.operation for n in nodes[0].parent_nodes if getattr(n, "operation", None) is not None]


def _only_feeds(layer, add, p: Plan) -> bool:
    """``layer``'s output reaches nothing but ``add`` (through pass-through layers)."""
    for _ in range(16):
        after = _consumers(layer, p)
        if len(after) != 1:
            return False
        if after[0] is add:
            return True
        if after[0].__class__.__name__ not in PASS_THROUGH:
            return False
        layer = after[0]
    return False


def _quantized_source(layer, p: Plan) -> str | None:
    """The quantized tensor a layer's output is, looking through pass-through layers (None: none)."""
    for _ in range(16):
        if layer is None or layer.name in p.quantize:
            return None if layer is None else layer.name
        parents = _producers(layer) if layer.__class__.__name__ in PASS_THROUGH else []
        layer = parents[0] if len(parents) == 1 else None
    return None


def _relu_output(name: str, layers: list) -> bool:
    layer = next((x for x in layers if x.name == name), None)
    return layer is not None and (_fused_relu(layer) or _act_name(layer) in ("relu", "relu6"))


# --------------------------------------------------------------------------- the simulated model


def _weight_quant(keras, kernel, kind: str):
    """``kernel`` fake-quantized per output channel, symmetric [-127, 127] (TFLite's int8 weights)."""
    ops = keras.ops
    if kind == "DepthwiseConv2D":  # (kh, kw, in, mult): TFLite's channels are in * mult
        shape = ops.shape(kernel)
        flat = ops.reshape(kernel, (shape[0], shape[1], shape[2] * shape[3]))
        return ops.reshape(_weight_quant(keras, flat, "Conv2D"), shape)
    axes = tuple(range(len(kernel.shape) - 1))
    m = ops.maximum(ops.max(ops.abs(kernel), axis=axes), 1e-12)
    return keras.quantizers.fake_quant_with_min_max_vars(kernel, -m, m, num_bits=8, narrow_range=True,
                                                         axis=len(kernel.shape) - 1)


def _bn_scale(keras, bn):
    ops = keras.ops
    gamma = bn.gamma if bn.scale else ops.ones_like(bn.moving_variance)
    return gamma / ops.sqrt(bn.moving_variance + bn.epsilon)


def _conv_call(keras, layer, x, bn, activation: bool = True, round_weights: bool = True):
    """``layer``'s output computed with fake-quantized weights (folded with ``bn`` first, when it folds)."""
    ops = keras.ops
    kind = layer.__class__.__name__
    kernel = layer.kernel
    if round_weights and bn is not None:  # round the weights the converter will hold: the folded ones
        s = _bn_scale(keras, bn)
        shape = (1,) * (len(kernel.shape) - 1) + (-1,)
        if kind == "DepthwiseConv2D":
            shape = (1, 1) + tuple(kernel.shape[2:])
        s = ops.reshape(s, shape)
        safe = ops.where(ops.abs(s) > 1e-12, s, ops.ones_like(s))
        kernel = _weight_quant(keras, kernel * safe, kind) / safe
    elif round_weights:
        kernel = _weight_quant(keras, kernel, kind)
    if kind == "Dense":
        y = ops.matmul(x, kernel)
    elif kind == "Conv2D":
        y = ops.conv(x, kernel, strides=layer.strides, padding=layer.padding, data_format=layer.data_format,
                     dilation_rate=layer.dilation_rate)
    else:
        y = ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding,
                               data_format=layer.data_format, dilation_rate=layer.dilation_rate)
    if layer.use_bias:
        y = y + layer.bias
    return layer.activation(y) if activation and layer.activation is not None else y


#: LOGISTIC's int8 output in TFLite: scale 1/256, zero point -128, i.e. [0, 255/256] (not calibrated)
SIGMOID_RANGE = (0.0, 255.0 / 256.0)


def _act_name(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "")


def _forward(keras, layer, args: tuple, kwargs: dict, p: Plan, q: Callable, round_weights: bool = True):
    """``layer`` called as the int8 TFLite graph computes it: ``q(name, tensor, fixed_range)`` is applied at
    every tensor the converter keeps in int8 (fake quantization when simulating, a recording when probing).

    The converter splits some layers into several int8 ops, each with its own range: Rescaling into MUL and
    ADD, an unfolded BatchNormalization into MUL and ADD, swish into LOGISTIC (a fixed [0, 1) range) and MUL,
    a sigmoid into LOGISTIC. ``round_weights`` False: the weights as they are (to see what activations alone do)."""
    ops = keras.ops
    kind = layer.__class__.__name__
    if kind in ("Functional", "Model", "Sequential"):
        return layer(*args, **kwargs)
    quantized = layer.name in p.quantize
    x = args[0] if args else None
    if layer.name in p.weights:
        act = _act_name(layer)
        if quantized and act not in ("linear", "relu", "relu6", ""):  # not fused: FC/CONV, then the activation
            y = q(f"{layer.name}/pre", _rounded(keras, layer, p.fold.get(layer.name), False, round_weights)(x))
            if act == "sigmoid":  # LOGISTIC (e.g. squeeze-excitation's gate): its fixed output range
                return q(layer.name, ops.sigmoid(y), SIGMOID_RANGE)
            if act in ("swish", "silu"):  # LOGISTIC then MUL
                y = y * q(f"{layer.name}/sigmoid", ops.sigmoid(y), SIGMOID_RANGE)
            else:
                y = layer.activation(y)
        else:
            y = _rounded(keras, layer, p.fold.get(layer.name), True, round_weights)(x)
    elif kind == "Rescaling" and quantized:
        y = q(f"{layer.name}/mul", ops.cast(x, "float32") * layer.scale)
        y = y + layer.offset if layer.offset else y
    elif kind == "BatchNormalization" and quantized and layer.name not in p.folded:  # MUL then ADD, frozen
        s = _bn_scale(keras, layer)
        beta = layer.beta if layer.center else ops.zeros_like(layer.moving_mean)
        y = q(f"{layer.name}/mul", x * s)
        y = y + (beta - layer.moving_mean * s)
    elif kind == "Activation" and quantized and _act_name(layer) in ("swish", "silu"):
        y = x * q(f"{layer.name}/sigmoid", ops.sigmoid(x), SIGMOID_RANGE)
    elif kind == "Activation" and quantized and _act_name(layer) == "sigmoid":
        return q(layer.name, ops.sigmoid(x), SIGMOID_RANGE)
    else:
        if kind == "BatchNormalization":
            kwargs = {**kwargs, "training": False}  # frozen: folded into the conv before it
        y = layer(*args, **kwargs)
    if not quantized:
        return y
    if kind == "Softmax" or _act_name(layer) == "softmax":
        # SOFTMAX's int8 output (steps of 1/256) is left out: it moves a top-1 only within 1/256 of a tie, and
        # rounding small probabilities to 0 turns the distillation's log terms into noise
        return y
    return q(layer.name, y)


def _rounded(keras, layer, bn, activation: bool = True, round_weights: bool = True):
    """A layer computing ``layer`` with its weights rounded at every call (read then, not when the graph is
    built: a weight used outside a layer's call would be baked into the graph as a constant)."""

    class Rounded(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__(name=f"{layer.name}_int8_weights")
            self.inner, self.bn = layer, bn

        def call(self, x):
            return _conv_call(keras, self.inner, x, self.bn, activation=activation, round_weights=round_weights)

        def compute_output_shape(self, shape):
            return self.inner.compute_output_shape(shape)

    return Rounded()


class ActivationRanges:
    """The (min, max) each quantized tensor is rounded on: variables the simulated graph reads, set by
    :meth:`assign` from :func:`measure_ranges`."""

    def __init__(self, keras) -> None:
        self.keras = keras
        self.vars: dict[str, tuple] = {}

    def get(self, name: str) -> tuple:
        if name not in self.vars:
            self.vars[name] = (self.keras.Variable(0.0, trainable=False, name="qmin", dtype="float32"),
                               self.keras.Variable(1.0, trainable=False, name="qmax", dtype="float32"))
        return self.vars[name]

    def assign(self, ranges: dict[str, tuple[float, float]]) -> None:
        for name, (lo, hi) in ranges.items():
            if name in self.vars:
                self.vars[name][0].assign(float(lo))
                self.vars[name][1].assign(float(hi))

    def to_dict(self) -> dict[str, list[float]]:
        return {n: [float(np.asarray(lo)), float(np.asarray(hi))] for n, (lo, hi) in self.vars.items()}


def _reserve_names(keras, model) -> None:
    """Count every name ``model`` uses, so that the ops a clone creates (``x * scale``) are not auto-named like
    one of its own: a model read from a file has names the running Keras did not count, and a model whose two
    operations share a name cannot be built (MobileNetV3's hard-sigmoid ops are named ``multiply``, ``add``)."""
    for op in _layers(model, operations=True):
        base, _, index = op.name.rpartition("_")
        base, n = (base, int(index)) if base and index.isdigit() else (op.name, 0)
        while keras.backend.get_uid(base) <= n:
            pass


def simulated(model, p: Plan, ranges: ActivationRanges, tensors: Collection[str] | None = None,
              round_weights: bool = True):
    """A model that shares ``model``'s layers (training it trains them) and computes as int8 TFLite will.

    To see where the int8 error comes from, ``tensors`` rounds only the activations named (as
    :func:`measure_ranges` and the fixed-range ``…/sigmoid`` outputs are named; None: all of them) and
    ``round_weights`` False keeps the weights as they are."""
    keras = require("keras", "quantization-aware fine-tuning")
    _reserve_names(keras, model)

    def q(name: str, y, fixed: tuple[float, float] | None = None):
        if tensors is not None and name not in tensors:
            return y
        lo, hi = fixed if fixed is not None else ranges.get(name)
        return keras.quantizers.fake_quant_with_min_max_vars(y, lo, hi, num_bits=8)

    def call(layer, *args, **kwargs):
        return _forward(keras, layer, args, kwargs, p, q, round_weights)

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call, recursive=True)


class _Tap:
    """What the probe's taps record, per tensor name: min/max (first pass), then histograms for a rule."""

    def __init__(self, logits: set[str]) -> None:
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}
        self.logits = logits  #: the tensors whose rows are read too (Plan.logits)
        self.rows: dict[str, RowPeak] = {}
        self.hists: dict | None = None

    def __call__(self, name: str, value: np.ndarray) -> None:
        if self.hists is not None:
            self.hists[name].add(value)
            return
        self.lo[name] = min(self.lo.get(name, math.inf), float(value.min()))
        self.hi[name] = max(self.hi.get(name, -math.inf), float(value.max()))
        if name in self.logits:
            self.rows.setdefault(name, RowPeak()).add(value)


def probe(model, p: Plan):
    """The float model with a tap at every tensor the simulation rounds on a measured range: run eagerly, it
    records their values (through nested models too) into the returned :class:`_Tap`."""
    keras = require("keras", "quantization-aware fine-tuning")
    tf = require("tensorflow", "quantization-aware fine-tuning")
    _reserve_names(keras, model)
    tap = _Tap(p.logits)
    taps: list = []

    class Tap(keras.layers.Layer):
        def __init__(self, key: str) -> None:
            super().__init__(name=f"qat_tap_{len(taps)}")
            self.key = key

        def call(self, x):
            if tf.executing_eagerly():  # not while Keras traces the graph
                tap(self.key, np.asarray(x))
            return x

    def q(name: str, y, fixed: tuple[float, float] | None = None):
        if fixed is not None:
            return y
        layer = Tap(name)
        taps.append(layer)
        return layer(y)

    def call(layer, *args, **kwargs):
        return _forward(keras, layer, args, kwargs, p, q)

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call, recursive=True)
    return clone, tap


def measure_ranges(probed, images: np.ndarray, rule: str, p: Plan, batch: int = 32) -> dict[str, tuple[float, float]]:
    """Each tapped tensor's range over ``images`` by ``rule`` (min/max in one pass; the other rules from exact
    histograms over that range, a second pass). ``probed``: :func:`probe`'s (model, tap)."""
    from edgeport.export.int8.ranges import Histogram, clip_range

    model, tap = probed
    tap.lo, tap.hi, tap.rows, tap.hists = {}, {}, {}, None

    def run() -> None:
        for i in range(0, len(images), batch):
            model(images[i:i + batch].astype(np.float32), training=False)

    run()
    if rule == "minmax":
        out = {n: (min(tap.lo[n], 0.0), max(tap.hi[n], 0.0)) for n in tap.lo}
    else:
        tap.hists = {n: Histogram(tap.lo[n], tap.hi[n]) for n in tap.lo}
        run()
        out = {n: clip_range(h, rule) for n, h in tap.hists.items()}
        tap.hists = None
    for name in p.logits & out.keys():
        out[name] = tap.rows.get(name, RowPeak()).range(*out[name])
    for add, others in p.widen.items():  # as the converter sets them (Plan.widen)
        for name in others:
            if add in out and name in out:
                out[name] = (min(out[name][0], out[add][0]), max(out[name][1], out[add][1]))
    return out


# --------------------------------------------------------------------------- fine-tuning


def _train_dataset(samples: list, classes: tuple[str, ...], contract, settings: QATSettings):
    """The run's train split with the run's own augmentation (edgeport.build.inputs), shuffled, seeded."""
    from edgeport.build.inputs import TrainingData, augmenter, image_dataset

    labels = np.array([s.label for s in samples], np.int64)
    data = TrainingData(classes, {"train": ([s.path for s in samples], labels)}, {}, resize=contract.resize)
    return image_dataset(data, "train", contract.height, settings.batch_size, shuffle=True, seed=settings.seed,
                         augment=augmenter(settings.seed), cache_bytes=1 << 30)


def _state(path: Path) -> dict | None:
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("epoch"), int) else None


def fine_tune(original, student, train_samples: list, classes: tuple[str, ...], contract,
              calibration: np.ndarray, settings: QATSettings, checkpoint_dir: Path | None = None,
              resume: bool = False, progress: bool | str = True, fingerprint: str = "") -> QATResult:
    """Fine-tune ``student`` (a float copy of ``original``, modified in place) under simulated int8, distilling
    ``original``; the calibration images set the activation ranges. Returns the fine-tuned ``student``.

    ``checkpoint_dir``: where each epoch's weights and state go (written whole, then renamed);
    ``resume``: continue from the last epoch found there when its ``fingerprint`` (the model and the settings)
    is this run's."""
    keras = require("keras", "quantization-aware fine-tuning")
    tf = require("tensorflow", "quantization-aware fine-tuning")
    if not train_samples:
        raise ModelError("expected training images for the QAT fine-tune, received none: the run's data_split.csv "
                         "has no train split")
    t0 = time.perf_counter()
    p = plan(student)
    student.trainable = True
    for layer in _layers(student):  # the weights train; BatchNormalization stays frozen (folded)
        kind = layer.__class__.__name__
        layer.trainable = kind in CONV_LIKE or kind in ("Functional", "Model", "Sequential")
    ranges = ActivationRanges(keras)
    probed = probe(student, p)
    qat = simulated(student, p, ranges)
    done, history = 0, []
    if resume and checkpoint_dir is not None:
        state = _state(checkpoint_dir)
        if state and state.get("fingerprint") == fingerprint and (checkpoint_dir / WEIGHTS_FILE).is_file():
            student.load_weights(str(checkpoint_dir / WEIGHTS_FILE))
            done, history = int(state["epoch"]), list(state.get("history", []))
            log.info("QAT: resuming after epoch %d of %d (%s)", done, settings.epochs, checkpoint_dir)
        elif state:
            log.warning("QAT: the checkpoint in %s is of another model or other settings; starting over",
                        checkpoint_dir)
    ds = _train_dataset(train_samples, classes, contract, settings)
    steps = max(1, math.ceil(len(train_samples) / settings.batch_size))
    optimizer = keras.optimizers.Adam(settings.lr)
    kl = keras.losses.KLDivergence()
    temperature = settings.temperature

    def soften(probs):
        logp = keras.ops.log(keras.ops.clip(probs, 1e-7, 1.0)) / temperature
        return keras.ops.softmax(logp, axis=-1)
    # the conv-like layers compute inside the simulated graph without being its nodes: their weights are listed here
    variables = [w for layer in _layers(student) if layer.__class__.__name__ in CONV_LIKE for w in layer.trainable_weights]

    @tf.function(reduce_retracing=True)
    def step(x):
        probs = original(x, training=False)
        with tf.GradientTape() as tape:
            out = qat(x, training=False)
            loss = kl(soften(probs), soften(out)) * (temperature ** 2)
            if settings.margin:
                loss = loss + margin_hinge(keras, probs, out, settings.margin)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    ranges.assign(measure_ranges(probed, calibration, settings.rule, p))
    if not history:  # where the fine-tune starts from: post-training int8 as simulated
        start = _agreement(original, qat, calibration)
        history.append({"epoch": 0, "loss": None, "calibration_agreement_pct": round(start, 3), "seconds": 0.0})
        log.info("QAT: before the fine-tune, simulated int8 agrees with Keras on %.1f %% of the calibration images",
                 start)
    with Progress((settings.epochs - done) * steps, "QAT fine-tune (simulated int8)", enabled=progress) as bar:
        for epoch in range(done, settings.epochs):
            e0, losses = time.perf_counter(), []
            for x, _ in ds:
                losses.append(float(step(x)))
                bar.update(note=f"epoch {epoch + 1}/{settings.epochs} loss {np.mean(losses):.4f}")
            ranges.assign(measure_ranges(probed, calibration, settings.rule, p))
            agree = _agreement(original, qat, calibration)
            history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 6),
                            "calibration_agreement_pct": round(agree, 3),
                            "seconds": round(time.perf_counter() - e0, 1)})
            log.info("QAT epoch %d/%d: distillation loss %.4f, simulated int8 agrees with Keras on %.1f %% of the "
                     "calibration images (%.0f s)", epoch + 1, settings.epochs, history[-1]["loss"], agree,
                     history[-1]["seconds"])
            if checkpoint_dir is not None:
                _checkpoint(student, checkpoint_dir, epoch + 1, history, fingerprint)
    return QATResult(student, settings.epochs, len(train_samples), time.perf_counter() - t0, history, done, settings,
                     quantized_tensors=len(p.quantize), quantized_weights=len(p.weights))


def margin_hinge(keras, teacher, student, margin: float):
    """``mean(max(0, margin - (log q[t] - max_{j != t} log q[j])))``: ``q`` the student's probabilities, ``t``
    the teacher's top-1 class. Zero once the student gives the teacher's answer by ``margin`` (in log
    probability); a student giving another answer pays its deficit plus the margin."""
    ops = keras.ops
    top1 = ops.one_hot(ops.argmax(teacher, axis=-1), ops.shape(teacher)[-1])
    logq = ops.log(ops.clip(student, 1e-7, 1.0))
    lead = ops.sum(top1 * logq, axis=-1) - ops.max(logq - 1e9 * top1, axis=-1)
    return ops.mean(ops.relu(margin - lead))


def _agreement(original, qat, images: np.ndarray, batch: int = 64) -> float:
    def top1(model) -> np.ndarray:
        return np.concatenate([np.asarray(model(images[i:i + batch].astype(np.float32), training=False)).argmax(1)
                               for i in range(0, len(images), batch)])
    return agreement_pct(top1(qat), top1(original)) or 0.0


def _checkpoint(student, directory: Path, epoch: int, history: list, fingerprint: str) -> None:
    """The weights, then the state naming them: a kill between the two leaves the previous epoch's state."""
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        student.save_weights(str(tmp))
    atomic_write_text(directory / STATE_FILE, json.dumps({"epoch": epoch, "history": history,
                                                          "fingerprint": fingerprint}))
