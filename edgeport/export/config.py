"""The export stage's one config: which schemes, where, and how to calibrate/verify."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeport.errors import ConfigError
from edgeport.export.int8.budget import UNDECIDED_ACTIONS, Budget
from edgeport.export.int8.ranges import RANGE_RULES, range_rules
from edgeport.intervals import CONFIDENCE, check_confidence
from edgeport.progress import as_mode
from edgeport.schemes import ALL_SCHEMES, parse_schemes

#: Input/output tensor types accepted for the full-integer int8 TFLite model.
IO_DTYPES = ("uint8", "int8", "float32")

#: how int8 activation ranges are set from the calibration images (``--calibration-method``): ``auto``
#: starts from min/max and, when full int8 misses the budget, lets the search try the scheme's other rules
#: (:attr:`~edgeport.schemes.SchemeSpec.range_rules`); a named rule is used alone
#: (:mod:`edgeport.export.int8.ranges`; onnx-int8: onnxruntime's calibrators)
CALIBRATION_METHODS = ("auto", *RANGE_RULES)


@dataclass(frozen=True)
class ExportConfig:
    """Options of ``edgeport export`` (defaults < config file < flags).

    ``schemes`` None means all of :data:`ALL_SCHEMES`; ``out`` None means
    ``RUN_DIR/export``. ``max_drop`` (top-1 points) fails schemes whose
    accuracy falls further than that below the Keras model's.
    """

    run_dir: str
    out: str | None = None
    schemes: tuple[str, ...] | None = None
    io_dtype: str = "uint8"
    opset: int = 17
    calibration_samples: int = 200
    calibration_data: str | None = None
    seed: int = 0
    #: validation images (None: all of them); with a searchable scheme half choose int8 fallbacks, half report
    verify_samples: int | None = None
    verify_seconds: float = 60.0  #: at most this long verifying one scheme (slow kernels: int16x8); a stratified prefix
    golden_images: int = 32  #: images of the golden set written into the export (0: none)
    max_drop: float | None = None  #: the budget: top-1 points below Keras (all lossy schemes)
    min_agreement: float | None = None  #: the budget: % top-1 agreement with Keras
    min_decided_agreement: float | None = None  #: the budget: % agreement where Keras is decided
    confidence: float = CONFIDENCE  #: level of every interval, and of the budget's decision
    undecided: str = "pass"  #: a budget not decided at this many images: pass (with a warning) or fail
    search: bool = True  #: int8/onnx-int8 missing the budget: search for the cheapest float fallback
    max_evals: int = 32  #: candidate evaluations per searched scheme
    max_slowdown: float | None = 1.25  #: a fallback's p50 may be at most this times full int8's (None: any)
    selection_fraction: float = 0.5  #: validation images that choose (the rest report)
    calibration_method: str = "auto"  #: int8 / onnx-int8 activation ranges: auto, minmax, percentile, entropy, mse
    diagnose: bool = False  #: write EXPORT/quantization/ (sensitivity ranking, per-layer table) in any case
    qat: bool = False  #: post-training int8 missing the budget: also fine-tune under simulated int8 (QAT)
    qat_epochs: int = 2  #: epochs of the QAT fine-tune over the run's train split
    qat_lr: float = 1e-5  #: its learning rate (Adam; 1e-4 took MobileNetV2 away from the model it distils)
    resume: bool = False  #: continue an interrupted QAT fine-tune from its last epoch (RUN_DIR/checkpoints/qat)
    tolerance: float = 1e-4
    threads: int | None = None
    progress: bool | str = "auto"  #: auto | bar | line | off (True: auto, False: off)

    def __post_init__(self) -> None:
        object.__setattr__(self, "progress", as_mode(self.progress))
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"expected --threads >= 1, received {self.threads}")
        if self.schemes is not None:
            object.__setattr__(self, "schemes", parse_schemes(self.schemes))
        if self.io_dtype not in IO_DTYPES:
            raise ConfigError(f"expected --io-dtype one of {', '.join(IO_DTYPES)}, received '{self.io_dtype}'")
        if not 13 <= int(self.opset) <= 21:
            raise ConfigError(f"expected --opset between 13 and 21 (onnxruntime/tf2onnx range), received {self.opset}")
        for name in ("calibration_samples", "verify_samples"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ConfigError(f"expected --{name.replace('_', '-')} >= 1, received {getattr(self, name)}")
        if not self.verify_seconds > 0:
            raise ConfigError(f"expected --verify-seconds > 0, received {self.verify_seconds}")
        check_confidence(self.confidence)
        if self.undecided not in UNDECIDED_ACTIONS:
            raise ConfigError(f"expected --undecided one of {', '.join(UNDECIDED_ACTIONS)}, received '{self.undecided}'")
        if int(self.golden_images) < 0:
            raise ConfigError(f"expected --golden-images >= 0, received {self.golden_images}")
        Budget(self.max_drop, self.min_agreement, self.min_decided_agreement)  # checks the limits
        if self.max_slowdown is not None and self.max_slowdown < 1.0:
            raise ConfigError(f"expected --max-slowdown >= 1 (a factor of full int8's p50), received {self.max_slowdown}")
        if int(self.max_evals) < 1:
            raise ConfigError(f"expected --max-evals >= 1 candidate evaluations, received {self.max_evals}")
        if not 0 < self.selection_fraction < 1:
            raise ConfigError(f"expected selection_fraction between 0 and 1, received {self.selection_fraction}")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ConfigError(f"expected --calibration-method one of {', '.join(CALIBRATION_METHODS)}, "
                              f"received '{self.calibration_method}'")
        for scheme in self.scheme_list:
            range_rules(scheme, self.calibration_method)  # a rule the scheme lacks: said before any work
        if int(self.qat_epochs) < 1:
            raise ConfigError(f"expected --qat-epochs >= 1, received {self.qat_epochs}")
        if not 0 < float(self.qat_lr) < 1:
            raise ConfigError(f"expected --qat-lr between 0 and 1 (e.g. 1e-4), received {self.qat_lr}")
        if self.tolerance <= 0:
            raise ConfigError(f"expected a positive tolerance, received {self.tolerance}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.run_dir) / "export"

    @property
    def scheme_list(self) -> tuple[str, ...]:
        return tuple(self.schemes) if self.schemes else ALL_SCHEMES
