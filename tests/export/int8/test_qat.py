"""Quantization-aware fine-tuning on tiny real models: what is simulated, how close it is to LiteRT's int8,
that it changes the weights and ends in an integer file, that it resumes, and `edgeport export --qat`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgeport.export.int8 import qat as Q

SIZE = 32


def _with_trained_statistics(keras, model, seed: int):
    """``model`` with batch-norm statistics a trained network would have, not the initial ones."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.uniform(-0.5, 0.5, n), rng.uniform(-0.2, 0.2, n),
                               rng.uniform(0.5, 2, n)])
    return model


def _block_model(keras):
    """Rescaling, conv+BN+ReLU6, an inverted residual (expand+BN+ReLU6, depthwise+BN+swish, project+BN, add),
    GAP, Dense: the patterns the backbones are made of."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)
    x = keras.layers.ReLU(6.0, name="conv_relu")(x)
    y = keras.layers.Conv2D(16, 1, use_bias=False, name="expand")(x)
    y = keras.layers.BatchNormalization(name="expand_bn")(y)
    y = keras.layers.ReLU(6.0, name="expand_relu")(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(y)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    y = keras.layers.Activation("swish", name="dw_swish")(y)
    y = keras.layers.Conv2D(8, 1, use_bias=False, name="project")(y)
    y = keras.layers.BatchNormalization(name="project_bn")(y)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return _with_trained_statistics(keras, keras.Model(inp, keras.layers.Dense(5, name="logits")(x)), seed=0)


def _se_block_model(keras):
    """EfficientNet's patterns: swish, squeeze-excitation (a conv with swish, a conv with sigmoid, a multiply) and a
    residual ADD fed through a Dropout."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("swish", name="stem_swish")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    y = keras.layers.Activation("swish", name="dw_swish")(y)
    se = keras.layers.GlobalAveragePooling2D(name="se_squeeze")(y)
    se = keras.layers.Reshape((1, 1, 16), name="se_reshape")(se)
    se = keras.layers.Conv2D(4, 1, activation="swish", name="se_reduce")(se)
    se = keras.layers.Conv2D(16, 1, activation="sigmoid", name="se_expand")(se)
    y = keras.layers.Multiply(name="se_excite")([y, se])
    y = keras.layers.Conv2D(16, 1, use_bias=False, name="project")(y)
    y = keras.layers.BatchNormalization(name="project_bn")(y)
    y = keras.layers.Dropout(0.2, noise_shape=(None, 1, 1, 1), name="drop")(y)
    x = keras.layers.Add(name="residual")([y, x])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return _with_trained_statistics(keras, keras.Model(inp, keras.layers.Dense(5, name="logits")(x)), seed=1)


def _hard_block_model(keras):
    """MobileNetV3's patterns: hard-swish, squeeze-excitation gated by hard-sigmoid written as Keras ops
    (``relu6(x + 3) * (1 / 6)``, as keras.applications writes it) and a residual ADD of a hard-swish output."""
    keras.utils.set_random_seed(2)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("hard_swish", name="stem_hswish")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    y = keras.layers.ReLU(name="dw_relu")(y)
    se = keras.layers.GlobalAveragePooling2D(keepdims=True, name="se_squeeze")(y)
    se = keras.layers.Conv2D(4, 1, name="se_reduce")(se)
    se = keras.layers.ReLU(name="se_relu")(se)
    se = keras.layers.Conv2D(16, 1, name="se_expand")(se)
    se = keras.layers.ReLU(6.0, name="se_hsig")(se + 3.0) * (1.0 / 6.0)
    y = keras.layers.Multiply(name="se_excite")([y, se])
    y = keras.layers.Conv2D(16, 1, use_bias=False, name="project")(y)
    y = keras.layers.BatchNormalization(name="project_bn")(y)
    x = keras.layers.Add(name="residual")([y, x])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return _with_trained_statistics(keras, keras.Model(inp, keras.layers.Dense(5, name="logits")(x)), seed=1)


@pytest.fixture(scope="module")
def block(keras):
    return _block_model(keras)


@pytest.fixture(scope="module")
def se_block(keras):
    return _se_block_model(keras)


