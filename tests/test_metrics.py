"""The shared accuracy figures on hand-made predictions whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport import metrics as M
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


def test_top_k_in_percent():
    assert M.top_k_pct(MODEL, LABELS, 1) == pytest.approx(400 / 6)
    assert M.top_k_pct(MODEL, LABELS, 2) == pytest.approx(500 / 6)
    assert M.top_k_pct(MODEL, LABELS, 5) == pytest.approx(100.0)  # k beyond the predictions: all of them
    labels = np.array([7, 3])
    preds = np.array([[0, 1, 2, 3, 7, 9], [0, 1, 2, 4, 5, 3]])  # 7 at rank 5 (in), 3 at rank 6 (out)
    assert M.top_k_pct(preds, labels, 5) == pytest.approx(50.0)


def test_top_k_orders_best_first_and_margins():
    probs = np.array([[0.1, 0.5, 0.2, 0.2], [0.7, 0.1, 0.1, 0.1]])
    np.testing.assert_array_equal(M.top_k(probs, 3), [[1, 2, 3], [0, 1, 2]])
    np.testing.assert_allclose(M.margins(probs), [0.3, 0.6])


def test_accuracy_reports_top5_only_with_more_than_five_classes():
    a = M.accuracy(MODEL, LABELS, CLASSES, confusion=True)
    assert a["images"] == 6 and a["top1_pct"] == pytest.approx(400 / 6)
    assert a["top5_pct"] is None  # 3 classes: top-5 is always 100 %, so it is not reported
    assert a["per_class_top1_pct"] == pytest.approx({"a": 50.0, "b": 50.0, "c": 100.0})
    assert a["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 0, 2]]
    probs = np.eye(7)[[0, 1, 2, 3, 4, 5, 6]] * 0.5 + 0.05
    a7 = M.accuracy(probs, np.arange(7), [str(i) for i in range(7)])
    assert a7["top5_pct"] == 100.0 and a7["top1_pct"] == 100.0
    empty = M.accuracy(MODEL[:4], LABELS[:4], CLASSES)  # no image of class c
    assert empty["per_class_top1_pct"]["c"] is None


def test_compare_with_a_reference():
    s = M.compare(MODEL, REF, LABELS, CLASSES)
    # top-1 model: 0 1 1 2 2 2; ref: 0 0 1 1 2 0 -> same on images 0, 2, 4
    assert s["agreement_pct"] == pytest.approx(50.0)
    assert s["reference_top1_pct"] == pytest.approx(500 / 6)
    assert s["delta_top1_pts"] == pytest.approx(-100 / 6)
    # ref per class a 100, b 100, c 50; model a 50, b 50, c 100: a and b lose 50, a is first
    assert s["worst_class"] == "a" and s["worst_class_drop_pts"] == pytest.approx(50.0)
    assert s["decided_agreement_pct"] is None  # indices only: no margins known
    same = M.compare(REF, REF, LABELS, CLASSES)
    assert same["delta_top1_pts"] == 0.0 and same["agreement_pct"] == 100.0 and same["worst_class"] is None


def test_decided_agreement_ignores_coin_flips():
    ref = np.array([[0.9, 0.05, 0.05], [0.52, 0.48, 0.0], [0.1, 0.8, 0.1], [0.34, 0.33, 0.33]])
    mine = np.array([[0.8, 0.1, 0.1], [0.49, 0.51, 0.0], [0.1, 0.1, 0.8], [0.33, 0.34, 0.33]])
    s = M.compare(mine, ref, np.array([0, 0, 1, 0]), CLASSES)
    assert s["agreement_pct"] == 25.0  # only image 0 agrees
    # decided reference images: 0 and 2 (margins 0.85 and 0.7); 1 and 3 are coin flips
    assert s["decided_images"] == 2 and s["decided_agreement_pct"] == 50.0
    assert s["max_abs_prob_diff"] == pytest.approx(0.7)
    margin = M.compare(mine.argsort(1)[:, ::-1], ref.argsort(1)[:, ::-1], np.array([0, 0, 1, 0]), CLASSES,
                       reference_margin=M.margins(ref))
    assert margin["decided_agreement_pct"] == 50.0 and "max_abs_prob_diff" not in margin


def test_shapes_are_checked():
    with pytest.raises(ConfigError, match="one row"):
        M.top_k_pct(MODEL[:2], LABELS, 1)
    with pytest.raises(ConfigError, match="same images"):
        M.agreement_pct(MODEL[:, 0], REF[:3, 0])


def test_no_images_gives_no_figures():
    s = M.compare(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, int), CLASSES)
    assert s["images"] == 0 and s["top1_pct"] is None and s["agreement_pct"] is None
    assert s["delta_top1_pts"] is None and s["decided_images"] == 0
