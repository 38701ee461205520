"""The history/plot writers (the metrics themselves: tests/test_metrics.py)."""

from __future__ import annotations

import csv

import pytest

from edgeport.build.report import plot_confusion, plot_history, write_history_csv


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
