"""The run directory's bookkeeping that needs no TensorFlow: overwrite/resume checks, checkpoint state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeport.build.config import BuildConfig
from edgeport.config import to_dict
from edgeport.errors import ConfigError

STATE_FILE = "state.json"
#: Fields that must match the stored config.yaml when resuming.
SAME_RUN_FIELDS = ("data", "backbone", "weights", "head", "image_size", "resize", "num_filters", "dense_units",
                   "dropout", "val_fraction", "seed")


def read_state(ckdir: Path) -> dict[str, Any] | None:
    """checkpoints/state.json as a dict, or None when there is none."""
    path = ckdir / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:  # cannot happen with atomic writes, but say so clearly
        raise ConfigError(f"expected a JSON checkpoint state in {path}, it is damaged ({exc}); start a new run") from exc


def check_out_dir(cfg: BuildConfig) -> None:
    """Refuse to overwrite a run unless resuming; when resuming, the settings must match."""
    out = Path(cfg.out).expanduser().resolve()
    if not cfg.resume and ((out / "model.keras").exists() or (out / "checkpoints" / STATE_FILE).exists()):
        raise ConfigError(f"expected a new --out, but {out} already holds a run; pass --resume to continue it "
                          "or choose another --out")
    if cfg.resume:
        _check_same_run(out, cfg)


def _check_same_run(out: Path, cfg: BuildConfig) -> None:
    stored_path = out / "config.yaml"
    if not stored_path.is_file():
        return
    import yaml

    stored = yaml.safe_load(stored_path.read_text()) or {}
    now = to_dict(cfg)
    defaults = to_dict(BuildConfig())  # a key an older run did not record had the default value
    was = {k: stored.get(k, defaults.get(k)) for k in SAME_RUN_FIELDS}
    diff = [f"{k}: {was[k]!r} -> {now.get(k)!r}" for k in SAME_RUN_FIELDS if was[k] != now.get(k)]
    if diff:
        raise ConfigError(
            f"expected --resume with the settings of the run in {out}, received different ones "
            f"({'; '.join(diff)}); use the same flags or a new --out"
        )
