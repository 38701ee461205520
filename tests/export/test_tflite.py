"""The TFLite artifacts of the tiny run, in LiteRT (the engine devices use)."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgeport.export.tflite import check_integer, embed_metadata, graph_summary
from edgeport.export.verify import open_engine, predict
from edgeport.metadata import read_model_info, read_tflite_metadata

TFLITE = {"fp32": "model_fp32.tflite", "fp16": "model_fp16.tflite", "dynamic": "model_dynamic.tflite",
          "int8": "model_int8.tflite", "int16x8": "model_int16x8.tflite"}


@pytest.fixture(scope="module")
def manifest(tiny_export_dir):
    return {a["scheme"]: a for a in json.loads((tiny_export_dir / "manifest.json").read_text())["artifacts"]}


@pytest.mark.parametrize("scheme", list(TFLITE))
def test_each_scheme_loads_and_gives_probabilities(tiny_export_dir, manifest, scheme):
    path = tiny_export_dir / TFLITE[scheme]
    assert manifest[scheme]["status"] == "ok", manifest[scheme]["reason"]
    contract = read_model_info(path).input
    image = np.random.default_rng(0).integers(0, 256, (contract.height, contract.width, 3), dtype=np.uint8)
    with open_engine(path) as engine:
        assert engine.name == "litert" and manifest[scheme]["verification"]["engine"] == "litert"
        probs = predict(engine, image[None], contract, progress=False)
    assert probs.shape == (1, 5) and probs.dtype == np.float32
    assert probs.sum() == pytest.approx(1.0, abs=0.02)


def test_int8_takes_camera_pixels_as_they_are(tiny_export_dir, manifest):
    with open_engine(tiny_export_dir / "model_int8.tflite") as engine:
        inp, out = engine.input, engine.output
    assert inp.dtype == np.uint8 and inp.scale == pytest.approx(1.0) and inp.zero_point == 0
    assert out.dtype == np.uint8 and out.scale == pytest.approx(1 / 256)
    assert manifest["int8"]["input"] == inp.to_dict()


def test_graphs_match_their_scheme_names(tiny_export_dir):
    g = {s: graph_summary((tiny_export_dir / f).read_bytes()) for s, f in TFLITE.items()}
    assert g["fp32"]["weight_dtypes"].get("float16") is None and g["fp32"]["weight_dtypes"]["float32"]
    assert g["fp16"]["weight_dtypes"]["float16"] and "float32" not in g["fp16"]["weight_dtypes"]
    assert g["dynamic"]["weight_dtypes"].get("int8") and g["dynamic"]["float_ops"]  # float activations
    assert g["int8"]["float_ops"] == [] and g["int8"]["weight_dtypes"]["int8"]
    assert check_integer((tiny_export_dir / TFLITE["int16x8"]).read_bytes(), "int16x8")["float_ops"] == []


def test_int16x8_has_16_bit_activations(tiny_export_dir):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tiny_export_dir / "model_int16x8.tflite"))
    assert any(np.dtype(d["dtype"]) == np.int16 for d in it.get_tensor_details())


def test_embed_metadata_replaces_an_entry(tiny_export_dir, tmp_path):
    data = (tiny_export_dir / "model_fp32.tflite").read_bytes()
    twice = embed_metadata(embed_metadata(data, '{"a": 1}', "edgeport"), '{"a": 2}', "edgeport")
    meta = read_tflite_metadata(twice)
    assert meta["edgeport"] == b'{"a": 2}'
    assert "min_runtime_version" in meta  # the converter's own entries are kept
    p = tmp_path / "m.tflite"
    p.write_bytes(twice)
    with open_engine(p) as engine:
        probs = predict(engine, np.zeros((1, 32, 32, 3), np.uint8), read_model_info(tiny_export_dir / "model_fp32.tflite").input,
                        progress=False)
    assert probs.shape == (1, 5)


def test_one_calibration_gives_the_converters_int8_and_int16x8(tiny_run_dir, tmp_path):
    """calibrate() + quantize_calibrated() must equal a full TFLiteConverter run per scheme."""
    import keras
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.python import conversion_metadata_schema_py_generated as conversion
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from edgeport.export.tflite import calibrate, convert_saved_model, export_saved_model, quantize_calibrated

    model = keras.saving.load_model(str(tiny_run_dir / "model.keras"), compile=False)
    saved = export_saved_model(model, tmp_path / "saved_model")
    size = int(model.inputs[0].shape[1])
    rng = np.random.default_rng(1)
    calib = rng.integers(0, 256, (24, size, size, 3), dtype=np.uint8)
    images = rng.integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    calibrated = calibrate(saved, calib, progress=False)

    def run(model_bytes):
        it = Interpreter(model_content=model_bytes)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        outs = []
        for img in images:
            it.set_tensor(i["index"], img[None].astype(i["dtype"]))
            it.invoke()
            outs.append(it.get_tensor(o["index"])[0].copy())
        return np.array(outs), i["dtype"], i["quantization"], o["quantization"]

    def mode(model_bytes):
        obj = fu.convert_bytearray_to_object(bytearray(model_bytes))
        entry = next(m for m in obj.metadata if m.name == b"CONVERSION_METADATA")
        meta = conversion.ConversionMetadataT.InitFromPackedBuf(bytes(obj.buffers[entry.buffer].data), 0)
        return list(meta.options.modelOptimizationModes)

    for scheme in ("int8", "int16x8"):
        fast = quantize_calibrated(calibrated, scheme, "uint8")
        full = convert_saved_model(saved, scheme, calib, "uint8", progress=False)
        (y_fast, *io_fast), (y_full, *io_full) = run(fast), run(full)
        assert io_fast[0] == io_full[0] and io_fast[1:] == io_full[1:], scheme
        np.testing.assert_array_equal(y_fast, y_full, err_msg=scheme)
        assert mode(fast) == mode(full), scheme
    assert mode(quantize_calibrated(calibrated, "int16x8")) == [conversion.ModelOptimizationMode.PTQ_INT16]
