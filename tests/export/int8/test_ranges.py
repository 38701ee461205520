"""Activation-range rules (``--calibration-method``): the rules on histograms, and a tiny model whose int8
is ruined by one hot pixel in one calibration image under min/max, repaired by the search's calibrate phase
in the real converter and engine with nothing kept float."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.errors import ConfigError, ModelError
from edgeport.export.config import ExportConfig
from edgeport.export.int8.ranges import RANGE_RULES, Histogram, clip_range, quant_error, range_rules


def _hist(values: np.ndarray) -> Histogram:
    h = Histogram(float(values.min()), float(values.max()))
    h.add(values)
    return h


def test_entropy_is_not_led_by_a_relus_zeros():
    """A ReLU6 output that is 0 on most pixels (MobileNetV2's): the spike of zeros made entropy clip at 0.27 of 6
    (full int8 agreed with Keras on 23 % of the flowers photos); counted as its neighbour bin, as TensorRT's
    calibrator does, the range keeps the values."""
    rng = np.random.default_rng(0)
    values = np.r_[np.zeros(90_000), rng.uniform(0, 6, 10_000)]
    lo, hi = clip_range(_hist(values), "entropy")
    assert lo == 0.0 and hi > 5.0, (lo, hi)


def test_every_rule_keeps_zero_inside_and_the_clipping_rules_clip_a_lone_outlier():
    rng = np.random.default_rng(0)
    relu = np.r_[np.maximum(rng.normal(size=400_000), 0.0), [60.0]]  # one outlier at 60 sigma
    h = _hist(relu)
    assert h.counts.sum() == relu.size
    got = {rule: clip_range(h, rule) for rule in RANGE_RULES}
    assert all(lo == 0.0 <= hi for lo, hi in got.values()), got  # a ReLU output keeps its zero end
    assert got["minmax"][1] == pytest.approx(60.0)
    assert 1.5 < got["percentile"][1] < 6.0 and 1.5 < got["entropy"][1] < 6.0  # the bulk kept, the outlier cut
    # mse minimizes the int8 error itself: no other rule's range does better on this histogram
    err = {rule: quant_error(h, *r) for rule, r in got.items()}
    assert err["mse"] <= min(err.values()) * 1.001, err
    assert got["narrowest"] == (0.0, min(got["percentile"][1], got["mse"][1]))  # the outlier cut as percentile does
    heavy = np.abs(rng.laplace(size=400_000))  # a long tail: mse trades its end for a finer step
    lo, hi = clip_range(_hist(heavy), "mse")
    assert lo == 0.0 and hi < 0.8 * heavy.max()
    assert clip_range(_hist(heavy), "narrowest")[1] == min(hi, clip_range(_hist(heavy), "percentile")[1])
    assert quant_error(_hist(heavy), lo, hi) < quant_error(_hist(heavy), 0.0, heavy.max())
    signed = rng.normal(size=200_000)
    for rule in RANGE_RULES:
        lo, hi = clip_range(_hist(signed), rule)
        assert lo < 0 < hi and 0.5 < hi / -lo < 2, (rule, lo, hi)


def test_a_constant_tensor_and_an_unknown_rule():
    h = _hist(np.zeros(10))
    assert all(clip_range(h, r) == (0.0, 0.0) for r in RANGE_RULES)
    with pytest.raises(ConfigError, match="expected a range rule"):
        clip_range(h, "kl")


def test_which_rules_each_scheme_offers():
    assert range_rules("int8", "auto")[0] == "minmax" and "mse" in range_rules("int8", "auto")
    assert range_rules("onnx-int8", "entropy") == ("entropy",)
    assert range_rules("fp16", "mse") == ()
    with pytest.raises(ConfigError, match="for onnx-int8 to be one of auto, minmax, percentile, entropy; received 'mse'"):
        range_rules("onnx-int8", "mse")
    with pytest.raises(ConfigError, match="onnx-int8"):  # said when the config is made, before any work
        ExportConfig(run_dir="r", calibration_method="mse")
    assert ExportConfig(run_dir="r", calibration_method="mse", schemes=("int8", "fp16")).calibration_method == "mse"


# --------------------------------------------------------------------------- a model one hot pixel ruins

SIZE = 64
CENTERS = np.array([40 + 40 * k for k in range(5)], np.float64) / 255.0


def _gray(k: int, n: int, rng, noise: int = 0) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        img = np.full((SIZE, SIZE, 3), 40 + 40 * k, np.int16)
        if noise:
            img = img + rng.integers(-noise, noise + 1, img.shape)
        out.append(img.clip(0, 255).astype(np.uint8))
    return out


def hot_pixel_model(keras):
    """image -> 1x1 conv 'detect' (channel 0: gray level; channel 1: 10000 x how far a pixel is past 0.95,
    i.e. 0 except on a saturated pixel) -> global mean -> Dense 'decide' (nearest center from channel 0
    only). Both channels share one int8 activation tensor."""
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inp)
    detect = keras.layers.Conv2D(2, 1, activation="relu", name="detect")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(detect(x))
    decide = keras.layers.Dense(5, name="decide")
    model = keras.Model(inp, keras.layers.Softmax(name="probs")(decide(x)), name="hot_pixel")
    w = np.zeros((1, 1, 3, 2), np.float32)
    w[0, 0, :, 0] = 1 / 3
    w[0, 0, :, 1] = 10000 / 3
    detect.set_weights([w, np.array([0.0, -9500.0], np.float32)])
    w2 = np.zeros((2, 5), np.float32)
    w2[0] = 100 * 2 * CENTERS
    decide.set_weights([w2, (-100 * CENTERS**2).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def hot_pixel(keras, tmp_path_factory):
    pytest.importorskip("tensorflow")
    from edgeport.contract import InputContract
    from edgeport.evalset import EvalSet
    from edgeport.export.tflite import calibrate, export_saved_model

    rng = np.random.default_rng(0)
    model = hot_pixel_model(keras)
    calib = np.stack([img for k in range(5) for img in _gray(k, 4, rng)])
    calib[7, 10, 10] = 255  # one hot pixel in one of 20 calibration images
    images = np.stack([img for k in range(5) for img in _gray(k, 8, rng, noise=3)])
    labels = np.repeat(np.arange(5), 8)
    reference = np.asarray(model.predict(images.astype(np.float32), verbose=0), np.float32)
    assert (reference.argmax(1) == labels).all()
    tmp = tmp_path_factory.mktemp("hot-pixel")
    calibrated = calibrate(export_saved_model(model, tmp / "saved_model"), calib, progress=False)
    return calib, calibrated, EvalSet(images, labels, reference), InputContract(SIZE, SIZE), model


def test_the_calibrate_phase_repairs_int8_without_keeping_anything_float(hot_pixel, tmp_path):
    from edgeport.export.int8.budget import Budget
    from edgeport.export.int8.candidates import TFLiteCandidates
    from edgeport.export.int8.search import search
    from edgeport.export.verify import evaluate

    calib, calibrated, data, contract, _ = hot_pixel
    cands = TFLiteCandidates(calibrated, "uint8", images=calib)
    minmax = evaluate(cands.write((), tmp_path / "minmax.tflite"), data, contract, latency_runs=0)
    assert minmax["agreement_pct"] <= 40.0  # the hot pixel set the step: the gray level rounds away
    res = search(cands, data, contract, Budget(max_drop=1.0, min_agreement=97.0), max_evals=12, rank_images=20,
                 latency_runs=3, out=tmp_path / "int8.tflite", workdir=tmp_path / "work", progress=False,
                 rules=cands.rules)
    phases = [s.phase for s in res.trace]
    assert phases[:2] == ["full", "calibrate"] and "rank" not in phases  # met before any float fallback
    assert res.met and res.float_ops == 0 and res.chosen.ranges != "minmax"
    assert res.summary == f"int8 ({res.chosen.ranges} ranges)" and res.float_set["ranges"] == res.chosen.ranges
    assert "activation ranges meets the budget" in res.message and "on minmax ranges" in res.message
    fig = evaluate(res.model_path, data, contract, latency_runs=0)
    assert fig["agreement_pct"] == 100.0
    from edgeport.export.tflite import graph_summary

    assert not graph_summary(res.model_path.read_bytes())["float_ops"]  # still all-integer


def test_each_rule_on_its_own(hot_pixel, tmp_path):
    from edgeport.export.int8.candidates import TFLiteCandidates
    from edgeport.export.verify import evaluate

    calib, calibrated, data, contract, _ = hot_pixel
    cands = TFLiteCandidates(calibrated, "uint8", images=calib)
    got = {}
    for rule in cands.rules:
        cands.use(rule)
        got[rule] = evaluate(cands.write((), tmp_path / f"{rule}.tflite"), data, contract, latency_runs=0)["agreement_pct"]
    assert got["minmax"] <= 40.0 and got["percentile"] == got["narrowest"] == 100.0, got
    assert got["entropy"] > got["minmax"], got
    # mse weighs the one clipped value's error above the bulk's rounding, keeps the range, and misses like
    # min/max: why auto tries every rule instead of trusting one
    assert got["mse"] <= 40.0, got
    with pytest.raises(ConfigError, match="expected a range rule of int8"):
        cands.use("kl")
    no_images = TFLiteCandidates(calibrated, "uint8")
    no_images.use("mse")
    with pytest.raises(ModelError, match="expected the calibration images for mse activation ranges"):
        no_images.write((), tmp_path / "x.tflite")


def near_tie_model(keras):
    """image -> mean gray level f in [0, 1] -> logits (f, 0.5 - 0.01 f, -40, -40, -40) -> softmax: class 0 or 1,
    a near-tie around f = 0.5; three classes no image comes near set the logits' calibrated low end at -40."""
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.Rescaling(1 / 255.0, name="scale")(inp))
    decide = keras.layers.Dense(5, activation="softmax", name="decide")
    model = keras.Model(inp, decide(x), name="near_tie")
    w = np.full((3, 5), 0.01 / 3, np.float32)
    w[:, 0], w[:, 1] = 1 / 3, -0.01 / 3
    decide.set_weights([w, np.array([0.0, 0.5, -40.0, -40.0, -40.0], np.float32)])
    return model


