"""The one copy of the stratified picks every stage uses."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.errors import ConfigError
from edgeport.evalset import EvalSet
from edgeport.sampling import round_robin, split_selection, stratified_fraction, stratified_indices


def test_round_robin_takes_one_class_after_another_so_any_prefix_is_balanced():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 6)
    order = round_robin(labels, seed=0)
    assert sorted(order) == list(range(len(labels)))  # all of them, once
    assert [labels[i] for i in order[:9]] == [0, 1, 2] * 3
    assert [labels[i] for i in order[9:]] == [0, 2, 0, 2, 0, 2, 0, 0, 0, 0]  # class 1 ran out
    assert list(round_robin(labels, 4, seed=None)) == [0, 10, 13, 1]  # their own order without a seed
    assert not np.array_equal(round_robin(labels, seed=1), order)


def test_stratified_indices_is_a_sorted_balanced_subset():
    labels = np.repeat(np.arange(5), 40)
    idx = stratified_indices(labels, 50, seed=3)
    assert list(idx) == sorted(idx) and np.bincount(labels[idx]).tolist() == [10] * 5
    assert list(stratified_indices(labels, 500, seed=3)) == list(range(200))


def test_split_selection_is_disjoint_covering_and_stratified():
    labels = np.repeat(np.arange(4), [7, 8, 1, 20])
    sel, rep = split_selection(labels, 0.5, seed=0)
    assert not set(sel) & set(rep) and sorted([*sel, *rep]) == list(range(len(labels)))
    assert np.bincount(labels[sel], minlength=4).tolist() == [4, 4, 0, 10]  # a class of one never chooses
    assert list(stratified_fraction(labels, 0.5, 0)) == [i in set(sel) for i in range(len(labels))]
    with pytest.raises(ConfigError, match="between 0 and 1"):
        split_selection(labels, 1.0)


def test_an_evalset_splits_and_subsets_without_mixing_its_parts():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    images = np.arange(30)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)  # image i holds i
    ref = rng.dirichlet(np.ones(3), 30).astype(np.float32)
    data = EvalSet(images, labels, ref, ("a", "b", "c"), {"split": "val"})
    sel, rep = data.split(0.5, seed=1)
    assert len(sel) + len(rep) == 30 and not {int(i) for i in sel.images[:, 0, 0, 0]} & {
        int(i) for i in rep.images[:, 0, 0, 0]}
    for part in (sel, rep, data.subset(9, seed=2)):
        ids = part.images[:, 0, 0, 0].astype(int)
        assert (part.labels == labels[ids]).all() and np.allclose(part.reference, ref[ids])
        assert part.info == {"split": "val"} and part.names == ("a", "b", "c")
    assert data.reference_top1_pct == pytest.approx(100.0 * float((ref.argmax(1) == labels).mean()))
    ragged = EvalSet([np.zeros((2, 3, 3), np.uint8), np.ones((4, 5, 3), np.uint8)], np.array([0, 1]), ref[:2])
    assert ragged.take(np.array([1])).images[0].shape == (4, 5, 3)