def test_the_plan_folds_and_fuses_where_the_converter_does(block):
    p = Q.plan(block)
    assert p.weights == {"conv", "expand", "dw", "project", "logits"}  # per-channel int8 weights
    assert {k: v.name for k, v in p.fold.items()} == {"conv": "conv_bn", "expand": "expand_bn", "dw": "dw_bn",
                                                      "project": "project_bn"}
    # int8 tensors: not a conv before its BN, not a folded BN before its ReLU6
    assert p.quantize == {"scale", "conv_relu", "expand_relu", "dw_bn", "dw_swish", "project_bn", "residual", "gap",
                          "logits"}


def test_the_simulation_rounds_where_and_as_litert_int8_does(block, tmp_path):
    """Every int8 activation of the converted file has its point in the simulation, on the range the converter
    set (within 2 % of it; on the MobileNetV2 flowers run all 68 points matched within 5 %)."""
    _matches_the_converter(block, tmp_path)


def test_squeeze_excitation_and_a_dropout_before_the_residual_as_litert_int8_does(se_block, tmp_path):
    """EfficientNet's patterns: the gate's sigmoid on LOGISTIC's fixed range, and the output that reaches a
    residual ADD through a Dropout on the ADD's range (as the converter sets it; on the EfficientNet-B0 flowers
    run 175 of 178 points matched within 5 %, the others within 10 %)."""
    p = Q.plan(se_block)
    assert p.widen == {"residual": ["project_bn"]}
    assert {"se_reduce", "se_expand", "se_excite", "dw_swish"} <= p.quantize
    _matches_the_converter(se_block, tmp_path)


def test_hard_sigmoid_as_keras_ops_and_a_residual_as_litert_int8_does(keras, tmp_path):
    """MobileNetV3's patterns: the ``+ 3`` of hard-sigmoid is in the conv's bias with the ReLU6 fused (no int8
    tensor before it), the ``* (1 / 6)`` is an int8 MUL of its own, and the output that feeds nothing but a residual
    ADD carries the ADD's range (on keras.applications' MobileNetV3Small 108 of 109 points matched within 5 %,
    the other the input Rescaling's MUL, as in the first test)."""
    model = _hard_block_model(keras)
    p = Q.plan(model)
    layers = {layer.name for layer in model.layers}
    gate = [name for name in p.quantize if name not in layers]  # the ``* (1 / 6)``: a Keras op, not a layer
    assert len(gate) == 1 and gate[0].startswith("multiply")
    assert p.quantize - set(gate) == {"scale", "stem_bn", "stem_hswish", "dw_relu", "se_squeeze", "se_relu",
                                      "se_hsig", "se_excite", "project_bn", "residual", "gap", "logits"}
    assert p.widen == {"residual": ["project_bn"]}
    _matches_the_converter(model, tmp_path, ops={gate[0]: r"[^/]+/Mul"})  # the model's own MUL, not a layer's


def test_a_model_read_from_a_file_with_keras_ops_is_simulated(keras, tmp_path):
    """A .keras file's op names (``multiply``, ``add``: hard-sigmoid's) were not counted by the Keras reading it;
    the ops the simulation creates must not take them (two operations of one name cannot make a model)."""
    _hard_block_model(keras).save(tmp_path / "m.keras")
    keras.utils.clear_session()  # a new process, as `edgeport export` is: no name counted yet
    model = keras.saving.load_model(tmp_path / "m.keras")
    p = Q.plan(model)
    images = np.random.default_rng(4).integers(0, 256, (4, SIZE, SIZE, 3)).astype(np.float32)
    ranges = Q.ActivationRanges(keras)
    ranges.assign(Q.measure_ranges(Q.probe(model, p), images, "minmax", p))
    assert np.isfinite(np.asarray(Q.simulated(model, p, ranges)(images))).all()


