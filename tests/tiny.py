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


def make_tiny_export(run_dir: Path, out: Path) -> Path:
    """Export every scheme of a tiny run with few calibration/verify images."""
    from edgeport.export import ExportConfig, export

    export(ExportConfig(run_dir=str(run_dir), out=str(out), calibration_samples=16, verify_samples=16))
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1])
    make_tiny_export(make_tiny_run(target / "work"), target / "export")
    print(target / "export")
