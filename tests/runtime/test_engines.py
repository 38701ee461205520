"""Every engine x artifact present here; engine selection; the numpy-2 tflite-runtime message."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from allowed_skips import skip_without

from edgeport.errors import ConfigError, MissingDependencyError, ModelError
from edgeport.runtime.engines import (
    ENGINES,
    TensorInfo,
    available_engines,
    create_engine,
    engines_for,
)
from edgeport.runtime.engines.onnxruntime import provider_options, select_providers
from edgeport.runtime.engines.tflite_runtime import tflite_runtime_problem
from edgeport.schemes import ALL_SCHEMES, get_scheme

CASES = [
    (get_scheme(name).file, engine)
    for name in ALL_SCHEMES
    for engine in (("litert", "tflite-runtime") if get_scheme(name).format == "tflite" else ("onnxruntime",))
]


#: the module each engine imports (what a job may leave out: tests/allowed_skips.py)
MODULE = {"litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime", "onnxruntime": "onnxruntime",
          "tensorflow": "tensorflow"}


def _open_or_skip(engine: str, path, **kw):
    assert path.is_file(), f"{path.name} is not in the fixture export (tests/tiny.py asserts every scheme is ok)"
    if not ENGINES.get(engine).available():
        skip_without(MODULE[engine], why=f"engine {engine}")
        pytest.fail(f"engine {engine} is installed but not usable: {ENGINES.get(engine).unavailable_reason()}")
    return create_engine(engine, path, **kw)


@pytest.mark.parametrize("file,engine", CASES, ids=[f"{e}-{f}" for f, e in CASES])
def test_engine_runs_artifact(export_dir, file, engine):
    with _open_or_skip(engine, export_dir / file, threads=1) as eng:
        assert eng.name == engine
        assert eng.input.shape[0] == 1 and len(eng.input.shape) == 4
        assert eng.input.shape[3] == 3  # NHWC, also for ONNX (tf2onnx keeps it)
        if eng.input.quantized:
            assert eng.input.dtype in (np.uint8, np.int8, np.int16)
        x = np.full(eng.input.shape, 100, dtype=eng.input.dtype)
        y = eng.invoke(x)
        assert y.shape[0] == 1 and y.dtype == eng.output.dtype
        assert eng.version()
        with pytest.raises(ModelError, match="expected an input tensor"):
            eng.invoke(np.zeros((1, 7, 7, 3), np.float64))
    assert eng.closed
    with pytest.raises(ModelError, match="is closed"):
        eng.invoke(x)


def test_engines_for_prefers_litert_and_never_tensorflow(export_dir):
    assert set(engines_for("m.tflite", only_available=False)) == {"litert", "tflite-runtime"}
    assert engines_for("m.tflite", only_available=False)[0] == "litert"
    assert engines_for("m.onnx", only_available=False) == ["onnxruntime"]
    assert "tensorflow" not in engines_for("m.tflite", only_available=False)
    assert set(available_engines()) <= set(ENGINES.names())


def test_unknown_engine_lists_names(export_dir):
    with pytest.raises(ConfigError, match="litert, onnxruntime, tensorflow, tflite-runtime"):
        create_engine("tensorrt", export_dir / "model_fp32.tflite")


def test_engine_rejects_wrong_file_type(export_dir):
    skip_without("onnxruntime")
    with pytest.raises(ModelError, match="expected a .onnx file"):
        create_engine("onnxruntime", export_dir / "model_fp32.tflite")


def test_threads_must_be_positive(export_dir):
    name = (engines_for(export_dir / "model_fp32.tflite") or [None])[0]
    if name is None:
        pytest.skip("no TFLite engine here")
    with pytest.raises(ConfigError, match="--threads"):
        create_engine(name, export_dir / "model_fp32.tflite", threads=0)


def test_tflite_runtime_says_numpy2_and_fix(export_dir):
    skip_without("numpy>=2", why="under numpy<2 tflite-runtime works: the Pi job")
    with pytest.raises(MissingDependencyError) as err:
        create_engine("tflite-runtime", export_dir / "model_fp32.tflite")
    msg = str(err.value)
    assert f"numpy {np.__version__}" in msg and "numpy<2" in msg and "venv" in msg
    assert not ENGINES.get("tflite-runtime").available()


def test_tflite_runtime_has_no_problem_with_numpy1():
    skip_without("numpy<2", "tflite_runtime", why="the Pi job's numpy and engine")
    assert tflite_runtime_problem() is None


def test_onnx_provider_selection():
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert select_providers(None, avail) == avail
    assert select_providers(None, ["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert select_providers("cuda,cpu", avail) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="'tensorrt' is not available"):
        select_providers("tensorrt", ["CPUExecutionProvider"])


def test_tensorrt_options_cache_engines_next_to_the_model(tmp_path):
    opts = provider_options("TensorrtExecutionProvider", tmp_path / "model_fp16.onnx", trt_fp16=True)
    assert opts == {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(tmp_path / ".trt-cache"),
                    "trt_fp16_enable": True}
    assert provider_options("CPUExecutionProvider", tmp_path / "m.onnx") == {}


def test_onnxruntime_threads_and_providers(export_dir):
    with _open_or_skip("onnxruntime", export_dir / "model.onnx", threads=1, providers="cpu") as eng:
        assert eng.providers == ["CPUExecutionProvider"]


def test_tensorinfo_quantized_flag():
    assert TensorInfo("x", (1, 2), np.dtype(np.uint8), 0.5, 3).quantized
    assert not TensorInfo("x", (1, 2), np.dtype(np.float32)).quantized


_TF_ENGINE = r"""
import sys, numpy as np
from edgeport.runtime.engines import create_engine, ENGINES
if not ENGINES.get("tensorflow").available():
    print("SKIP"); sys.exit(0)
path = sys.argv[1]
with create_engine("litert", path) as a, create_engine("tensorflow", path, threads=1) as b:
    x = np.random.default_rng(0).uniform(0, 255, a.input.shape).astype(a.input.dtype)
    assert b.name == "tensorflow" and b.input == a.input
    np.testing.assert_allclose(a.invoke(x), b.invoke(x), atol=1e-4)
print("OK")
"""


def test_tensorflow_engine_only_by_name(export_dir):
    """Run in a subprocess so this test process stays TensorFlow-free."""
    skip_without("tensorflow", "ai_edge_litert")
    res = subprocess.run([sys.executable, "-c", _TF_ENGINE, str(export_dir / "model_fp32.tflite")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("OK")
