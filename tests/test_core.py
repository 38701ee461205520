"""Registry, config merging, metadata readers and the synthetic set."""

from __future__ import annotations

import dataclasses
import json

import pytest

from edgeport.config import from_dict, load_config, to_dict
from edgeport.contract import InputContract, ModelInfo
from edgeport.errors import ConfigError, ModelError
from edgeport.metadata import read_model_info, read_onnx_metadata, read_tflite_metadata
from edgeport.registry import Registry


def test_registry_lists_known_names_on_unknown():
    reg: Registry = Registry("widget")
    reg.register("b")(1)
    reg.register("a")(2)
    assert reg.names() == ["a", "b"] and reg.get("a") == 2 and "b" in reg
    with pytest.raises(ConfigError, match="unknown widget 'c'; expected one of: a, b"):
        reg.get("c")
    with pytest.raises(ConfigError, match="twice"):
        reg.register("a")(3)


@dataclasses.dataclass(frozen=True)
class _Cfg:
    data: str = ""
    epochs: int = 10
    sizes: tuple[int, ...] = (1,)


def test_config_file_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 3\nsizes: [2, 4]\ndata: d\n")
    cfg = load_config(_Cfg, f, {"epochs": 5, "data": None})
    assert cfg == _Cfg(data="d", epochs=5, sizes=(2, 4))
    assert to_dict(cfg)["sizes"] == [2, 4]
    with pytest.raises(ConfigError, match="unknown key.*epoch.*expected keys: data, epochs, sizes"):
        from_dict(_Cfg, {"epoch": 1})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(_Cfg, tmp_path / "missing.yaml", {})


def test_model_info_round_trip_and_bad_json():
    info = ModelInfo(labels=("a", "b"), input=InputContract(96, 96), scheme="int8", backbone="tiny")
    back = ModelInfo.from_json(info.to_json())
    assert back == info
    with pytest.raises(ModelError, match="expected edgeport metadata"):
        ModelInfo.from_json("{}")


def test_onnx_metadata_read_without_onnx_package(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    info = ModelInfo(labels=("cat", "dog"), input=InputContract(8, 8), scheme="onnx")
    helper.set_model_props(model, {"edgeport": info.to_json(), "other": "x"})
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert read_onnx_metadata(path)["other"] == "x"
    assert read_model_info(path) == info


def test_tflite_reader_rejects_non_tflite(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"\x00" * 16)
    with pytest.raises(ModelError, match="TFL3"):
        read_tflite_metadata(p)
    with pytest.raises(ModelError, match=r"expected a \.tflite or \.onnx"):
        read_model_info(tmp_path / "x.pb")


def test_synthetic_set_is_deterministic(tmp_path):
    from edgeport.data import scan
    from edgeport.synthetic import CLASSES, make_dataset

    a = make_dataset(tmp_path / "a", per_class=3, size=32, seed=3)
    b = make_dataset(tmp_path / "b", per_class=3, size=32, seed=3)
    ds = scan(a)
    assert ds.classes == CLASSES and len(ds.samples) == 15
    assert (a / "star" / "star_0002.jpg").read_bytes() == (b / "star" / "star_0002.jpg").read_bytes()


def test_synthetic_style_reaches_the_drawing():
    import numpy as np

    from edgeport.synthetic import draw

    plain = draw("square", 64, np.random.default_rng(1), noise=0.0, blur=0.0)
    hollow = draw("square", 64, np.random.default_rng(1), noise=0.0, blur=0.0, outline=1.0)
    assert plain.shape == hollow.shape == (64, 64, 3) and plain.dtype == np.uint8
    # same background, colour, size and place: a hollow square changes fewer pixels than a filled one
    background = draw("square", 64, np.random.default_rng(1), noise=0.0, blur=0.0, radius=(0.0, 0.0))
    changed = [int((np.abs(img.astype(int) - background).sum(axis=2) > 30).sum()) for img in (plain, hollow)]
    assert changed[0] > changed[1] > 0
    with pytest.raises(TypeError):
        draw("square", 64, np.random.default_rng(1), unknown=1)


def test_cli_help_lists_stages(capsys):
    from edgeport.cli import main

    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_info_json_is_stable():
    info = ModelInfo(labels=("a",), input=InputContract(4, 4), scheme="fp32")
    assert json.loads(info.to_json())["input"]["resize"] == "area"