def test_the_logits_range_keeps_what_the_int8_softmax_shows(keras, tmp_path):
    """The converter's min/max gives the logits [-40, 1]: a step of 0.16 rounds answers within 0.08 of the
    tie. Every rule raises the low end to where a class's probability would still show in the uint8 output
    (the lowest top logit over the calibration images - ln(2 * 4 * 256)): a step 5x finer, the same output
    probabilities, and the near-ties kept."""
    pytest.importorskip("tensorflow")
    from edgeport.contract import InputContract
    from edgeport.evalset import EvalSet
    from edgeport.export.int8.candidates import TFLiteCandidates
    from edgeport.export.int8.ranges import RowPeak, softmax_input_range
    from edgeport.export.tflite import calibrate, export_saved_model, quantize_calibrated
    from edgeport.export.verify import evaluate
    from edgeport.schemes import Precision

    model = near_tie_model(keras)
    levels = np.r_[np.linspace(80, 120, 9), np.linspace(135, 175, 9)]  # f 0.31-0.47 and 0.53-0.69
    images = np.stack([np.full((SIZE, SIZE, 3), g, np.uint8) for g in levels])
    calib = np.stack([np.full((SIZE, SIZE, 3), g, np.uint8) for g in np.linspace(60, 200, 15)])
    reference = np.asarray(model.predict(images.astype(np.float32), verbose=0), np.float32)
    data, contract = EvalSet(images, reference.argmax(1), reference), InputContract(SIZE, SIZE)
    calibrated = calibrate(export_saved_model(model, tmp_path / "saved_model"), calib, progress=False)
    converter_own = tmp_path / "converter.tflite"
    converter_own.write_bytes(quantize_calibrated(calibrated, Precision.INT8, "uint8"))
    cands = TFLiteCandidates(calibrated, "uint8", images=calib)
    assert len(cands.softmax_inputs) == 1
    before = evaluate(converter_own, data, contract, latency_runs=0)
    for rule in cands.rules:
        cands.use(rule)
        after = evaluate(cands.write((), tmp_path / f"{rule}.tflite"), data, contract, latency_runs=0)
        assert after["agreement_pct"] == 100.0 and after["max_abs_prob_diff"] <= 1.5 / 256, (rule, after)
    assert before["agreement_pct"] <= 80.0, before  # the same file on the converter's own logits range
    # the rule itself: a floor only below the lowest top logit by ln(2 (classes - 1) / step); zero kept inside
    assert softmax_input_range(-40.0, 1.0, 0.5, 5) == pytest.approx((0.5 - np.log(2 * 4 * 256), 1.0))
    assert softmax_input_range(-3.0, 5.0, 0.5, 5) == (-3.0, 5.0)  # already inside: unchanged
    assert softmax_input_range(-40.0, 30.0, 20.0, 5) == (0.0, 30.0)
    assert softmax_input_range(-40.0, 1.0, float("inf"), 5) == (-40.0, 1.0)
    pixels = np.zeros((2, 3, 3, 5))  # a softmax per pixel: the floor is under the lowest pixel's top logit
    pixels[..., 0] = 9.0
    pixels[1, 2, 2] = [0.1, 0.5, 0.0, 0.0, 0.0]
    rows = RowPeak()
    rows.add(pixels)
    assert (rows.peak, rows.width) == (0.5, 5)
    # onnx-int8: onnxruntime's calibrated range of the Softmax input floored the same way, in its range cache
    from edgeport.export.int8.candidates import OnnxCandidates
    from edgeport.export.onnx import export_float32

    onnx_cands = OnnxCandidates(export_float32(model, tmp_path / "float.onnx"), calib, tmp_path / "ort", "minmax",
                                progress=False)
    onnx_file = onnx_cands.write((), tmp_path / "int8.onnx")
    from onnxruntime.quantization.calibrate import load_tensors_data

    lows = {name: float(np.ravel(td.range_value[0])[0]) for name, td in load_tensors_data(onnx_cands.ranges).items()}
    assert -8.0 < min(lows.values()) < -7.0, lows  # the logits' 0.5 - ln(2048) = -7.1 (calibrated: -40)
    logits_scale = [v for k, v in _activation_scales(onnx_file).items() if "decide" in k and "Softmax" not in k]
    assert logits_scale and max(logits_scale) < 0.05, logits_scale  # (1 + 7.1) / 255 in the file; (1 + 40) / 255 calibrated
    fig = evaluate(onnx_file, data, contract, latency_runs=0)
    assert fig["agreement_pct"] == 100.0 and fig["max_abs_prob_diff"] <= 1.5 / 256, fig


