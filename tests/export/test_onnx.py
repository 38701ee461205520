"""The ONNX artifacts of the tiny run, in onnxruntime."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgeport.export.onnx import ONNXRunner, embed_metadata, tensor_info  # noqa: E402
from edgeport.metadata import read_onnx_metadata  # noqa: E402

ONNX = {"onnx": "model.onnx", "onnx-fp16": "model_fp16.onnx", "onnx-int8": "model_int8.onnx"}


@pytest.mark.parametrize("scheme", list(ONNX))
def test_float32_io_dynamic_batch(tiny_export_dir, scheme):
    path = tiny_export_dir / ONNX[scheme]
    inp, out = tensor_info(path)
    assert inp["dtype"] == out["dtype"] == "float32"
    assert inp["shape"][0] is None and inp["shape"][1:] == [32, 32, 3]
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with ONNXRunner(path) as runner:
        probs = runner.predict(images)
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


def test_batched_calibration_gives_the_same_int8_model(tiny_export_dir, tmp_path):
    """MinMax over batches of 8 = over single images: the quantized graphs must be identical."""
    from edgeport.export.onnx import quantize_int8

    calib = np.random.default_rng(2).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)  # 20: a short last batch
    one = quantize_int8(tiny_export_dir / "model.onnx", tmp_path / "one.onnx", calib, progress=False, batch=1)
    eight = quantize_int8(tiny_export_dir / "model.onnx", tmp_path / "eight.onnx", calib, progress=False, batch=8)
    a, b = onnx.load(str(one)), onnx.load(str(eight))
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    for ta, tb in zip(a.graph.initializer, b.graph.initializer):
        assert ta.name == tb.name
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(ta), onnx.numpy_helper.to_array(tb), err_msg=ta.name)