def _matches_the_converter(block, tmp_path, ops: dict[str, str] | None = None):
    import re

    from ai_edge_litert.interpreter import Interpreter

    from edgeport.export.int8.candidates import TFLiteCandidates
    from edgeport.export.tflite import calibrate, export_saved_model

    calib = np.random.default_rng(0).integers(0, 256, (64, SIZE, SIZE, 3)).astype(np.uint8)
    model_file = tmp_path / "m.tflite"
    calibrated = calibrate(export_saved_model(block, tmp_path / "sm"), calib, progress=False)
    TFLiteCandidates(calibrated, "uint8", images=calib).write((), model_file)  # full int8 on min/max, as exported
    interp = Interpreter(str(model_file))
    converted = {d["name"].split(";")[0]: ((-128 - d["quantization"][1]) * d["quantization"][0],
                                           (127 - d["quantization"][1]) * d["quantization"][0])
                 for d in interp.get_tensor_details() if d["dtype"] == np.int8 and d["quantization"][0]}
    p = Q.plan(block)
    measured = Q.measure_ranges(Q.probe(block, p), calib, "minmax", p)
    for point, (lo, hi) in measured.items():
        if point == "scale/mul":
            # the one known difference: the converter recorded this MUL's range as [-1, 2] here (its ADD's range
            # joined in) but as its own [0, 2] in the MobileNetV2 flowers run; the simulation uses its own
            continue
        layer, _, part = point.partition("/")
        names = [n for n in converted if re.search(rf"/{layer}(_\d+)?/", n + "/")]
        if part == "pre":  # a conv's output before its activation: the CONV_2D's own tensor
            names = [n for n in names if re.search(r"/(BiasAdd|convolution\d*|MatMul\d*)$", n)]
        elif part:
            names = [n for n in names if part in n]
        if layer in (ops or {}):  # a Keras op: the converter names its tensor after the TensorFlow op (a pattern)
            names = [n for n in converted if re.fullmatch(ops[layer], n)]
        if layer == block.layers[-1].name and not part:  # the model's output is renamed by the SavedModel signature
            names = [n for n in converted if n.startswith("StatefulPartitionedCall")]
        assert names, f"{point}: no int8 tensor of the converted model"
        clo, chi = converted[names[-1]]
        assert abs(lo - clo) <= 0.02 * (chi - clo) and abs(hi - chi) <= 0.02 * (chi - clo), (point, (lo, hi), (clo, chi))
    return measured


def test_the_plan_reads_the_models_own_graph_not_a_clones(keras):
    """probe() and simulated() call the model's layers again in graphs of their own, and Keras lists those calls on
    the layers too: a plan made after them must still see the model (on MobileNetV2 it rounded 104 tensors instead
    of 67, BN outputs whose ReLU6 fuses among them, and lost every residual's range)."""
    model = _block_model(keras)
    before = Q.plan(model)
    x = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.float32)
    Q.measure_ranges(Q.probe(model, before), x, "minmax", before)
    Q.simulated(model, before, Q.ActivationRanges(keras))
    after = Q.plan(model)
    assert (after.quantize, after.widen, after.logits, after.folded) == (before.quantize, before.widen, before.logits,
                                                                        before.folded)


def test_the_simulation_rounds_only_what_it_is_asked_to(keras, block):
    """What bench_int8_noise.py reads: nothing rounded is the float model; one tensor rounded puts the output on
    that tensor's int8 grid and nothing else does; weights alone move the output too."""
    p = Q.plan(block)
    x = np.random.default_rng(0).integers(0, 256, (8, SIZE, SIZE, 3)).astype(np.float32)
    measured = Q.measure_ranges(Q.probe(block, p), x, "minmax", p)
    ranges = Q.ActivationRanges(keras)

    def out(tensors, weights):
        sim = Q.simulated(block, p, ranges, tensors=tensors, round_weights=weights)
        ranges.assign(measured)
        return np.asarray(sim(x, training=False))

    ref = np.asarray(block(x, training=False))
    np.testing.assert_allclose(out(set(), False), ref, rtol=1e-5, atol=1e-5)
    lo, hi = measured["logits"]
    step = (hi - lo) / 255

    def on_grid(y):
        k = y / step  # fake quantization nudges the range so that 0 is on its grid
        return np.abs(k - np.round(k)).max() < 1e-2

    assert not on_grid(ref)
    assert on_grid(out({"logits"}, False))  # the model's output is the logits tensor
    assert not on_grid(out({"gap"}, False))
    assert np.abs(out({"gap"}, False) - ref).max() > 1e-4
    assert np.abs(out(set(), True) - ref).max() > 1e-4
    np.testing.assert_allclose(out(None, True), np.asarray(Q.simulated(block, p, ranges)(x, training=False)), atol=1e-6)


