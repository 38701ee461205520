"""Per-layer int8 statistics and the report picture, on the fragile tiny model of test_search."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgeport.export.int8.budget import Budget
from edgeport.export.int8.candidates import TFLiteCandidates
from edgeport.export.int8.report import onnx_layer_stats, plot_report, tflite_layer_stats
from edgeport.export.int8.search import search

from .test_search import Fixture


@pytest.fixture(scope="module")
def fragile(keras, tmp_path_factory):
    return Fixture(keras, tmp_path_factory.mktemp("fragile-report"), tiny=0.02, temperature=100.0)


def _by_layer(rows):
    return {r["layers"][0]: r for r in rows if r["layers"]}


def test_tflite_layer_stats_find_where_the_class_is_lost(fragile):
    rows = tflite_layer_stats(fragile.calibrated, fragile.data.images[::4], fragile.layers)
    assert [r["depth"] for r in rows] == list(range(len(rows))) and len(rows) >= 4
    layers = _by_layer(rows)
    # the big channel dominates the energy of 'spread' (fine SQNR there) but the logits that read only the
    # rounded-away tiny channel are mostly noise
    assert layers["spread"]["sqnr_db"] > 20 and layers["decide"]["sqnr_db"] < 10
    assert layers["gap"]["sqnr_db"] > 20 and 0 < layers["gap"]["rmse_over_scale"] < 1
    floated = tflite_layer_stats(fragile.calibrated, fragile.data.images[::4], fragile.layers,
                                 float_nodes=[r["tensor"] for r in rows if set(r["layers"]) & {"spread", "decide"}])
    assert not {"spread", "decide"} & set(_by_layer(floated))


def test_onnx_layer_stats(fragile, tmp_path):
    from edgeport.export.onnx import preprocess, quantize_qdq

    pre = preprocess(fragile.onnx(), tmp_path / "pre.onnx")
    q = quantize_qdq(pre, tmp_path / "q.onnx", fragile.calib, progress=False)
    rows = onnx_layer_stats(pre, q, fragile.data.images[::4], fragile.layers)
    assert rows and all(r["sqnr_db"] is not None for r in rows)
    worst = min(rows, key=lambda r: r["sqnr_db"])
    assert "decide" in worst["layers"] and worst["sqnr_db"] < 10
    assert any(r["sqnr_db"] == math.inf or r["sqnr_db"] > 20 for r in rows)


def test_report_png(fragile, tmp_path):
    rows = tflite_layer_stats(fragile.calibrated, fragile.data.images[::8], fragile.layers)
    res = search(TFLiteCandidates(fragile.calibrated, "uint8", fragile.layers), fragile.data, fragile.contract,
                 Budget(), max_evals=12, rank_images=10, latency_runs=2, workdir=tmp_path / "w", progress=False)
    path = plot_report(rows, res.to_dict(), tmp_path / "quantization" / "report.png", title="fragile")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    import cv2

    img = cv2.imread(str(path))
    assert img.shape[1] > img.shape[0] > 300 and len(np.unique(img.reshape(-1, 3), axis=0)) > 20
    assert plot_report(rows, None, tmp_path / "layers_only.png").is_file()
