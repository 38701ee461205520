"""Every registered backbone x every head exports every scheme, and each artifact passes verification.

Random weights (``--weights none``, untrained; BatchNorm statistics set from
a batch of the images, as training would, so activations keep a trained
model's scale) at the smallest size the head fits on that backbone, a
handful of calibration/verification images. One
head per backbone runs in the default suite (each backbone thus exports every
scheme there, and each head appears); the other 18 combinations are slow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgeport.build.backbones import BACKBONES
from edgeport.build.heads import HEADS
from edgeport.export import ALL_SCHEMES, ExportConfig, export
from edgeport.imaging import load_resized

#: the combination of each backbone that runs in the default suite (every head appears at least once)
DEFAULT_HEAD = {"resnet50v2": "gap", "mobilenet_v2": "conv", "mobilenet_v3_small": "conv-bn-dropout",
                "mobilenet_v3_large": "gap", "efficientnet_b0": "conv", "tiny": "conv-pool"}


def _size(backbone: str, head: str) -> int:
    """The backbone's smallest input size, doubled until the head fits (conv-pool needs a 2x2 map)."""
    size = BACKBONES.get(backbone).min_size
    return size * 2 if head == "conv-pool" else size


def _combos() -> list:
    out = []
    for backbone in BACKBONES.names():
        for head in HEADS.names():
            marks = () if DEFAULT_HEAD[backbone] == head else (pytest.mark.slow,)
            out.append(pytest.param(backbone, head, marks=marks, id=f"{backbone}-{head}"))
    return out


@pytest.fixture(autouse=True)
def _release_memory():
    """Free each backbone's Keras state and converter garbage before the next test (ResNet50V2's ONNX
    conversion alone peaks at ~6.5 GB)."""
    yield
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def test_default_combinations_cover_every_backbone_and_head():
    assert sorted(DEFAULT_HEAD) == BACKBONES.names()
    assert sorted(set(DEFAULT_HEAD.values())) == HEADS.names()


def _run_dir(root: Path, backbone: str, head: str, size: int, data_dir: Path) -> Path:
    import yaml

    from edgeport.build.config import BuildConfig
    from edgeport.build.model import build_models
    from edgeport.data import scan, write_split_csv

    run = root / "run"
    run.mkdir(parents=True)
    ds = scan(data_dir, val_fraction=0.25, seed=0)
    write_split_csv(ds, run / "data_split.csv")
    (run / "labels.txt").write_text("\n".join(ds.classes) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"image_size": size, "backbone": backbone, "head": head}))
    cfg = BuildConfig(data="-", out="-", backbone=backbone, weights="none", head=head, image_size=size, seed=0)
    model = build_models(cfg, len(ds.classes)).plain
    images = np.stack([load_resized(s.path, size) for s in ds.samples]).astype(np.float32)
    _adapt_batchnorm(model, images)
    model.save(run / "model.keras")
    return run


def _adapt_batchnorm(model, images: np.ndarray) -> None:
    """Moving mean/variance of every BatchNorm := the statistics of ``images`` (one training-mode pass over
    every image the export calibrates and verifies with: with 1x1 feature maps, statistics of a few images
    leave near-zero variances that blow other images' activations up by orders of magnitude).

    Keras' initial statistics (mean 0, variance 1) let a random MobileNetV2's activations shrink to
    ~1e-5 by block 4, a range no trained model has and that 16-bit activations cannot scale.
    """
    import keras

    # momentum 0: the moving statistics become this batch's; dropout off: the pass sees what inference
    # sees (EfficientNet's stochastic-depth dropout would leave statistics that blow activations up ~100x)
    saved = []
    for la in model._flatten_layers():
        if isinstance(la, keras.layers.BatchNormalization):
            saved.append((la, "momentum", la.momentum))
            la.momentum = 0.0
        elif isinstance(la, keras.layers.Dropout):
            saved.append((la, "rate", la.rate))
            la.rate = 0.0
    model(images, training=True)
    for la, attr, value in saved:
        setattr(la, attr, value)


@pytest.mark.parametrize("backbone,head", _combos())
def test_every_scheme_exports_and_verifies(backbone, head, tiny_data_dir, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    size = _size(backbone, head)
    run = _run_dir(tmp_path, backbone, head, size, tiny_data_dir)
    # random weights decide at random: no accuracy budget (min_agreement 0 replaces the default one) and no
    # float-fallback search; what is checked is that every scheme converts, loads and runs right
    res = export(ExportConfig(run_dir=str(run), out=str(tmp_path / "export"), calibration_samples=5,
                              verify_samples=5, min_agreement=0.0, search=False,
                              golden_images=0, progress=False))
    statuses = {a.scheme: (a.status, a.reason) for a in res.artifacts}
    assert list(statuses) == list(ALL_SCHEMES)
    assert all(s == "ok" for s, _ in statuses.values()), statuses
    assert res.ok
    for a in res.artifacts:
        assert (tmp_path / "export" / a.file).is_file()
        v = a.verification
        assert v["images"] == 5  # every scheme, int16x8 too (well within --verify-seconds)
        assert abs(v["mean_prob_sum"] - 1.0) < 0.05, (a.scheme, v)
        if a.scheme in ("fp32", "onnx"):
            assert v["max_abs_prob_diff"] <= 1e-4 and v["agreement_pct"] == 100.0, (a.scheme, v)
        if a.format == "onnx":
            assert list(a.graph["dims"]) == ["image", "Identity:0"], a.graph["dims"]  # one input
    int16 = res.artifact("int16x8")
    if backbone.startswith("mobilenet_v3"):  # HARD_SWISH has no 16x8 kernel: the converter keeps it float
        assert int16.graph["float_fallback"] == ["HARD_SWISH"] and "HARD_SWISH stayed float32" in int16.notes[0]
    else:
        assert not int16.graph.get("float_fallback") and not int16.graph["float_ops"]
    assert res.artifact("int8").graph["float_ops"] == []
