"""The acceptance run on the real flowers set (slow: ResNet50V2 at 96 px on 2 cores takes minutes)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow", reason="the build stage needs TensorFlow (the [train] extra)")

from edgeport.cli import main


@pytest.mark.slow
@pytest.mark.flowers
def test_resnet50v2_on_flowers_writes_a_complete_run(flowers_dir, tmp_path):
    out = tmp_path / "R"
    rc = main(["build", "--data", str(flowers_dir), "--backbone", "resnet50v2", "--weights", "none",
               "--image-size", "96", "--epochs", "1", "--fine-tune-epochs", "1", "--out", str(out)])
    assert rc == 0
    for name in ("model.keras", "labels.txt", "config.yaml", "data_split.csv", "metrics.json", "history.csv",
                 "history.png", "confusion.png", "skipped.txt"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["layout"] == "csv"  # flowers' fixed split.csv is used
    assert metrics["val"]["images"] == sum(metrics["data"]["counts"]["val"].values())
    assert metrics["val_top1_pct"] > 20  # better than chance (5 classes) even from scratch
