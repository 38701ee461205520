import numpy as np
import pytest

from edgeport.export.verify import compare


def test_compare_figures():
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7]], np.float32)
    labels = np.array([0, 1, 0, 0])
    f = compare(probs, ref, labels)
    assert f["samples"] == 4
    assert f["agreement"] == 75.0  # the third image flips
    assert f["keras_accuracy"] == 75.0 and f["accuracy"] == 50.0 and f["delta_top1"] == -25.0
    assert f["max_abs_diff"] == pytest.approx(0.2, abs=1e-6)


def test_compare_empty():
    assert compare(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, int)) == {"samples": 0}