def test_tflite_logits_that_are_also_an_output_keep_their_range(keras, tmp_path):
    """int8 TFLite's candidates floor only logits SOFTMAX alone reads: where the model also returns the logits,
    whoever reads that output would see the clipped values, so the converter's range stays (as onnx-int8's)."""
    pytest.importorskip("tensorflow")
    from edgeport.export.int8.candidates import TFLiteCandidates
    from edgeport.export.tflite import calibrate, export_saved_model

    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.Rescaling(1 / 255.0, name="scale")(inp))
    logits = keras.layers.Dense(5, name="logits")(x)
    probs = keras.layers.Softmax(name="probs")(logits)
    calib = np.stack([np.full((SIZE, SIZE, 3), g, np.uint8) for g in np.linspace(60, 200, 15)])
    counts = {}
    for outputs in ("probs", "probs+logits"):
        model = keras.Model(inp, probs if outputs == "probs" else [probs, logits])
        calibrated = calibrate(export_saved_model(model, tmp_path / outputs), calib, progress=False)
        counts[outputs] = len(TFLiteCandidates(calibrated, "uint8", images=calib).softmax_inputs)
    assert counts == {"probs": 1, "probs+logits": 0}, counts


def test_onnx_floors_only_logits_a_last_axis_softmax_alone_reads(tmp_path):
    """Of three Softmax inputs in an onnxruntime range cache, only the one a Softmax over the last axis alone
    reads is floored: another axis's softmax is not a probability per image, and a second reader (here the
    model's output through Identity) would see the clipped values."""
    import onnx
    from onnx import TensorProto, helper
    from onnxruntime.quantization import calibrate

    from edgeport.export.onnx import floor_softmax_inputs

    eye = helper.make_tensor("eye", TensorProto.FLOAT, [5, 5], np.eye(5, dtype=np.float32).ravel().tolist())
    nodes = [helper.make_node("MatMul", ["x", "eye"], [f"logits{i}"]) for i in range(3)]
    nodes += [helper.make_node("Softmax", ["logits0"], ["p0"], axis=-1),
              helper.make_node("Softmax", ["logits1"], ["p1"], axis=0),
              helper.make_node("Softmax", ["logits2"], ["p2"], axis=-1),
              helper.make_node("Identity", ["logits2"], ["raw"])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 5]) for n in ("p0", "p1", "p2", "raw")]
    graph = helper.make_graph(nodes, "three_softmaxes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
                              outputs, initializer=[eye])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "m.onnx")
    calib = np.array([[1.0, 0.5, -40, -40, -40], [0.8, 2.0, -40, -40, -40]], np.float32)  # top logits 1.0, 2.0
    cache = tmp_path / "ranges.json"
    calibrated = {f"logits{i}": calibrate.TensorData(lowest=np.float32(-40.0), highest=np.float32(2.0)) for i in range(3)}
    calibrate.save_tensors_data(calibrate.TensorsData(calibrate.CalibrationMethod.MinMax, calibrated), cache)
    assert floor_softmax_inputs(tmp_path / "m.onnx", cache, calib) == ["logits0"]
    lows = {n: float(np.ravel(td.range_value[0])[0]) for n, td in calibrate.load_tensors_data(cache).items()}
    assert lows["logits0"] == pytest.approx(1.0 - np.log(2 * 4 * 256), abs=1e-4)  # under the lowest top logit
    assert lows["logits1"] == lows["logits2"] == -40.0