def test_the_logits_range_as_the_exports_int8_sets_it(keras, tmp_path):
    """A softmax head: the logits keep only the range the int8 SOFTMAX's output shows (ranges.softmax_input_range),
    in the simulation as in the export's int8 candidates; three classes no image comes near would otherwise set
    their low end at about -40."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeport.export.int8.candidates import TFLiteCandidates
    from edgeport.export.tflite import calibrate, export_saved_model

    keras.utils.set_random_seed(3)
    calib = np.random.default_rng(0).integers(0, 256, (64, SIZE, SIZE, 3)).astype(np.uint8)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    dense = keras.layers.Dense(5, activation="softmax", name="decide")
    model = keras.Model(inp, dense(x), name="softmax_head")
    dense.set_weights([dense.get_weights()[0], np.array([0.0, 0.0, -40.0, -40.0, -40.0], np.float32)])
    p = Q.plan(model)
    assert p.logits == {"decide/pre"}
    lo, hi = Q.measure_ranges(Q.probe(model, p), calib, "minmax", p)["decide/pre"]
    assert -12.0 < lo < 0.0 < hi, (lo, hi)
    calibrated = calibrate(export_saved_model(model, tmp_path / "sm"), calib, progress=False)
    TFLiteCandidates(calibrated, "uint8", images=calib).write((), tmp_path / "m.tflite")  # full int8, as exported
    (scale, zero), = [d["quantization"] for d in Interpreter(str(tmp_path / "m.tflite")).get_tensor_details()
                      if d["dtype"] == np.int8 and "decide" in d["name"] and d["quantization"][0]]
    clo, chi = (-128 - zero) * scale, (127 - zero) * scale
    assert abs(lo - clo) <= 0.02 * (chi - clo) and abs(hi - chi) <= 0.02 * (chi - clo), ((lo, hi), (clo, chi))
    # a linear Dense, then a Softmax layer: the Dense's output is the logits
    logits = keras.layers.Dense(5, name="logits")(x)
    assert Q.plan(keras.Model(inp, keras.layers.Softmax(name="probs")(logits))).logits == {"logits"}


def test_the_noise_benchmark_runs_the_real_int8_file_beside_its_simulation(tiny_run_dir, capsys):
    """benchmarks/bench_int8_noise.py --litert (run nowhere else): the model through the export's converter and
    LiteRT on the images the simulation ran, a row beside the simulation's and the correlation of their errors.
    The file's uint8 probabilities differ from Keras' by steps of 1/256, which a float file would not."""
    import importlib.util
    import re

    script = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_int8_noise.py"
    spec = importlib.util.spec_from_file_location("bench_int8_noise", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([str(tiny_run_dir), "--rule", "minmax", "--litert"]) == 0
    out = capsys.readouterr().out
    rows = {cells[0]: [float("nan" if c == "-" else c) for c in cells[1:]] for cells in
            (re.split(r"\s{2,}", line.strip()) for line in out.splitlines()) if len(cells) == 5 and cells[1][0].isdigit()}
    assert {"all int8", "weights only", "LiteRT int8 file"} <= rows.keys(), out
    agree, decided, mean_dp, msq = rows["LiteRT int8 file"]
    assert 50.0 <= agree <= 100.0 and 1e-4 < mean_dp < 0.05, out
    assert re.search(r"^LiteRT int8 file: its errors in p correlate with the simulation's at -?\d\.\d\d;", out, re.M), out


def test_fine_tune_changes_the_weights_checkpoints_and_resumes(keras, tiny_run_dir, tmp_path):
    from edgeport.export.datasets import load_images
    from edgeport.export.exporter import load_keras_model
    from edgeport.rundir import read_run

    run = read_run(tiny_run_dir)
    original = load_keras_model(run.model_path)
    calib, _, _ = load_images(run.samples("train")[:16], run.contract, "calibration", False)
    before = [w.copy() for w in load_keras_model(run.model_path).get_weights()]
    settings = Q.QATSettings(epochs=1, lr=1e-3, batch_size=8)
    student = load_keras_model(run.model_path)
    first = Q.fine_tune(original, student, run.samples("train"), run.labels, run.contract, calib, settings,
                        tmp_path / "ck", fingerprint="a", progress=False)
    after = first.model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after))  # QAT changed the weights ...
    assert all(np.allclose(a, b) for a, b in zip(before, original.get_weights()))  # ... not the reference's
    assert [h["epoch"] for h in first.history] == [0, 1] and first.quantized_weights > 0 and first.quantized_tensors > 0
    state = json.loads((tmp_path / "ck" / Q.STATE_FILE).read_text())
    assert state["epoch"] == 1 and (tmp_path / "ck" / Q.WEIGHTS_FILE).is_file()
    more = Q.QATSettings(epochs=2, lr=1e-3, batch_size=8)
    resumed = Q.fine_tune(original, load_keras_model(run.model_path), run.samples("train"), run.labels,
                          run.contract, calib, more, tmp_path / "ck", resume=True, fingerprint="a", progress=False)
    assert resumed.resumed_from == 1 and [h["epoch"] for h in resumed.history] == [0, 1, 2]
    other = Q.fine_tune(original, load_keras_model(run.model_path), run.samples("train"), run.labels,
                        run.contract, calib, more, tmp_path / "ck", resume=True, fingerprint="b", progress=False)
    assert other.resumed_from == 0  # another model or other settings: starts over


def test_fine_tune_of_a_mixed_precision_model(keras, tiny_run_dir, tmp_path):
    """A run trained in mixed precision (float16 compute, float32 weights, the float32 softmax the build keeps)
    fine-tunes too: the weights change and stay finite. (The simulation rounds as the int8 file computes, which
    is not in float16 either: the conv-like layers' rounded weights compute in float32.)"""
    from edgeport.export.datasets import load_images
    from edgeport.export.exporter import load_keras_model
    from edgeport.rundir import read_run

    run = read_run(tiny_run_dir)
    original = load_keras_model(run.model_path)
    student = load_keras_model(run.model_path)
    mixed = [layer for layer in Q._layers(student) if layer.name != "predictions" and layer.weights]
    for layer in mixed:
        layer.dtype_policy = keras.DTypePolicy("mixed_float16")
    assert mixed and all(layer.compute_dtype == "float16" for layer in mixed)
    calib, _, _ = load_images(run.samples("train")[:16], run.contract, "calibration", False)
    before = [w.copy() for w in student.get_weights()]
    res = Q.fine_tune(original, student, run.samples("train"), run.labels, run.contract, calib,
                      Q.QATSettings(epochs=1, lr=1e-3, batch_size=8), progress=False)
    after = res.model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after)) and all(np.isfinite(a).all() for a in after)
    assert [h["epoch"] for h in res.history] == [0, 1] and res.history[-1]["loss"] is not None


