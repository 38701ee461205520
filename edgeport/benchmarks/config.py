"""The configs of the benchmarks stage: `edgeport bench` (BenchConfig) and `edgeport check` (CheckConfig)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeport.errors import ConfigError
from edgeport.intervals import CONFIDENCE, check_confidence
from edgeport.progress import as_mode

SPLITS = ("val", "test", "train", "all")


@dataclass(frozen=True)
class BenchConfig:
    """What ``edgeport bench`` measures and where it writes.

    ``engines``: "auto" (the preferred installed engine per artifact), "all"
    (every engine that reads the artifact's format, installed or not: missing
    ones become "not available" rows) or a comma-separated list of names.
    ``data``: a labelled image set (any layout ``edgeport.data.scan`` reads);
    None uses the ``data_split.csv`` of the run the export came from.
    ``max_seconds`` caps each variant's timed loop (the runs done are reported).
    ``accuracy_max_seconds`` caps each artifact x engine's accuracy pass: images
    are taken in a seeded random order, so a capped pass scores a random
    subset, and its Δtop-1/agreement are computed on the images both it and
    the fp32 reference saw (the count is reported).
    """

    export_dir: str
    data: str | None = None
    split: str = "val"
    limit: int | None = None
    engines: str = "auto"
    threads: tuple[int, ...] = (1,)
    warmup: int = 10
    runs: int = 100
    max_seconds: float = 20.0
    accuracy_max_seconds: float = 300.0
    latency_images: int = 8
    accuracy: bool = True
    schemes: tuple[str, ...] = ()
    out: str | None = None
    timeout: float = 1800.0
    device_name: str | None = None
    confidence: float = CONFIDENCE  #: level of the intervals reported and of the --max-drop gate's decision
    undecided: str = "pass"  #: a --max-drop not decided at this many images: pass (with a note) or fail
    progress: bool | str = "auto"  #: auto | bar | line | off (True: auto, False: off)

    def __post_init__(self) -> None:
        object.__setattr__(self, "progress", as_mode(self.progress))
        check_confidence(self.confidence)
        if self.undecided not in ("pass", "fail"):
            raise ConfigError(f"expected --undecided pass or fail, received '{self.undecided}'")
        if self.split not in SPLITS:
            raise ConfigError(f"expected --split one of {', '.join(SPLITS)}, received '{self.split}'")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"expected --limit >= 1, received {self.limit}")
        if not self.threads or any(int(t) < 1 for t in self.threads):
            raise ConfigError(f"expected --threads as positive integers like 1,2,4, received {self.threads}")
        if self.warmup < 0:
            raise ConfigError(f"expected --warmup >= 0, received {self.warmup}")
        if self.runs < 1:
            raise ConfigError(f"expected --runs >= 1, received {self.runs}")
        if self.max_seconds <= 0:
            raise ConfigError(f"expected --max-seconds > 0, received {self.max_seconds}")
        if self.accuracy_max_seconds <= 0:
            raise ConfigError(f"expected --accuracy-max-seconds > 0, received {self.accuracy_max_seconds}")
        if self.latency_images < 1:
            raise ConfigError(f"expected latency_images >= 1, received {self.latency_images}")
        if self.timeout <= 0:
            raise ConfigError(f"expected --timeout > 0 seconds, received {self.timeout}")


@dataclass(frozen=True)
class CheckConfig:
    """What ``edgeport check`` runs and how strict it is."""

    export_dir: str
    golden: str | None = None  #: a golden set folder (default: EXPORT/golden)
    engines: str = "auto"  #: auto | all | a comma-separated list (as in bench)
    schemes: tuple[str, ...] = ()
    threads: int | None = None
    #: agreement with Keras may be this many points below what export measured before the check fails, decided
    #: on the interval of the difference (:mod:`edgeport.intervals`): on 32 images one image is no evidence
    tolerance_pts: float = 0.0
    #: the largest probability difference may exceed export's by at most this much
    prob_tolerance: float = 0.1
    confidence: float = CONFIDENCE  #: level of the interval the agreement is decided on
    undecided: str = "pass"  #: a difference not decided on the golden images: pass (with a note) or fail
    progress: bool | str = "auto"  #: auto | bar | line | off (True: auto, False: off)

    def __post_init__(self) -> None:
        object.__setattr__(self, "progress", as_mode(self.progress))
        if self.tolerance_pts < 0 or self.prob_tolerance < 0:
            raise ConfigError(f"expected tolerances >= 0, received --tolerance-pts {self.tolerance_pts} "
                              f"and --prob-tolerance {self.prob_tolerance}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"expected --threads >= 1, received {self.threads}")
        check_confidence(self.confidence)
        if self.undecided not in ("pass", "fail"):
            raise ConfigError(f"expected --undecided pass or fail, received '{self.undecided}'")
