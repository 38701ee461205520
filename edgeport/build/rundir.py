"""The run directory's bookkeeping that needs no TensorFlow: overwrite/resume checks, checkpoint state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeport.build.config import BuildConfig
from edgeport.config import to_dict
from edgeport.errors import ConfigError
from edgeport.files import check_out_folder

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
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # cannot happen with atomic writes, but say so clearly
        raise ConfigError(f"expected a JSON checkpoint state in {path}, it is damaged ({exc}); start a new run") from exc
    ok = (isinstance(state, dict) and all(isinstance(state.get(k), int) and not isinstance(state.get(k), bool)
                                          for k in ("phase", "epoch"))
          and all(isinstance(state.get(k), str) and state.get(k) and "/" not in state[k] and "\\" not in state[k]
                  for k in ("weights", "optimizer"))
          and isinstance(state.get("history"), list))
    if not ok:
        raise ConfigError(f"expected a checkpoint state with phase, epoch, weights, optimizer and history in {path}, "
                          f"received {str(state)[:120]}; start a new run with another --out")
    missing = [state[k] for k in ("weights", "optimizer") if not (ckdir / state[k]).is_file()]
    if missing and not state.get("done"):
        raise ConfigError(f"expected the checkpoint files {', '.join(missing)} that {path} names, found none; "
                          "the run directory is incomplete: start a new run with another --out")
    return state


def check_out_dir(cfg: BuildConfig) -> None:
    """Refuse to overwrite a run unless resuming; when resuming, the settings must match.

    Also refuses an --out that is a file or sits where this user cannot write,
    and a damaged state.json or config.yaml when resuming.
    """
    out = Path(cfg.out).expanduser().resolve()
    check_out_folder(out, "for the run")
    state = out / "checkpoints" / STATE_FILE
    if not cfg.resume and ((out / "model.keras").exists() or state.exists()):
        raise ConfigError(f"expected a new --out, but {out} already holds a run; pass --resume to continue it "
                          "or choose another --out")
    if cfg.resume:
        if state.is_file():
            read_state(out / "checkpoints")  # a damaged state.json fails now, before anything is written
        _check_same_run(out, cfg)


def nothing_to_resume(cfg: BuildConfig) -> bool:
    """True when --resume was given but --out holds no interrupted run (no checkpoints/state.json)."""
    return bool(cfg.resume) and not (Path(cfg.out).expanduser().resolve() / "checkpoints" / STATE_FILE).is_file()


def _check_same_run(out: Path, cfg: BuildConfig) -> None:
    stored_path = out / "config.yaml"
    if not stored_path.is_file():
        return
    import yaml

    try:
        stored = yaml.safe_load(stored_path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"expected the run's settings in {stored_path}, could not read them "
                          f"({str(exc).splitlines()[0]}); start a new run with another --out") from exc
    if not isinstance(stored, dict):
        raise ConfigError(f"expected a mapping of settings in {stored_path}, received {type(stored).__name__}; "
                          "start a new run with another --out")
    now = to_dict(cfg)
    defaults = to_dict(BuildConfig())  # a key an older run did not record had the default value
    was = {k: stored.get(k, defaults.get(k)) for k in SAME_RUN_FIELDS}
    diff = [f"{k}: {was[k]!r} -> {now.get(k)!r}" for k in SAME_RUN_FIELDS if was[k] != now.get(k)]
    if diff:
        raise ConfigError(
            f"expected --resume with the settings of the run in {out}, received different ones "
            f"({'; '.join(diff)}); use the same flags or a new --out"
        )
