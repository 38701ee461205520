"""Metrics from predictions and the history/plot writers."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edgeport.build.report import classification_metrics, plot_confusion, plot_history, write_history_csv


def test_classification_metrics_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    labels = np.array([0, 1, 1, 2])
    m = classification_metrics(probs, labels, ["a", "b", "c"])
    assert m["top1"] == pytest.approx(0.5)
    assert m["top5"] == 1.0 and m["top5_k"] == 3
    assert m["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]


def test_writers(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"phase": 1, "epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4,
             "lr": 1e-3, "seconds": 2.0},
            {"phase": 2, "epoch": 1, "loss": 0.8, "accuracy": 0.6, "val_loss": 0.9, "val_accuracy": 0.5,
             "lr": 1e-4, "seconds": 3.0}]
    write_history_csv(tmp_path / "history.csv", rows)
    with open(tmp_path / "history.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["phase", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
    assert [r["phase"] for r in got] == ["1", "2"]
    plot_history(tmp_path / "h.png", rows)
    plot_confusion(tmp_path / "c.png", [[1, 0], [2, 3]], ["x", "y"])
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "c.png").stat().st_size > 1000
