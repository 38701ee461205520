"""The run directory `edgeport build` writes, and its one reader (no TensorFlow).

    RUN_DIR/model.keras        the trained model (float32 layers)
            labels.txt         one class per line, in output order
            config.yaml        the resolved build config (image_size, resize, backbone, ...)
            data_split.csv     path,label,split of every image the run used
            metrics.json       val figures and the training runtime (dtype policy, devices)
            checkpoints/       state.json and the checkpoint files of --resume

Export, pipeline and bench read a run through :func:`read_run`; build writes
these names (``edgeport.build``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from edgeport.contract import DEFAULT_RESIZE, RESIZE_METHODS, InputContract
from edgeport.data import DataSet, Sample, scan
from edgeport.errors import ConfigError, DataError, ModelError
from edgeport.files import sha256_file

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "data_split.csv"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class RunInfo:
    """What the later stages need from a run directory."""

    run_dir: Path
    model_path: Path
    labels: tuple[str, ...]
    contract: InputContract
    backbone: str
    config: dict
    source_sha256: str
    split: DataSet | None

    def samples(self, split: str) -> list[Sample]:
        """The run's samples of one split, labels re-indexed to ``labels.txt``."""
        if self.split is None:
            return []
        index = {name: i for i, name in enumerate(self.labels)}
        out = []
        for s in self.split.split(split):
            name = self.split.classes[s.label]
            if name not in index:
                raise DataError(
                    f"expected the labels of {self.run_dir / LABELS_FILE} in {SPLIT_FILE}, "
                    f"received '{name}'; re-run `edgeport build` or fix the CSV"
                )
            out.append(Sample(s.path, index[name], s.split))
        return out

    def held_out(self) -> tuple[str, list[Sample]] | None:
        """The split that holds images training did not see (val, else test) and its samples, or None."""
        split = next((s for s in ("val", "test") if self.samples(s)), None)
        return (split, self.samples(split)) if split else None

    @property
    def metrics(self) -> dict:
        """metrics.json as written by build ({} when absent or unreadable)."""
        try:
            data = json.loads((self.run_dir / METRICS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"expected a YAML mapping in {path}, could not parse it ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"expected a YAML mapping in {path}, received {type(data).__name__}")
    return data


def _image_size(config: dict, where: Path) -> tuple[int, int] | None:
    size = config.get("image_size")
    if size is None:
        return None
    values = list(size) if isinstance(size, (list, tuple)) else [size]
    if (not values or len(values) > 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 65536 for v in values)):
        raise ConfigError(f"expected image_size in {where} to be a positive integer (or [height, width]), "
                          f"received {size!r}; fix the file or re-run `edgeport build`")
    return values[0], values[-1]


def read_run(run_dir: str | Path) -> RunInfo:
    """Check and read ``run_dir`` as `edgeport build` writes it (model.keras, labels.txt, config.yaml, data_split.csv)."""
    root = Path(run_dir).expanduser()
    if not root.is_dir():
        raise ConfigError(f"expected a run directory written by `edgeport build`, but {root} is not a folder")
    model_path = root / MODEL_FILE
    if not model_path.is_file():
        raise ModelError(f"expected {model_path} (written by `edgeport build`), but it does not exist")
    labels_path = root / LABELS_FILE
    if not labels_path.is_file():
        raise DataError(f"expected {labels_path} with one class per line, but it does not exist")
    labels = tuple(line.strip() for line in labels_path.read_text().splitlines() if line.strip())
    if len(labels) < 2:
        raise DataError(f"expected at least 2 labels in {labels_path}, received {len(labels)}")
    config = _read_yaml(root / CONFIG_FILE)
    size = _image_size(config, root / CONFIG_FILE)
    method = str(config.get("resize") or config.get("resize_method") or DEFAULT_RESIZE)
    if method not in RESIZE_METHODS:
        raise ConfigError(f"expected resize one of {', '.join(RESIZE_METHODS)} in {root / CONFIG_FILE}, received '{method}'")
    contract = InputContract(height=size[0], width=size[1], resize=method) if size else None
    split_csv = root / SPLIT_FILE
    split = scan(split_csv) if split_csv.is_file() else None
    if split is None:
        log.warning("%s has no data_split.csv: pass --calibration-data; verification is skipped", root)
    return RunInfo(
        run_dir=root.resolve(),
        model_path=model_path,
        labels=labels,
        contract=contract,  # type: ignore[arg-type]  # filled from the model when None
        backbone=str(config.get("backbone", "")),
        config=config,
        source_sha256=sha256_file(model_path),
        split=split,
    )
