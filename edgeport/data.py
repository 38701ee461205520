"""Find a labelled image set on disk and split it (no TensorFlow).

Layouts, detected automatically (see :func:`scan`):

* ``csv``: a CSV with ``path,label[,split]`` columns, paths relative to the
  CSV, given as the file or found as ``split.csv`` in the folder (it wins
  over class folders);
* ``split-folders``: ``root/train/<class>/...``, ``root/val/<class>/...``
  (``validation``/``valid`` accepted) and optionally ``root/test/<class>/...``;
* ``class-folders``: ``root/<class>/...``; the validation split is made here,
  stratified and seeded;
* ``tfds:NAME``: TensorFlow Datasets, handled by ``edgeport.build`` only.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgeport.errors import DataError
from edgeport.files import atomic_write_text
from edgeport.imaging import ImageDecodeError, is_image_file, load_rgb
from edgeport.sampling import stratified_fraction

LAYOUTS = ("csv", "split-folders", "class-folders", "tfds:NAME")
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "test": "test", "testing": "test"}
_LAYOUT_HELP = (
    "expected one of the layouts: a folder of class folders (root/<class>/*.jpg); "
    "split folders (root/train/<class>/..., root/val/<class>/...); a CSV with "
    "path,label,split columns (the file, or split.csv in the folder); or tfds:NAME"
)


@dataclass(frozen=True)
class Sample:
    """One labelled image: an absolute path, a class index and a split name."""

    path: str
    label: int
    split: str


@dataclass(frozen=True)
class DataSet:
    """A scanned image set: classes in index order and every sample."""

    root: str
    layout: str
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (path, reason)

    def split(self, name: str) -> list[Sample]:
        """The samples of one split ('train', 'val' or 'test')."""
        return [s for s in self.samples if s.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class for each split present."""
        out: dict[str, dict[str, int]] = {}
        for s in self.samples:
            per = out.setdefault(s.split, {c: 0 for c in self.classes})
            per[self.classes[s.label]] += 1
        return out

    def summary(self) -> dict:
        """A JSON-ready summary (layout, classes, counts, skipped files)."""
        return {
            "root": self.root,
            "layout": self.layout,
            "classes": list(self.classes),
            "counts": self.counts(),
            "num_skipped": len(self.skipped),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_under(folder: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if is_image_file(f))
    return found


def _check_classes(classes: list[str], where: str) -> None:
    if not classes:
        raise DataError(f"no images found in {where}; {_LAYOUT_HELP}")
    odd = [c for c in classes if not c.isprintable()]
    if odd:  # a newline would split it in labels.txt; an escape sequence would reach terminals
        raise DataError(f"expected class names of printable characters in {where}, received "
                        f"{', '.join(repr(c) for c in odd[:5])}; rename the folder or fix the label")
    if len(classes) < 2:
        raise DataError(
            f"expected at least 2 classes to train a classifier, found 1 ('{classes[0]}') in {where}; "
            "add a folder (or CSV label) per class"
        )


def _class_folders(root: Path) -> dict[str, list[str]]:
    per_class = {d.name: _images_under(d) for d in _visible_dirs(root)}
    empty = [k for k, v in per_class.items() if not v]
    if empty and len(empty) < len(per_class):
        raise DataError(
            f"expected images in every class folder, but these are empty in {root}: "
            f"{', '.join(empty)}; remove them or add images"
        )
    return {k: v for k, v in per_class.items() if v}


def stratified_split(labels: list[int], val_fraction: float, seed: int) -> list[str]:
    """'train'/'val' per index, stratified by label, deterministic for a seed."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"expected --val-fraction in (0, 1), received {val_fraction}")
    val = stratified_fraction(labels, val_fraction, seed)
    return ["val" if v else "train" for v in val]


def _read_csv_rows(csv_path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(lower-case column names, [(line number, row)]) of a CSV; DataError when it cannot be read."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
            reader = csv.DictReader(f)
            cols = [c.strip().lower() for c in (reader.fieldnames or [])]
            if "path" not in cols or "label" not in cols:
                raise DataError(
                    f"expected CSV columns path,label[,split] in {csv_path}, received {reader.fieldnames}"
                )
            rows = []
            for r in reader:
                rows.append((reader.line_num, {k.strip().lower(): (v or "").strip() for k, v in r.items() if k}))
    except UnicodeDecodeError as exc:
        raise DataError(f"expected a UTF-8 text CSV in {csv_path}, received undecodable bytes ({exc}); "
                        "save it as UTF-8 CSV") from exc
    except csv.Error as exc:
        raise DataError(f"expected a well-formed CSV in {csv_path}, received a malformed line ({exc})") from exc
    return cols, rows


def _from_csv(csv_path: Path, val_fraction: float, seed: int) -> DataSet:
    cols, numbered = _read_csv_rows(csv_path)
    if not numbered:
        raise DataError(f"no rows in {csv_path}; {_LAYOUT_HELP}")
    for line, r in numbered:
        for key in ("path", "label"):
            if not r.get(key):
                raise DataError(
                    f"expected a {key} in every row of {csv_path}, received an empty {key} on line {line} "
                    f"({','.join(r.get(c, '') for c in cols)!r}); fill it in or remove the row"
                )
    rows = [r for _, r in numbered]
    classes = sorted({r["label"] for r in rows})
    _check_classes(classes, str(csv_path))
    index = {c: i for i, c in enumerate(classes)}
    paths = [str((csv_path.parent / r["path"]).resolve()) for r in rows]
    labels = [index[r["label"]] for r in rows]
    given = [bool(r.get("split")) for r in rows] if "split" in cols else []
    if any(given):
        if not all(given):  # one empty cell must not silently re-split everything (test images into training)
            line, r = next((ln, r) for ln, r in numbered if not r.get("split"))
            raise DataError(
                f"expected a split (train/val/test) in every row of {csv_path} or in none, received an empty split "
                f"on line {line} (path {r['path']!r}; {given.count(False)} of {len(rows)} rows have none); "
                "fill them in, or empty the whole column to split by --val-fraction"
            )
        splits = []
        for line, r in numbered:
            s = _SPLIT_ALIASES.get(r["split"].lower())
            if s is None:
                raise DataError(f"expected split train/val/test in {csv_path}, received '{r['split']}' on line {line}")
            splits.append(s)
    else:
        splits = stratified_split(labels, val_fraction, seed)
    seen: dict[str, tuple[int, int, str]] = {}
    for (line, _), p, lab, s in zip(numbered, paths, labels, splits):
        if p in seen and seen[p][1:] != (lab, s):
            first = seen[p][0]
            raise DataError(
                f"expected each image once in {csv_path}, received {p} on line {first} and again on line {line} "
                f"with a different label or split (an image in two splits leaks into the score); keep one row"
            )
        seen.setdefault(p, (line, lab, s))
    samples = tuple(Sample(p, lab, s) for p, lab, s in zip(paths, labels, splits))
    return DataSet(str(csv_path.parent), "csv", tuple(classes), samples)


def _split_dirs(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in _visible_dirs(root):
        s = _SPLIT_ALIASES.get(d.name.lower())
        if s and s not in found:
            found[s] = d
    return found if "train" in found else {}


def _from_split_folders(root: Path, dirs: dict[str, Path], val_fraction: float, seed: int) -> DataSet:
    per_split = {s: _class_folders(d) for s, d in dirs.items()}
    classes = sorted(per_split["train"])
    _check_classes(classes, str(dirs["train"]))
    index = {c: i for i, c in enumerate(classes)}
    samples: list[Sample] = []
    for s, per_class in per_split.items():
        unknown = sorted(set(per_class) - set(classes))
        if unknown:
            raise DataError(
                f"expected the classes of {dirs['train']} in {dirs[s]}, found extra: {', '.join(unknown)}"
            )
        for c in sorted(per_class):
            samples += [Sample(os.path.abspath(p), index[c], s) for p in per_class[c]]
    if "val" not in per_split:  # only train/ (and maybe test/): carve val out of train
        train = [s for s in samples if s.split == "train"]
        rest = [s for s in samples if s.split != "train"]
        splits = stratified_split([s.label for s in train], val_fraction, seed)
        samples = [replace(s, split=sp) for s, sp in zip(train, splits)] + rest
    return DataSet(str(root), "split-folders", tuple(classes), tuple(samples))


def _from_class_folders(root: Path, val_fraction: float, seed: int) -> DataSet:
    per_class = _class_folders(root)
    classes = sorted(per_class)
    _check_classes(classes, str(root))
    paths = [os.path.abspath(p) for c in classes for p in per_class[c]]
    labels = [i for i, c in enumerate(classes) for _ in per_class[c]]
    splits = stratified_split(labels, val_fraction, seed)
    samples = tuple(Sample(p, lab, s) for p, lab, s in zip(paths, labels, splits))
    return DataSet(str(root), "class-folders", tuple(classes), samples)


def scan(data: str | os.PathLike[str], val_fraction: float = 0.2, seed: int = 0) -> DataSet:
    """Detect the layout of ``data`` and list its samples (no decoding)."""
    text = str(data)
    if text.startswith("tfds:"):
        raise DataError(
            f"'{text}' is a TensorFlow Datasets name; expected a folder or CSV here "
            "(tfds:NAME is read by `edgeport build`, which needs the [train] extra)"
        )
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"expected a data folder or CSV, but '{text}' does not exist; {_LAYOUT_HELP}")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"expected a folder or a .csv file, received the file {text}; {_LAYOUT_HELP}")
        return _from_csv(path.resolve(), val_fraction, seed)
    if (path / "split.csv").is_file():
        return _from_csv((path / "split.csv").resolve(), val_fraction, seed)
    dirs = _split_dirs(path)
    if dirs and _class_folders(dirs["train"]):
        return _from_split_folders(path.resolve(), dirs, val_fraction, seed)
    return _from_class_folders(path.resolve(), val_fraction, seed)


def _check_one(path: str) -> str | None:
    try:
        load_rgb(path)
        return None
    except ImageDecodeError as exc:
        return str(exc)


def drop_unreadable(ds: DataSet, workers: int | None = None) -> DataSet:
    """Decode every image once; return ``ds`` without the unreadable ones.

    Skipped files are kept in ``DataSet.skipped`` as (path, reason). Raises
    DataError if a class or the training split ends up empty.
    """
    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:
        reasons = list(pool.map(_check_one, [s.path for s in ds.samples]))
    keep = tuple(s for s, r in zip(ds.samples, reasons) if r is None)
    skipped = ds.skipped + tuple((s.path, r) for s, r in zip(ds.samples, reasons) if r is not None)
    if not keep:
        raise DataError(f"none of the {len(ds.samples)} images under {ds.root} could be decoded")
    present = Counter(s.label for s in keep if s.split == "train")
    missing = [c for i, c in enumerate(ds.classes) if present[i] == 0]
    if missing:
        raise DataError(
            f"expected training images for every class, but none are readable for: {', '.join(missing)}"
        )
    return replace(ds, samples=keep, skipped=skipped)


def write_split_csv(ds: DataSet, path: str | os.PathLike[str]) -> None:
    """Write the samples as ``path,label,split`` (absolute paths), atomically."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["path", "label", "split"])
    for s in ds.samples:
        w.writerow([s.path, ds.classes[s.label], s.split])
    atomic_write_text(path, buf.getvalue())
