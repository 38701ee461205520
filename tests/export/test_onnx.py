"""The ONNX artifacts of the tiny run, in onnxruntime."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgeport.export.onnx import embed_metadata, graph_summary
from edgeport.export.verify import open_engine, predict
from edgeport.metadata import read_model_info, read_onnx_metadata

ONNX = {"onnx": "model.onnx", "onnx-fp16": "model_fp16.onnx", "onnx-int8": "model_int8.onnx"}


@pytest.mark.parametrize("scheme", list(ONNX))
def test_float32_io_dynamic_batch(tiny_export_dir, scheme):
    path = tiny_export_dir / ONNX[scheme]
    dims = graph_summary(path)["dims"]
    assert dims["image"] == ["batch", 32, 32, 3] and [d[0] for d in dims.values()] == ["batch", "batch"]
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with open_engine(path) as engine:
        assert engine.input.dtype == engine.output.dtype == np.float32
        probs = predict(engine, images, read_model_info(path).input, progress=False)
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.02)


def test_fp16_has_half_internals(tiny_export_dir):
    m = onnx.load(str(tiny_export_dir / "model_fp16.onnx"))
    kinds = {onnx.TensorProto.DataType.Name(t.data_type) for t in m.graph.initializer}
    assert "FLOAT16" in kinds and "FLOAT" not in kinds
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_int8_is_static_qdq(tiny_export_dir):
    m = onnx.load(str(tiny_export_dir / "model_int8.onnx"))
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in m.graph.initializer)


def test_opset(tiny_export_dir):
    m = onnx.load(str(tiny_export_dir / "model.onnx"))
    assert {o.domain: o.version for o in m.opset_import}[""] == 17


def test_embed_metadata_replaces_keys(tiny_export_dir, tmp_path):
    p = tmp_path / "m.onnx"
    p.write_bytes((tiny_export_dir / "model.onnx").read_bytes())
    embed_metadata(p, {"edgeport": "x", "other": "1"})
    embed_metadata(p, {"edgeport": "y"})
    meta = read_onnx_metadata(p)
    assert meta["edgeport"] == "y" and meta["other"] == "1"

