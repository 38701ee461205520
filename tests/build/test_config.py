"""BuildConfig validation and resolution (no TensorFlow needed)."""

from __future__ import annotations

import dataclasses

import pytest

from edgeport.build import BuildConfig
from edgeport.config import load_config
from edgeport.errors import ConfigError


def test_defaults_follow_the_recipe():
    c = BuildConfig(data="d", out="o")
    assert (c.backbone, c.weights, c.head, c.image_size) == ("resnet50v2", "imagenet", "conv-bn-dropout", 224)
    assert (c.epochs, c.fine_tune_epochs, c.unfreeze, c.optimizer) == (10, 5, 1, "adam")
    assert c.augment and c.cache_features == "auto" and c.mixed_precision == "auto"
    assert c.resolved().fine_tune_lr == pytest.approx(c.lr / 10)
    assert BuildConfig(data="d", out="o", fine_tune_lr=0.5).resolved().fine_tune_lr == 0.5


@pytest.mark.parametrize("change,words", [
    ({"data": ""}, "--data"), ({"out": ""}, "--out"), ({"image_size": 4}, "--image-size"),
    ({"batch_size": 0}, "--batch-size"), ({"epochs": 0, "fine_tune_epochs": 0}, "--epochs or --fine-tune-epochs"),
    ({"optimizer": "lion"}, "--optimizer one of adam"), ({"label_smoothing": 1.0}, "--label-smoothing"),
    ({"mixed_precision": "yes"}, "--mixed-precision"), ({"lr": 0.0}, "learning rates"),
    ({"dropout": 1.5}, "--dropout"), ({"class_weights": "inverse"}, "--class-weights"),
])
def test_validation_errors(change, words):
    with pytest.raises(ConfigError, match=words):
        dataclasses.replace(BuildConfig(data="d", out="o"), **change).validate()


def test_config_file_then_flags(tmp_path):
    f = tmp_path / "build.yaml"
    f.write_text("data: photos\nout: runs/a\nimage-size: 96\nhead: gap\nepochs: 3\n")
    c = load_config(BuildConfig, f, {"epochs": 7, "head": None})
    assert (c.data, c.image_size, c.head, c.epochs) == ("photos", 96, "gap", 7)
    f.write_text("data: photos\nimage_sise: 96\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) image_sise"):
        load_config(BuildConfig, f, {})
