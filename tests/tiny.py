"""Tiny real models for tests: a synthetic image set, a trained run, an export.

Used by the session fixtures in conftest.py and by ``.ci/run``, which exports
once with TensorFlow and then runs the runtime tests in a TensorFlow-free
Raspberry Pi-like environment (``python tests/tiny.py OUT``).
"""

from __future__ import annotations

import sys
from pathlib import Path

TINY_IMAGE_SIZE = 32


def make_tiny_data(root: Path, per_class: int = 16) -> Path:
    from edgeport.synthetic import make_dataset

    return make_dataset(root, per_class=per_class, size=48, seed=0)


def make_tiny_run(root: Path) -> Path:
    """Train the tiny backbone for a few epochs on synthetic shapes.

    The conv head's Dense has 2*2*64*5 = 1280 weights (TFLite quantizes tensors of >= 1024), so
    the dynamic scheme really holds a quantized FULLY_CONNECTED, which the Pi job loads in
    tflite-runtime.
    """
    from edgeport.build import BuildConfig, train

    data = make_tiny_data(root / "data")
    cfg = BuildConfig(
        data=str(data), out=str(root / "run"), backbone="tiny", weights="none", head="conv",
        image_size=TINY_IMAGE_SIZE, epochs=3, fine_tune_epochs=1, batch_size=16, seed=0,
    )
    return Path(train(cfg).run_dir)


def assert_exported(result, schemes: tuple[str, ...] | None = None) -> None:
    """Every scheme of an export is ok: one that failed its budget (moved to failed/) or was unsupported would
    silently turn the tests that need its file into skips, so a fixture export that is not whole fails here."""
    bad = [f"{a.scheme}: {a.status} ({a.reason})" for a in result.artifacts if not a.ok]
    assert not bad, f"the test fixture export in {result.out_dir} is not whole: " + "; ".join(bad)
    if schemes is not None:
        assert sorted(a.scheme for a in result.artifacts) == sorted(schemes), [a.scheme for a in result.artifacts]


def make_tiny_export(run_dir: Path, out: Path) -> Path:
    """Export every scheme of a tiny run with few calibration/verify images; every scheme must be ok."""
    from edgeport.export import ExportConfig, export
    from edgeport.schemes import ALL_SCHEMES

    result = export(ExportConfig(run_dir=str(run_dir), out=str(out), calibration_samples=16, verify_samples=16))
    assert_exported(result, tuple(ALL_SCHEMES))
    return out


#: exports of the tiny run made wrong on purpose, for `edgeport check` (name -> how the run is changed)
MISMATCHED = {"nearest": "trained with area resizing, exported claiming nearest",
              "swapped": "two labels of labels.txt swapped after training"}


def make_mismatched_exports(run_dir: Path, root: Path) -> dict[str, Path]:
    """root/export-nearest and root/export-swapped: fp32 and int8 of the tiny run with a wrong contract."""
    import shutil

    import yaml

    from edgeport.export import ExportConfig, export

    out = {}
    for name in MISMATCHED:
        run = root / f"run-{name}"
        shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("checkpoints", "export*"))
        if name == "nearest":
            cfg = yaml.safe_load((run / "config.yaml").read_text())
            cfg["resize"] = "nearest"
            (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        else:
            labels = (run / "labels.txt").read_text().split()
            labels[0], labels[1] = labels[1], labels[0]
            (run / "labels.txt").write_text("\n".join(labels) + "\n")
        out[name] = root / f"export-{name}"
        assert_exported(export(ExportConfig(run_dir=str(run), out=str(out[name]), schemes=("fp32", "int8"),
                                            calibration_samples=16, verify_samples=16, progress=False)),
                        ("fp32", "int8"))
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1])
    run_dir = make_tiny_run(target / "work")
    make_tiny_export(run_dir, target / "export")
    make_mismatched_exports(run_dir, target)
    print(target / "export")
