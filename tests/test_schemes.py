"""The scheme catalogue: one table that export, runtime and benchmarks read."""

from __future__ import annotations

import pytest

from edgeport.errors import ConfigError
from edgeport.schemes import (
    ALL_SCHEMES,
    SCHEMES,
    get_scheme,
    parse_schemes,
    precision_label,
    precision_of,
    rank_of,
    scheme_from_filename,
)

# the export-directory file names that devices and older exports rely on
CONTRACT_FILES = {
    "fp32": "model_fp32.tflite", "fp16": "model_fp16.tflite", "dynamic": "model_dynamic.tflite",
    "int8": "model_int8.tflite", "int16x8": "model_int16x8.tflite", "onnx": "model.onnx",
    "onnx-fp16": "model_fp16.onnx", "onnx-int8": "model_int8.onnx",
}


def test_catalogue_holds_every_scheme_with_its_file_name():
    assert ALL_SCHEMES == tuple(CONTRACT_FILES)
    for name, file in CONTRACT_FILES.items():
        s = get_scheme(name)
        assert s.file == file and s.format == file.rsplit(".", 1)[1]
    assert {n for n in ALL_SCHEMES if get_scheme(n).calibrated} == {"int8", "int16x8", "onnx-int8"}
    assert {n for n in ALL_SCHEMES if get_scheme(n).reference} == {"fp32", "onnx"}
    assert "float activations" in get_scheme("dynamic").description
    assert len({get_scheme(n).rank for n in ALL_SCHEMES}) == len(ALL_SCHEMES)  # a strict preference


def test_unknown_names_list_the_known_and_suggest():
    with pytest.raises(ConfigError, match="unknown export scheme 'int4'; expected one of: dynamic, fp16"):
        get_scheme("int4")
    with pytest.raises(ConfigError, match="did you mean 'onnx-int8'"):
        get_scheme("onnx-int")
    assert get_scheme("onnx_int8").name == "onnx-int8"  # either spelling of - and _


def test_parse_schemes_orders_and_validates():
    assert parse_schemes("all") == parse_schemes(None) == ALL_SCHEMES
    assert parse_schemes("onnx-int8, fp32") == ("fp32", "onnx-int8")
    assert parse_schemes(["int8", "fp32"]) == ("fp32", "int8")
    with pytest.raises(ConfigError, match="unknown export scheme\\(s\\) 'int4'; expected a comma-separated list of: fp32"):
        parse_schemes("fp32,int4")


def test_dynamic_range_is_never_called_int8():
    for fmt in ("tflite", "onnx"):
        label = precision_label("dynamic", fmt)
        assert label.startswith("dynamic") and "float activations" in label
    assert precision_label("int8", "tflite") == "int8 (weights and activations)"
    assert precision_label("fp16", "tflite").startswith("float16 weights")
    assert precision_label("int16x8", "tflite").startswith("int16x8")
    assert precision_label("mystery", "tflite") == "mystery"
    assert precision_label("int8", "tflite", {"precision": "int8, 39 of 110 ops float"}) == "int8, 39 of 110 ops float"
    assert precision_label("onnx-int8", "onnx") == "int8 (weights and activations, QDQ)"
    assert precision_label("onnx", "onnx") == "float32"


def test_precision_of_understands_names_and_aliases():
    assert [precision_of(s) for s in ("onnx", "onnx-fp16", "onnx-int8", "float32", "int8", "float16")] == [
        "fp32", "fp16", "int8", "fp32", "int8", "fp16"]


@pytest.mark.parametrize("name, scheme", [
    ("model.onnx", "onnx"), ("model_fp16.tflite", "fp16"), ("model_int16x8.tflite", "int16x8"),
    ("model_dynamic.tflite", "dynamic"), ("resnet-int8.tflite", "int8"), ("net_float16.onnx", "onnx-fp16"),
    ("model_int8.onnx", "onnx-int8"), ("whatever.tflite", "whatever"),
])
def test_scheme_from_filename(name, scheme):
    assert scheme_from_filename(name) == scheme


def test_rank_prefers_int8_tflite_then_float_then_onnx():
    order = sorted(ALL_SCHEMES, key=lambda n: rank_of(n, get_scheme(n).format))
    assert order[:2] == ["int8", "fp32"] and order.index("onnx") > order.index("int16x8")
    assert rank_of("mystery", "tflite") > max(rank_of(n, get_scheme(n).format) for n in ALL_SCHEMES)
    assert len(SCHEMES) == len(ALL_SCHEMES)
