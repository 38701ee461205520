"""Helpers for the build tests (imported by them; not a test module)."""

from __future__ import annotations

from pathlib import Path


def tiny_config(data: Path | str, out: Path | str, **kw):
    """A seconds-fast BuildConfig (tiny backbone, 32 px, no progress output)."""
    from edgeport.build import BuildConfig

    base = dict(data=str(data), out=str(out), backbone="tiny", weights="none", head="gap", image_size=32,
                epochs=2, fine_tune_epochs=1, batch_size=16, seed=0, progress="off")
    base.update(kw)
    return BuildConfig(**base)
