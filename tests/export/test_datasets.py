from collections import Counter

import numpy as np

from edgeport.contract import InputContract
from edgeport.data import Sample
from edgeport.export.datasets import load_images, per_class_counts, stratified_pick


def _samples(counts):
    return [Sample(f"/x/{c}_{i}.jpg", c, "train") for c, n in enumerate(counts) for i in range(n)]


def test_stratified_pick_is_balanced_and_deterministic():
    pool = _samples([50, 10, 30])
    a = stratified_pick(pool, 21, seed=0)
    assert a == stratified_pick(pool, 21, seed=0)
    assert a != stratified_pick(pool, 21, seed=1)
    assert Counter(s.label for s in a) == {0: 7, 1: 7, 2: 7}
    # a small class runs out: the rest comes from the others
    assert Counter(s.label for s in stratified_pick(pool, 40, 0))[1] == 10


def test_stratified_pick_takes_all_when_fewer():
    pool = _samples([3, 2])
    assert stratified_pick(pool, 200, 0) == pool


def test_load_images_as_training_and_skips_corrupt(tiny_data_dir, tmp_path):
    from edgeport.data import scan
    from edgeport.imaging import load_resized

    ds = scan(tiny_data_dir)
    good = ds.samples[:3]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    contract = InputContract(height=24, width=20, resize="area")
    images, labels, kept = load_images(list(good) + [Sample(str(bad), 0, "train")], contract, "t", progress=False)
    assert images.shape == (3, 24, 20, 3) and images.dtype == np.uint8
    assert kept == list(good) and list(labels) == [s.label for s in good]
    np.testing.assert_array_equal(images[0], load_resized(good[0].path, (24, 20), "area"))
    assert per_class_counts(kept, ds.classes) == {ds.classes[good[0].label]: 3}
