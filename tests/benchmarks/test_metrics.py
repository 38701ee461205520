"""Every benchmark metric on hand-made predictions whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeport.benchmarks.metrics import (
    accuracy_summary,
    agreement,
    delta_points,
    latency_stats,
    per_class_top1,
    top_k_accuracy,
    topk_from_probs,
    worst_class_drop,
)
from edgeport.errors import ConfigError

CLASSES = ("a", "b", "c")
# 6 images: labels a a b b c c
LABELS = np.array([0, 0, 1, 1, 2, 2])
# top-3 predictions per image (best first)
MODEL = np.array([
    [0, 1, 2],  # a: right
    [1, 0, 2],  # a: wrong at 1, right at 2
    [1, 2, 0],  # b: right
    [2, 0, 1],  # b: wrong at 1 and 2, right at 3
    [2, 1, 0],  # c: right
    [2, 0, 1],  # c: right
])
REF = np.array([
    [0, 1, 2],
    [0, 1, 2],
    [1, 2, 0],
    [1, 0, 2],
    [2, 1, 0],
    [0, 2, 1],  # c: wrong
])


def test_top1_and_topk():
    assert top_k_accuracy(MODEL, LABELS, 1) == pytest.approx(4 / 6)
    assert top_k_accuracy(MODEL, LABELS, 2) == pytest.approx(5 / 6)
    assert top_k_accuracy(MODEL, LABELS, 3) == pytest.approx(1.0)
    # k larger than the number of predictions uses all of them
    assert top_k_accuracy(MODEL, LABELS, 5) == pytest.approx(1.0)


def test_top5_on_ten_classes():
    labels = np.array([7, 3])
    preds = np.array([[0, 1, 2, 3, 7, 9], [0, 1, 2, 4, 5, 3]])  # 7 at rank 5 (in), 3 at rank 6 (out)
    assert top_k_accuracy(preds, labels, 5) == pytest.approx(0.5)
    assert top_k_accuracy(preds, labels, 6) == pytest.approx(1.0)


def test_topk_from_probs_orders_best_first():
    probs = np.array([[0.1, 0.5, 0.2, 0.2], [0.7, 0.1, 0.1, 0.1]])
    np.testing.assert_array_equal(topk_from_probs(probs, 3), [[1, 2, 3], [0, 1, 2]])


def test_per_class_top1_and_empty_class():
    assert per_class_top1(MODEL, LABELS, 3) == pytest.approx([0.5, 0.5, 1.0])
    pc = per_class_top1(MODEL[:4], LABELS[:4], 3)  # no image of class c
    assert pc[:2] == pytest.approx([0.5, 0.5]) and math.isnan(pc[2])


def test_agreement_and_delta():
    # top-1 model: 0 1 1 2 2 2; ref: 0 0 1 1 2 0 -> same on images 0, 2, 4
    assert agreement(MODEL, REF) == pytest.approx(3 / 6)
    assert agreement(MODEL[:, 0], REF[:, 0]) == pytest.approx(0.5)
    ref_top1 = top_k_accuracy(REF, LABELS, 1)  # 5/6
    assert ref_top1 == pytest.approx(5 / 6)
    assert delta_points(top_k_accuracy(MODEL, LABELS, 1), ref_top1) == pytest.approx(-100 / 6)


def test_agreement_needs_same_images():
    with pytest.raises(ConfigError, match="same images"):
        agreement(MODEL, REF[:3])


def test_worst_class_drop():
    # ref top-1 = 0 0 1 1 2 0 -> a 2/2, b 2/2, c 1/2
    ref_pc = per_class_top1(REF, LABELS, 3)
    assert ref_pc == pytest.approx([1.0, 1.0, 0.5])
    model_pc = per_class_top1(MODEL, LABELS, 3)  # 0.5, 0.5, 1.0 -> drops a 50, b 50, c -50
    name, drop = worst_class_drop(model_pc, ref_pc, CLASSES)
    assert name == "a" and drop == pytest.approx(50.0)  # a tie goes to the first class
    name, drop = worst_class_drop([0.5, 0.25, 1.0], ref_pc, CLASSES)
    assert name == "b" and drop == pytest.approx(75.0)
    # nothing comparable
    assert worst_class_drop([float("nan")], [1.0], ["a"])[0] is None
    # an improvement everywhere: the "worst" drop is negative (the smallest gain)
    name, drop = worst_class_drop([1.0, 0.9], [0.5, 0.8], ["x", "y"])
    assert name == "y" and drop == pytest.approx(-10.0)


def test_latency_stats_on_known_times():
    t = [1.0, 2.0, 3.0, 4.0, 10.0]
    s = latency_stats(t)
    assert s["mean"] == pytest.approx(4.0)
    assert s["std"] == pytest.approx(np.std(t))
    assert s["p50"] == pytest.approx(3.0)
    assert s["p90"] == pytest.approx(4.0 + 0.6 * 6.0)  # linear between 4 (p75) and 10 (p100)
    assert s["p99"] == pytest.approx(4.0 + 0.96 * 6.0)
    assert s["min"] == 1.0 and s["max"] == 10.0
    assert s["images_per_s"] == pytest.approx(250.0)


def test_latency_stats_rejects_empty():
    with pytest.raises(ConfigError):
        latency_stats([])


def test_accuracy_summary_with_reference():
    s = accuracy_summary(MODEL, LABELS, CLASSES, REF)
    assert s["images"] == 6
    assert s["top1"] == pytest.approx(4 / 6)
    assert s["top5"] == pytest.approx(1.0)
    assert s["per_class_top1"] == pytest.approx({"a": 0.5, "b": 0.5, "c": 1.0})
    assert s["delta_top1_pts"] == pytest.approx(-100 / 6)
    assert s["agreement_pct"] == pytest.approx(50.0)
    assert s["worst_class"] == "a" and s["worst_class_drop_pts"] == pytest.approx(50.0)


def test_accuracy_summary_against_itself_is_neutral():
    s = accuracy_summary(REF, LABELS, CLASSES, REF)
    assert s["delta_top1_pts"] == 0.0 and s["agreement_pct"] == 100.0 and s["worst_class_drop_pts"] == 0.0


def test_accuracy_summary_without_reference():
    s = accuracy_summary(MODEL, LABELS, CLASSES)
    assert s["delta_top1_pts"] is None and s["agreement_pct"] is None and s["worst_class"] is None


def test_predictions_must_match_labels():
    with pytest.raises(ConfigError, match="one row"):
        top_k_accuracy(MODEL[:2], LABELS, 1)
