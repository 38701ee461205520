"""edgeport.data: layout detection, splits and unreadable files, on real JPEGs."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeport.data import DataSet, drop_unreadable, scan, stratified_split, write_split_csv
from edgeport.errors import DataError


def _jpg(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)


def _class_folders(root: Path, classes=("a", "b", "c"), n=5) -> Path:
    for c in classes:
        for i in range(n):
            _jpg(root / c / f"{i}.jpg", i)
    return root


def test_class_folders_split_is_stratified_and_seeded(tmp_path):
    root = _class_folders(tmp_path / "d", n=10)
    (root / "a" / ".hidden.jpg").write_bytes(b"x")
    (root / ".cache").mkdir()
    _jpg(root / ".cache" / "x.jpg")
    ds = scan(root, val_fraction=0.2, seed=1)
    assert ds.layout == "class-folders"
    assert ds.classes == ("a", "b", "c")
    assert ds.counts()["val"] == {"a": 2, "b": 2, "c": 2}
    assert len(ds.samples) == 30  # hidden file and folder ignored
    again = scan(root, val_fraction=0.2, seed=1)
    assert [s.split for s in again.samples] == [s.split for s in ds.samples]
    other = scan(root, val_fraction=0.2, seed=2)
    assert [s.split for s in other.samples] != [s.split for s in ds.samples]


def test_split_folders_with_test(tmp_path):
    for split in ("train", "validation", "test"):
        _class_folders(tmp_path / split, classes=("x", "y"), n=3)
    ds = scan(tmp_path)
    assert ds.layout == "split-folders"
    assert {s.split for s in ds.samples} == {"train", "val", "test"}
    assert ds.counts()["val"] == {"x": 3, "y": 3}


def test_split_folders_extra_class_in_val_is_an_error(tmp_path):
    _class_folders(tmp_path / "train", classes=("x", "y"), n=2)
    _class_folders(tmp_path / "val", classes=("x", "y", "z"), n=2)
    with pytest.raises(DataError, match="extra: z"):
        scan(tmp_path)


def test_csv_wins_over_class_folders(tmp_path):
    root = _class_folders(tmp_path, n=4)
    with open(root / "split.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for c in ("a", "b"):
            w.writerow([f"{c}/0.jpg", c, "train"])
            w.writerow([f"{c}/1.jpg", c, "val"])
    ds = scan(root)
    assert ds.layout == "csv" and ds.classes == ("a", "b") and len(ds.samples) == 4
    assert all(Path(s.path).is_absolute() and Path(s.path).exists() for s in ds.samples)


def test_csv_given_as_file_without_split_column(tmp_path):
    root = _class_folders(tmp_path, classes=("a", "b"), n=5)
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for c in ("a", "b"):
            for i in range(5):
                w.writerow([f"{c}/{i}.jpg", c])
    ds = scan(root / "labels.csv", val_fraction=0.4)
    assert ds.counts()["val"] == {"a": 2, "b": 2}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda r: None, "no images"),
        (lambda r: _class_folders(r, classes=("only",)), "at least 2 classes"),
        (lambda r: (_class_folders(r, classes=("a", "b")), (r / "empty").mkdir()), "empty"),
    ],
    ids=["no-images", "single-class", "empty-class"],
)
def test_bad_layouts_are_clear_errors(tmp_path, make, match):
    root = tmp_path / "d"
    root.mkdir()
    make(root)
    with pytest.raises(DataError, match=match):
        scan(root)


def test_missing_path_and_tfds_name(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan(tmp_path / "nope")
    with pytest.raises(DataError, match="TensorFlow Datasets"):
        scan("tfds:tf_flowers")


def test_drop_unreadable_lists_corrupt_files(tmp_path):
    root = _class_folders(tmp_path, classes=("a", "b"), n=4)
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "b" / "empty.png").write_bytes(b"")
    ds = drop_unreadable(scan(root, val_fraction=0.25))
    assert len(ds.samples) == 8
    assert sorted(Path(p).name for p, _ in ds.skipped) == ["broken.jpg", "empty.png"]
    assert ds.summary()["num_skipped"] == 2
    out = tmp_path / "split.csv"
    write_split_csv(ds, out)
    assert len(out.read_text().strip().splitlines()) == 9


def test_stratified_split_keeps_one_train_image_per_class():
    splits = stratified_split([0, 0, 1, 1, 1, 2], 0.5, seed=0)
    assert splits[5] == "train"  # a single image stays in train
    assert splits[:2].count("val") == 1


@pytest.mark.flowers
def test_flowers_fixed_split(flowers_dir):
    ds: DataSet = scan(flowers_dir)
    assert ds.layout == "csv"
    assert len(ds.split("train")) == 2934 and len(ds.split("val")) == 736
    assert ds.counts()["val"]["dandelion"] == 180


def _csv_set(root: Path, rows: list[str], name: str = "split.csv", encoding: str = "utf-8") -> Path:
    for i in range(6):
        _jpg(root / f"i{i}.jpg", i)
    (root / name).write_bytes(("path,label,split\n" + "".join(r + "\n" for r in rows)).encode(encoding))
    return root / name


_GOOD = ["i0.jpg,a,train", "i1.jpg,a,test", "i2.jpg,b,train", "i3.jpg,b,train", "i4.jpg,a,val", "i5.jpg,b,val"]


@pytest.mark.parametrize("row, line, match", [
    ("i3.jpg,b,", 5, r"expected a split \(train/val/test\) in every row .* or in none, received an empty split on line 5 "
                     r"\(path 'i3.jpg'; 1 of 6 rows"),
    ("i3.jpg,,train", 5, r"expected a label in every row .*, received an empty label on line 5"),
    ("i3.jpg,  ,train", 5, r"expected a label in every row .*, received an empty label on line 5"),
    (",b,train", 5, r"expected a path in every row .*, received an empty path on line 5"),
    ("i1.jpg,a,train", 5, r"expected each image once .* on line 3 and again on line 5"),
])
def test_csv_rows_that_would_silently_change_the_split_are_errors(tmp_path, row, line, match):
    rows = list(_GOOD)
    rows[line - 2] = row
    f = _csv_set(tmp_path, rows)
    with pytest.raises(DataError, match=match):
        scan(f)


def test_csv_with_an_empty_split_column_is_split_by_fraction_and_test_rows_stay_out_of_train(tmp_path):
    f = _csv_set(tmp_path, [r.rsplit(",", 1)[0] + "," for r in _GOOD])
    assert {s.split for s in scan(f).samples} <= {"train", "val"}
    ds = scan(_csv_set(tmp_path / "g", _GOOD))
    assert [s.split for s in ds.samples] == ["train", "test", "train", "train", "val", "val"]


def test_csv_byte_order_mark_and_undecodable_csv(tmp_path):
    ds = scan(_csv_set(tmp_path / "bom", _GOOD, encoding="utf-8-sig"))  # as spreadsheets save it
    assert ds.classes == ("a", "b")
    bad = _csv_set(tmp_path / "latin", _GOOD[:-1] + ["i5.jpg,b\xe9b\xe9,val"], encoding="latin-1")
    with pytest.raises(DataError, match="expected a UTF-8 text CSV"):
        scan(bad)
    huge = _csv_set(tmp_path / "huge", _GOOD[:-1] + ["i5.jpg," + "b" * 200_000 + ",val"])
    with pytest.raises(DataError, match="expected a well-formed CSV .* received a malformed line .*field limit"):
        scan(huge)


def test_class_names_with_control_characters_are_refused(tmp_path):
    """A newline in a label would split it in labels.txt; an escape sequence would reach terminals."""
    f = _csv_set(tmp_path / "csv", _GOOD[:-1] + ['i5.jpg,"b\nc",val'])
    with pytest.raises(DataError, match=r"expected class names of printable characters .* received 'b\\nc'"):
        scan(f)
    root = _class_folders(tmp_path / "folders", classes=("a", "b\x1b[2J"))
    with pytest.raises(DataError, match=r"received 'b\\x1b\[2J'"):
        scan(root)