@pytest.mark.parametrize("make", [_block_model, _se_block_model, _hard_block_model], ids=["mobilenet_v2", "efficientnet", "mobilenet_v3"])
def test_every_pattern_trains_through_its_rounding(keras, make):
    """The straight-through gradient reaches every rounded weight through each backbone's patterns (the Keras ops
    of hard-sigmoid too), and the simulated model differs from the float one by its rounding, not more."""
    import tensorflow as tf

    model = make(keras)
    p = Q.plan(model)
    images = np.random.default_rng(3).integers(0, 256, (16, SIZE, SIZE, 3)).astype(np.float32)
    ranges = Q.ActivationRanges(keras)
    probed = Q.probe(model, p)
    sim = Q.simulated(model, p, ranges)
    ranges.assign(Q.measure_ranges(probed, images, "minmax", p))
    kernels = {layer.name: layer.kernel for layer in model.layers if layer.name in p.weights}
    with tf.GradientTape() as tape:
        out = sim(images, training=False)
        loss = tf.reduce_sum(out * np.linspace(-1, 1, 5, dtype=np.float32))
    grads = dict(zip(kernels, tape.gradient(loss, list(kernels.values()))))
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads.values()), grads.keys()
    float_out = np.asarray(model(images, training=False))
    gap = np.abs(np.asarray(out) - float_out).max()
    assert 0 < gap < 0.1 * np.abs(float_out).max(), gap