def _activation_scales(path) -> dict[str, float]:
    """QuantizeLinear output tensor -> its scale, in an onnx-int8 file."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    return {n.output[0]: float(inits[n.input[1]].reshape(-1)[0]) for n in g.node
            if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1}


def test_each_onnx_calibration_method_sets_its_own_ranges(hot_pixel, tmp_path):
    """onnxruntime's calibrators are really used: on the hot-pixel images min/max spreads the detector's
    range over the outlier, percentile clips it (a 500x finer step) and repairs the model (entropy, TensorRT's
    KL rule, keeps this one range: measured); the per-rule range cache (OnnxCandidates.use) keeps each rule's
    ranges apart."""
    from edgeport.export.int8.candidates import OnnxCandidates
    from edgeport.export.onnx import export_float32
    from edgeport.export.verify import evaluate

    calib, _, data, contract, model = hot_pixel
    base = export_float32(model, tmp_path / "float.onnx")
    cands = OnnxCandidates(base, calib, tmp_path / "ort", "minmax", progress=False)
    scales, agreement = {}, {}
    for rule in ("minmax", "percentile", "entropy"):
        cands.use(rule)
        path = cands.write((), tmp_path / f"{rule}.onnx")
        scales[rule] = _activation_scales(path)
        agreement[rule] = evaluate(path, data, contract, latency_runs=0)["agreement_pct"]
        assert cands.ranges.name == f"ranges_{rule}.json" and cands.ranges.is_file()
    detector = next(t for t in scales["minmax"] if "detect" in t and "Relu" in t)
    assert scales["percentile"][detector] < 0.01 * scales["minmax"][detector], scales
    assert agreement["minmax"] <= 40.0 and agreement["percentile"] == 100.0, agreement
    cands.use("minmax")  # back to the first rule: its cached ranges, not the last rule's
    again = _activation_scales(cands.write((), tmp_path / "minmax-again.onnx"))
    assert again == scales["minmax"]
