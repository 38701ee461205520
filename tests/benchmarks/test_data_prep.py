"""Choosing and decoding the labelled images once, before any worker runs (no engine needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeport.benchmarks import BenchConfig
from edgeport.benchmarks.runner import decode_images, resolve_data, select_samples
from edgeport.contract import InputContract
from edgeport.errors import DataError


def _class_folders(root, classes, per_class=5, bad=0):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / c / f"{i}.png"), rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    for i in range(bad):
        (root / classes[0] / f"broken{i}.jpg").write_bytes(b"not an image")
    return root


def test_labels_follow_the_model_not_the_folder_order(tmp_path):
    data = _class_folders(tmp_path / "d", ["b", "a"])
    cfg = BenchConfig(export_dir=".", split="all")
    pairs, summary = select_samples(cfg, str(data), ("b", "a", "c"))  # the model's own order
    assert len(pairs) == 10 and summary["classes"] == ["b", "a", "c"]
    assert {y for p, y in pairs if "/a/" in p} == {1} and {y for p, y in pairs if "/b/" in p} == {0}


def test_unknown_class_is_a_clear_error(tmp_path):
    data = _class_folders(tmp_path / "d", ["a", "zebra"])
    with pytest.raises(DataError, match="zebra"):
        select_samples(BenchConfig(export_dir="."), str(data), ("a", "b"))


def test_limit_is_a_seeded_subset_of_the_split(tmp_path):
    data = _class_folders(tmp_path / "d", ["a", "b"], per_class=20)
    cfg = BenchConfig(export_dir=".", split="all", limit=8)
    first, _ = select_samples(cfg, str(data), ("a", "b"))
    again, _ = select_samples(cfg, str(data), ("a", "b"))
    assert first == again and len(first) == 8 and {y for _, y in first} == {0, 1}


def test_decode_once_skips_unreadable_images(tmp_path):
    data = _class_folders(tmp_path / "d", ["a", "b"], per_class=3, bad=1)
    pairs, _ = select_samples(BenchConfig(export_dir=".", split="all"), str(data), ("a", "b"))
    images, skipped = decode_images(pairs, InputContract(16, 12), tmp_path, progress=False)
    arr = np.load(images.npy)
    assert arr.shape == (6, 16, 12, 3) and arr.dtype == np.uint8
    kept = [y for p, y in pairs if "broken" not in p]
    assert images.labels.tolist() == kept and sorted(kept) == [0, 0, 0, 1, 1, 1]
    first = cv2.resize(cv2.imread(next(p for p, _ in pairs if "broken" not in p))[:, :, ::-1], (12, 16),
                       interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(arr[0], first)  # decoded as RGB, resized per the contract, in order
    assert len(skipped) == 1 and "broken0.jpg" in skipped[0]["path"]


def test_data_defaults_to_the_runs_split_or_says_what_to_pass(tmp_path):
    from edgeport.manifest import parse_manifest

    run_dir = tmp_path / "run"
    (run_dir / "export").mkdir(parents=True)
    manifest = parse_manifest({"run_dir": "..", "artifacts": []}, run_dir / "export")  # relative to the export
    with pytest.raises(DataError, match="--data"):
        resolve_data(BenchConfig(export_dir="."), manifest)
    (run_dir / "data_split.csv").write_text("path,label,split\n")
    assert resolve_data(BenchConfig(export_dir="."), manifest).endswith("data_split.csv")
    old = parse_manifest({"run_dir": str(run_dir), "artifacts": []}, tmp_path / "elsewhere")  # absolute, as before
    assert resolve_data(BenchConfig(export_dir="."), old).endswith("data_split.csv")
    assert resolve_data(BenchConfig(export_dir=".", data="x"), None) == "x"