def _heads() -> list[str]:
    from edgeport.build.heads import HEADS

    return sorted(HEADS.names())


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
@pytest.mark.parametrize("head", _heads())
def test_every_head_and_mixed_precision_train_through_their_rounding(keras, head, policy):
    """Every head edgeport builds, on a backbone trained in float32 or in mixed precision (float16 compute, the
    float32 softmax the build keeps): the plan finds the logits, the simulation runs, the straight-through
    gradient reaches every rounded weight (the nested head's too), and the rounding is all that differs."""
    import tensorflow as tf

    from edgeport.build.heads import HeadArgs, create_head

    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(4)
        inp = keras.Input((SIZE, SIZE, 3), name="image")
        x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inp)
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="stem")(x)
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="body")(x)
        top = create_head(head, tuple(x.shape[1:]), HeadArgs(num_classes=5, backbone="tiny", image_size=SIZE))
        model = keras.Model(inp, top(x), name=f"tiny_{head}")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    p = Q.plan(model)
    assert p.logits == {"predictions/pre"}
    images = np.random.default_rng(3).integers(0, 256, (16, SIZE, SIZE, 3)).astype(np.float32)
    ranges = Q.ActivationRanges(keras)
    probed = Q.probe(model, p)
    sim = Q.simulated(model, p, ranges)
    ranges.assign(Q.measure_ranges(probed, images, "minmax", p))
    kernels = {layer.name: layer.kernel for layer in Q._layers(model) if layer.name in p.weights}
    assert {"stem", "body", "predictions"} <= kernels.keys()
    with tf.GradientTape() as tape:
        out = sim(images, training=False)
        loss = tf.reduce_sum(tf.cast(out, tf.float32) * np.linspace(-1, 1, 5, dtype=np.float32))
    grads = dict(zip(kernels, tape.gradient(loss, list(kernels.values()))))
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads.values()), grads
    float_out = np.asarray(model(images, training=False), np.float32)
    gap = np.abs(np.asarray(out, np.float32) - float_out).max()
    assert 0 < gap < 0.1, gap


def test_the_margin_hinge_asks_the_teachers_answer_by_a_margin_and_nothing_more(keras):
    teacher = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]], np.float32)
    flipped = np.array([[0.45, 0.5, 0.05], [0.1, 0.2, 0.7]], np.float32)  # the first answer flipped, the second kept
    want = (0.1 - np.log(0.45 / 0.5) + max(0.0, 0.1 - np.log(0.7 / 0.2))) / 2
    assert float(Q.margin_hinge(keras, teacher, flipped, 0.1)) == pytest.approx(want, rel=1e-5)
    confident = np.array([[0.9, 0.05, 0.05], [0.02, 0.03, 0.95]], np.float32)
    assert float(Q.margin_hinge(keras, teacher, confident, 0.1)) == 0.0  # given by the margin: nothing to pay
    assert float(Q.margin_hinge(keras, teacher, teacher, 0.0)) == 0.0


def test_settings_are_checked():
    from edgeport.errors import ConfigError

    with pytest.raises(ConfigError, match="--qat-epochs >= 1"):
        Q.QATSettings(epochs=0)
    with pytest.raises(ConfigError, match="--qat-lr between 0 and 1"):
        Q.QATSettings(lr=2.0)
    with pytest.raises(ConfigError, match="margin >= 0"):
        Q.QATSettings(margin=-1.0)
    # the manifest says what the fine-tune minimised, and only what it did
    assert Q.QATSettings().objective() == "distillation: KL divergence from the original Keras model's probabilities"
    assert "hinge" in Q.QATSettings(margin=0.1).objective() and "temperature 2" in Q.QATSettings(temperature=2).objective()


