"""The deployable model computes in float32, whatever policy it was trained under.

Under ``--mixed-precision`` (the GPU default) every layer of the trained
model has the ``mixed_float16`` dtype policy: float32 variables, float16
compute. Saved as is, the converters see a float16 graph (TFLite cannot
translate its float16 Conv2D/Mul, the float32 ONNX differs from Keras by
~1e-2). :func:`as_float32` rebuilds the same architecture with every
layer's policy float32 (nested functional sub-models, i.e. the backbone and
the head, included) and copies the weights, so a mixed-precision model
exports exactly as a float32-trained one. The build stage saves that model;
the export stage applies it again on load, so runs saved before this
existed export too.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

from edgeport._lazy import require
from edgeport.errors import ModelError

log = logging.getLogger(__name__)

#: the one dtype policy a deployable model has
DEPLOY_POLICY = "float32"
#: floating policies that :func:`as_float32` replaces (quantized Keras policies are left alone)
_FLOAT_POLICIES = ("float16", "bfloat16", "mixed_float16", "mixed_bfloat16", "float64")


def layer_policies(model: Any) -> dict[str, int]:
    """How many layers (nested models' included) have each dtype policy, e.g. {'mixed_float16': 41}."""
    counts: dict[str, int] = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):  # noqa: SLF001 - Keras' own walk
        name = layer.dtype_policy.name
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def is_float32(model: Any) -> bool:
    """True when every layer computes in float32."""
    return not (set(layer_policies(model)) & set(_FLOAT_POLICIES) - {DEPLOY_POLICY})


def _policy_is_float(value: Any) -> bool:
    if isinstance(value, str):
        return value in _FLOAT_POLICIES
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
        return (value.get("config") or {}).get("name") in _FLOAT_POLICIES
    return False


def _force_float32(node: Any) -> Any:
    """A serialized Keras object with every floating ``dtype`` policy replaced by float32."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "dtype" and _policy_is_float(value):
                out[key] = DEPLOY_POLICY
            else:
                out[key] = _force_float32(value)
        return out
    if isinstance(node, list):
        return [_force_float32(v) for v in node]
    return node


@contextlib.contextmanager
def global_policy(name: str) -> Iterator[None]:
    """Set Keras' global dtype policy for a while (layers built without an explicit dtype use it)."""
    keras = require("keras", "setting the dtype policy")
    before = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def float32_twin(model: Any) -> Any:
    """The architecture of ``model`` rebuilt with every layer's dtype policy float32; its own fresh weights."""
    keras = require("keras", "rebuilding the model in float32")
    config = _force_float32(keras.saving.serialize_keras_object(model))
    with global_policy(DEPLOY_POLICY):
        try:
            return keras.saving.deserialize_keras_object(config)
        except Exception as exc:  # Keras raises many types for a config it cannot rebuild (re-raised below)
            raise ModelError(
                f"expected to rebuild the model (layer policies {layer_policies(model)}) with float32 layers, but "
                f"Keras could not ({type(exc).__name__}: {exc}); re-run `edgeport build` with --mixed-precision off"
            ) from exc


def set_twin_weights(twin: Any, values: list[Any], name: str) -> None:
    """Give ``twin`` (from :func:`float32_twin`) the weights ``values`` of the model it was rebuilt from."""
    keras = require("keras", "rebuilding the model in float32")
    if [tuple(v.shape) for v in values] != [tuple(w.shape) for w in twin.weights]:
        raise ModelError(
            f"expected the float32 rebuild of {name} to have the same {len(values)} weights, "
            f"received {len(twin.weights)}; re-run `edgeport build` with --mixed-precision off"
        )
    for dst, value in zip(twin.weights, values):
        dst.assign(keras.ops.cast(value, dst.dtype))
    for layer in twin._flatten_layers(include_self=False, recursive=True):  # noqa: SLF001 - Keras has no public walk over nested layers
        if hasattr(layer, "finalize_state") and getattr(layer, "built", False):
            layer.finalize_state()  # e.g. Normalization's mean/variance tensors from its variables


def as_float32(model: Any) -> Any:
    """``model`` itself when it is float32 already, else a float32 twin holding the same weights.

    The twin is built from the model's own serialized config with every
    layer's dtype policy set to float32 (the input stays float32 0..255
    pixels, the softmax float32), then gets the model's weights (variables are
    float32 under mixed precision, so nothing is rounded). Layers whose
    inference constants derive from weights (Normalization) are refreshed.
    """
    policies = layer_policies(model)
    if is_float32(model):
        return model
    twin = float32_twin(model)
    set_twin_weights(twin, [w.value for w in model.weights], model.name)
    log.info("model %s: layer policies %s rebuilt as float32 for export", model.name, policies)
    return twin
