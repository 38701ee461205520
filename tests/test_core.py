"""Registry, config merging, metadata readers and the synthetic set."""

from __future__ import annotations

import dataclasses
import json
import os

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
    with pytest.raises(ConfigError, match="unknown widget 'c'; expected one of: a, b$"):
        reg.get("c")
    with pytest.raises(ConfigError, match="twice"):
        reg.register("a")(3)
    reg.register("mobile_net")(4)
    assert reg.get("mobile-net") == reg.get("MOBILE_NET") == 4 and "mobile-net" in reg
    assert reg.in_order() == ("b", "a", "mobile_net")
    with pytest.raises(ConfigError, match="did you mean 'mobile_net'"):
        reg.get("mobilenet")


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


#: a child process in which onnx, onnxruntime and protobuf cannot be imported (as on a device with a TFLite engine)
_WITHOUT_ONNX = r"""
import json, sys


class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("onnx", "onnxruntime", "google", "tensorflow", "tf2onnx"):
            raise ImportError(f"{name} is hidden by the test")
        return None


sys.meta_path.insert(0, Hide())
try:
    import onnx  # noqa: F401 - only whether it imports
    sys.exit("the blocker does not hide onnx")
except ImportError:
    pass
from edgeport.metadata import read_model_info, read_onnx_metadata

meta = read_onnx_metadata(sys.argv[1])
info = read_model_info(sys.argv[1])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("onnx", "onnxruntime", "google"))
print(json.dumps({"other": meta["other"], "info": info.to_json(), "loaded": loaded}))
"""


def test_onnx_metadata_read_without_onnx_package(tmp_path):
    """The pure-Python ONNX metadata reader, in a process where onnx (and protobuf) cannot be imported."""
    import subprocess
    import sys
    from pathlib import Path

    from allowed_skips import skip_without

    skip_without("onnx", why="writes the test's ONNX file")
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    info = ModelInfo(labels=("cat", "dog"), input=InputContract(8, 8), scheme="onnx")
    helper.set_model_props(model, {"edgeport": info.to_json(), "other": "x"})
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert read_onnx_metadata(path)["other"] == "x"  # in this process, onnx installed
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", _WITHOUT_ONNX, str(path)], capture_output=True, text=True,
                         timeout=120, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": str(root)})
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {"other": "x", "info": info.to_json(), "loaded": []}


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


@pytest.mark.parametrize("text, key, expected", [
    ("epochs: ten\n", "epochs", "an integer"),
    ("epochs: 2.5\n", "epochs", "an integer"),
    ("epochs: true\n", "epochs", "an integer"),  # a bool is not an int here
    ("data: [a, b]\n", "data", "text"),
    ("sizes: [1, x]\n", "sizes", "a list of integers"),
    ("sizes: {a: 1}\n", "sizes", "a list of integers"),
])
def test_config_values_checked_against_type_hints(tmp_path, text, key, expected):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=rf"expected '{key}' in .*c.yaml to be {expected}, received "):
        load_config(_Cfg, f, {})


@dataclasses.dataclass(frozen=True)
class _Typed:
    lr: float = 0.1
    ft: float | None = None
    on: bool = False
    names: tuple[str, ...] = ()


def test_config_lossless_conversions():
    # YAML 1.1 reads 1e-3 (no dot) as text; an int is a float; "a,b" and a lone value are lists
    assert from_dict(_Typed, {"lr": "1e-3", "ft": 2, "names": "int8, onnx"}) == _Typed(0.001, 2.0, False, ("int8", "onnx"))
    assert from_dict(_Cfg, {"sizes": 3}).sizes == (3,) and from_dict(_Cfg, {"sizes": "1,2"}).sizes == (1, 2)
    assert from_dict(_Typed, {"ft": None}).ft is None
    with pytest.raises(ConfigError, match="expected 'on' in config to be true or false, received 'yes please'"):
        from_dict(_Typed, {"on": "yes please"})
    with pytest.raises(ConfigError, match="expected 'ft' in config to be a number or null, received 'fast'"):
        from_dict(_Typed, {"ft": "fast"})


@pytest.mark.parametrize("name, text, match", [
    ("bad.yaml", "epochs: [1\n", r"expected valid YAML in .*bad.yaml, received a syntax error at line 2"),
    ("bad.yaml", "a: b: c\n", r"expected valid YAML in .*bad.yaml, received a syntax error at line 1"),
    ("bad.json", "{epochs: 1", r"expected valid JSON in .*bad.json, received a syntax error"),
    ("list.yaml", "- 1\n- 2\n", r"expected a mapping of keys to values in .*list.yaml, received list"),
    ("bin.yaml", b"\xff\xfe\x00\x01", r"expected a UTF-8 YAML/JSON config file in .*bin.yaml"),
])
def test_malformed_config_files_are_config_errors(tmp_path, name, text, match):
    f = tmp_path / name
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=match):
        load_config(_Cfg, f, {})


def test_metadata_readers_are_bounds_checked():
    """Damaged headers give ModelError (not struct.error/IndexError); the fuzz test covers real files."""
    import struct

    tfl = bytearray(64)
    tfl[4:8] = b"TFL3"
    struct.pack_into("<I", tfl, 0, 60_000)  # root table far outside the file
    with pytest.raises(ModelError, match="truncated or damaged"):
        read_tflite_metadata(bytes(tfl))
    struct.pack_into("<I", tfl, 0, 16)
    struct.pack_into("<i", tfl, 16, -40_000)  # vtable outside the file
    with pytest.raises(ModelError, match="truncated or damaged"):
        read_tflite_metadata(bytes(tfl))
    with pytest.raises(ModelError, match="field 14 at byte 0 needs 100 bytes, 3 are left"):
        read_onnx_metadata(bytes([0x72, 100, 1, 2, 3]))  # metadata_props cut short
    with pytest.raises(ModelError, match="longer than 10 bytes"):
        read_onnx_metadata(b"\x08" + b"\xff" * 12)
    with pytest.raises(ModelError, match="wire type 7"):
        read_onnx_metadata(b"\x0f")
    assert read_onnx_metadata(b"") == {}


def test_read_model_info_of_an_unreadable_path(tmp_path):
    (tmp_path / "m.tflite").mkdir()
    with pytest.raises(ModelError, match="expected a readable model file"):
        read_model_info(tmp_path / "m.tflite")
