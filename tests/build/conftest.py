"""Small synthetic image sets in every layout the build stage reads."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from edgeport.synthetic import make_dataset


@pytest.fixture(scope="session")
def class_folders(tmp_path_factory) -> Path:
    """5 classes x 8 JPEGs as root/<class>/*.jpg."""
    return make_dataset(tmp_path_factory.mktemp("class-folders") / "data", per_class=8, size=40, seed=0)


@pytest.fixture(scope="session")
def split_folders(tmp_path_factory) -> Path:
    """root/train/<class>, root/val/<class> and root/test/<class>."""
    root = tmp_path_factory.mktemp("split-folders") / "data"
    make_dataset(root / "train", per_class=6, size=40, seed=1)
    make_dataset(root / "val", per_class=2, size=40, seed=2)
    make_dataset(root / "test", per_class=2, size=40, seed=3)
    return root


@pytest.fixture(scope="session")
def csv_set(tmp_path_factory, class_folders) -> Path:
    """A CSV (path,label,split) with relative paths and a fixed split."""
    root = tmp_path_factory.mktemp("csv") / "data"
    shutil.copytree(class_folders, root / "images")
    rows = []
    for i, p in enumerate(sorted((root / "images").rglob("*.jpg"))):
        rows.append([str(p.relative_to(root)), p.parent.name, "val" if i % 4 == 0 else "train"])
    with open(root / "split.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows(rows)
    return root


@pytest.fixture()
def corrupt_set(tmp_path, class_folders) -> Path:
    """Class folders plus a garbage .jpg, an empty .png and a hidden garbage file."""
    root = tmp_path / "corrupt"
    shutil.copytree(class_folders, root)
    (root / "circle" / "broken.jpg").write_bytes(b"this is not a jpeg" * 10)
    (root / "star" / "empty.png").write_bytes(b"")
    (root / "square" / ".hidden.jpg").write_bytes(b"junk")
    return root
