"""The tf.data pipeline gives exactly edgeport.imaging's pixels; cached features line up with images."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the build stage needs TensorFlow (the [train] extra)")

from edgeport.build import inputs
from edgeport.imaging import load_resized

from .build_helpers import tiny_config


def test_image_pipeline_matches_imaging_and_shuffles_like_features(class_folders):
    cfg = tiny_config(class_folders, "unused")
    src = inputs.load_source(cfg)
    paths, labels = src.splits["train"]
    for cache in (0, 1 << 30):
        ds = inputs.image_dataset(src, "train", 32, 8, shuffle=False, seed=0, cache_bytes=cache)
        x = np.concatenate([b[0].numpy() for b in ds])
        expected = np.stack([load_resized(p, 32) for p in paths]).astype(np.float32)
        np.testing.assert_array_equal(x, expected)
    # the feature pipeline shuffles exactly like the image pipeline (same count, same seed)
    fake = np.arange(len(labels), dtype=np.float32).reshape(-1, 1, 1, 1)
    feats = inputs.feature_dataset(fake, labels, len(src.classes), 8, shuffle=True, seed=3)
    imgs = inputs.image_dataset(src, "train", 32, 8, shuffle=True, seed=3)
    order_f = np.concatenate([b[0].numpy().ravel() for b in feats]).astype(int)
    first_imgs = np.concatenate([b[0].numpy() for b in imgs])
    expected = np.stack([load_resized(paths[i], 32) for i in order_f]).astype(np.float32)
    np.testing.assert_array_equal(first_imgs, expected)


def test_augmentation_changes_pixels_but_not_labels(class_folders):
    src = inputs.load_source(tiny_config(class_folders, "unused"))
    plain = next(iter(inputs.image_dataset(src, "train", 32, 8, shuffle=False, seed=0)))
    aug = next(iter(inputs.image_dataset(src, "train", 32, 8, shuffle=False, seed=0,
                                         augment=inputs.augmenter(0))))
    np.testing.assert_array_equal(plain[1].numpy(), aug[1].numpy())
    assert not np.array_equal(plain[0].numpy(), aug[0].numpy())
    assert aug[0].numpy().min() >= -1e-3 and aug[0].numpy().max() <= 255.5


def test_balanced_class_weights():
    w = inputs.class_weights(np.array([0, 0, 0, 1]), 2)
    assert w[0] == 4 / 6 and w[1] == 2.0