def _dark_calibration(tmp_path: Path) -> Path:
    """Calibration images far darker than the run's: ranges too narrow for what int8 then sees, so post-training
    int8 misses any strict budget whichever way the tiny model trained (its int8 agrees on every image in some
    runs when calibrated on its own train split)."""
    import cv2

    root = tmp_path / "dark"
    for k, name in enumerate(("circle", "cross", "square", "star", "triangle")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            image = np.full((48, 48, 3), 8 + 2 * i + k, np.uint8)
            cv2.imwrite(str(root / name / f"{i}.jpg"), image)
    return root


def test_export_with_qat_fine_tunes_searches_and_says_so(keras, tiny_run_dir, tmp_path):
    """`export(..., qat=True)` with a budget post-training int8 misses: the fine-tune runs, its integer model
    enters the search, and the manifest, the metadata and the precision say QAT when it is chosen."""
    from edgeport.export import ExportConfig, export
    from edgeport.metadata import read_tflite_metadata

    result = export(ExportConfig(run_dir=str(tiny_run_dir), out=str(tmp_path / "out"), schemes=("fp32", "int8"),
                                 calibration_data=str(_dark_calibration(tmp_path)), calibration_samples=20,
                                 verify_samples=48, min_agreement=100, max_evals=4, qat=True, qat_epochs=1,
                                 qat_lr=1e-3, progress=False))
    int8 = next(a for a in result.artifacts if a.scheme == "int8")
    qat = int8.quantization["qat"]
    assert qat.get("epochs") == 1 and qat["images"] > 0 and qat["quantized_weights"] > 0, qat
    assert [h["epoch"] for h in qat["history"]] == [0, 1]
    assert qat["search"]["images"] > 0 and qat["ptq"]["images"] > 0  # both searched, on the selection images
    path = result.out_dir / int8.file if int8.ok else result.out_dir / "failed" / Path(int8.file).name
    from edgeport.export.tflite import graph_summary

    graph = graph_summary(path.read_bytes())
    layout = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "PAD", "SHAPE", "STRIDED_SLICE", "PACK", "SQUEEZE"}
    assert set(graph["ops"]) - set(graph["float_ops"]) - layout, graph  # ops that compute in int8
    if qat["chosen"]:
        assert "QAT" in int8.precision and b"QAT" in b"".join(read_tflite_metadata(path).values())
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["scheme"] == "int8")["quantization"]
    assert entry["qat"]["epochs"] == 1
    report = result.out_dir / entry["report"]["md"]  # both searches are in the report, whichever was kept
    assert "## Search trace" in report.read_text() and "## After QAT" in report.read_text()
    qat_search = json.loads((result.out_dir / entry["report"]["json"]).read_text())["qat_search"]
    assert qat_search["trace"] and qat_search["chosen"] == entry["qat"]["chosen"]
    assert ("(kept)" if entry["qat"]["chosen"] else "(not kept)") in report.read_text()


def test_a_qat_that_cannot_run_keeps_the_post_training_result(keras, tiny_run_dir, tmp_path):
    """No train split to fine-tune on: the export says why QAT did not run and ships post-training int8."""
    import shutil

    from edgeport.export import ExportConfig, export

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    split = run / "data_split.csv"
    rows = split.read_text().splitlines()
    split.write_text("\n".join([rows[0]] + [r for r in rows[1:] if not r.endswith(",train")]) + "\n")
    result = export(ExportConfig(run_dir=str(run), out=str(tmp_path / "out"), schemes=("fp32", "int8"),
                                 calibration_data=str(_dark_calibration(tmp_path)), calibration_samples=20,
                                 verify_samples=48, min_agreement=100, max_evals=4, qat=True, qat_epochs=1,
                                 progress=False))
    int8 = next(a for a in result.artifacts if a.scheme == "int8")
    qat = int8.quantization["qat"]
    assert qat["ran"] is False and "training images" in qat["why"], qat
    assert "QAT" not in int8.precision


def test_the_closer_of_two_unmet_results_ships_and_the_cheaper_of_two_met():
    """Post-training and QAT both searched: when neither meets the budget, the one closer to it ships even if it
    keeps ops float (EfficientNet-B0: QAT's 92.1 % with 9 ops float lost to post-training's 84.8 % with none);
    when both meet, the one keeping fewer MACs float."""
    from types import SimpleNamespace

    from edgeport.export.int8.improve import _cost

    def result(met: bool, shortfall: float, macs: float, ops: int) -> SimpleNamespace:
        return SimpleNamespace(met=met, float_ops=ops, chosen=SimpleNamespace(shortfall=shortfall,
                                                                               float_macs_share=macs))

    ptq, qat = result(False, 10.2, 0.0, 0), result(False, 2.9, 0.004, 9)
    assert _cost(qat) < _cost(ptq)
    assert _cost(result(True, 0.0, 0.21, 23)) > _cost(result(True, 0.0, 0.0, 0))
    assert _cost(result(True, 0.0, 0.5, 200)) < _cost(qat)  # meeting comes first
