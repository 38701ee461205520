"""Inference engines behind one small interface, chosen by name or by file type.

    litert          ai_edge_litert.interpreter (first choice for .tflite)
    tflite-runtime  tflite_runtime.interpreter (Raspberry Pi; numpy<2, Python<=3.11)
    onnxruntime     onnxruntime.InferenceSession (.onnx; TensorRT > CUDA > CPU providers)
    tensorflow      tf.lite.Interpreter, only when asked for by name (never a fallback)

Nothing here imports an engine package at module import time; TensorFlow is
imported only inside :class:`TensorFlowEngine`.
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from edgeport._lazy import require
from edgeport.errors import ConfigError, MissingDependencyError, ModelError
from edgeport.metadata import check_tflite
from edgeport.registry import Registry

ENGINES: Registry[type["Engine"]] = Registry("engine")

#: onnxruntime execution providers, best first (the Jetson path: TensorRT, CUDA, then CPU).
ONNX_PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)

_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output; ``scale`` is 0.0 when the tensor is not quantized."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)

    def to_dict(self) -> dict:
        """JSON-ready: name, shape, dtype name, scale, zero_point."""
        return {"name": self.name, "shape": [int(v) for v in self.shape], "dtype": np.dtype(self.dtype).name,
                "scale": float(self.scale), "zero_point": int(self.zero_point)}


def _installed(module: str) -> bool:
    """True when ``module`` can be found, without importing it."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _numpy_major() -> int:
    return int(np.__version__.split(".")[0])


class Engine:
    """Base class: one loaded model, batch 1, raw tensors in and out."""

    name: ClassVar[str] = ""
    #: file endings this engine loads
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: the module whose presence makes the engine available
    module: ClassVar[str] = ""

    def __init__(self, model_path: str | os.PathLike[str], threads: int | None = None) -> None:
        self.model_path = Path(model_path)
        self.threads = threads
        if not self.model_path.is_file():
            raise ModelError(f"expected a model file, received '{model_path}' which does not exist")
        if self.suffixes and self.model_path.suffix.lower() not in self.suffixes:
            raise ModelError(
                f"engine '{self.name}' expected a {'/'.join(self.suffixes)} file, received "
                f"'{self.model_path.name}'; pick an engine for it with --engine "
                f"({', '.join(engines_for(self.model_path, only_available=False)) or 'none'})"
            )
        if threads is not None and threads < 1:
            raise ConfigError(f"expected --threads >= 1, received {threads}")
        self.input: TensorInfo
        self.output: TensorInfo

    # -- availability -----------------------------------------------------------------
    @classmethod
    def available(cls) -> bool:
        """True when the engine package is installed and usable here (never imports it)."""
        return _installed(cls.module)

    @classmethod
    def version(cls) -> str:
        """The engine package's version, or '' when it is not installed."""
        try:
            from importlib.metadata import PackageNotFoundError, version
        except ImportError:  # pragma: no cover - Python < 3.8
            return ""
        for dist in cls._distributions():
            try:
                return version(dist)
            except PackageNotFoundError:
                continue
        return ""

    @classmethod
    def _distributions(cls) -> tuple[str, ...]:
        return (cls.module.replace("_", "-"),)

    # -- running ----------------------------------------------------------------------
    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Run one batch-1 tensor already in the input's dtype/shape; the raw output."""
        raise NotImplementedError

    def close(self) -> None:
        """Free the model (idempotent)."""

    @property
    def closed(self) -> bool:
        return False

    def _check_single_io(self, n_inputs: int, n_outputs: int) -> None:
        if n_inputs != 1 or n_outputs != 1:
            raise ModelError(
                f"expected a classifier with one input and one output, received "
                f"{n_inputs} inputs and {n_outputs} outputs in {self.model_path.name}"
            )

    def _check_input(self, x: np.ndarray) -> None:
        if self.closed:
            raise ModelError(f"{self.name} engine for {self.model_path.name} is closed; open it again")
        if x.dtype != self.input.dtype or tuple(x.shape) != self.input.shape:
            raise ModelError(
                f"{self.name} expected an input tensor {self.input.dtype}{list(self.input.shape)}, "
                f"received {x.dtype}{list(x.shape)}; prepare it with Classifier.prepare()"
            )

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.model_path)!r}, threads={self.threads})"


class _TFLiteEngine(Engine):
    """Shared code of the three TFLite interpreters (they have the same API)."""

    suffixes = (".tflite",)

    def _interpreter_class(self) -> Any:
        raise NotImplementedError

    def __init__(self, model_path: str | os.PathLike[str], threads: int | None = None, **opts: Any) -> None:
        super().__init__(model_path, threads)
        if opts:
            raise ConfigError(f"engine '{self.name}' takes no options, received {sorted(opts)}")
        Interpreter = self._interpreter_class()
        _check_flatbuffer(self.model_path)  # an interpreter trusts the file's offsets; a damaged one can crash it
        try:
            self._interp = Interpreter(model_path=str(self.model_path), num_threads=threads)
            self._interp.allocate_tensors()
            # a damaged file can load and still fail here (e.g. a tensor name that is not UTF-8)
            ins, outs = self._interp.get_input_details(), self._interp.get_output_details()
        except (ValueError, RuntimeError, KeyError, IndexError) as exc:
            raise ModelError(f"{self.name} could not load {self.model_path}: {exc}; the file is damaged or "
                             "not a model this engine runs: copy it again or re-export it") from exc
        self._check_single_io(len(ins), len(outs))
        self.input, self.output = self._info(ins[0]), self._info(outs[0])
        self._in_index, self._out_index = ins[0]["index"], outs[0]["index"]
        if self.input.shape[0] != 1:  # e.g. a dynamic batch: fix it to 1
            self._interp.resize_tensor_input(self._in_index, [1, *self.input.shape[1:]])
            self._interp.allocate_tensors()
            self.input = TensorInfo(self.input.name, (1, *self.input.shape[1:]), self.input.dtype,
                                    self.input.scale, self.input.zero_point)

    @staticmethod
    def _info(d: dict) -> TensorInfo:
        scale, zp = d.get("quantization", (0.0, 0))
        shape = tuple(int(v) for v in d["shape"])
        shape = (1, *shape[1:]) if shape and shape[0] <= 0 else shape
        return TensorInfo(d["name"], shape, np.dtype(d["dtype"]), float(scale), int(zp))

    def invoke(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x)
        try:
            self._interp.set_tensor(self._in_index, x)
            self._interp.invoke()
            return self._interp.get_tensor(self._out_index)
        except (ValueError, RuntimeError) as exc:  # a kernel refusing a damaged model's parameters
            raise ModelError(f"{self.name} failed to run {self.model_path.name}: {exc}") from exc

    def close(self) -> None:
        self._interp = None

    @property
    def closed(self) -> bool:
        return self._interp is None


@ENGINES.register("litert")
class LiteRTEngine(_TFLiteEngine):
    """Google's LiteRT (``ai-edge-litert``), the maintained TFLite interpreter."""

    name = "litert"
    module = "ai_edge_litert"

    def _interpreter_class(self) -> Any:
        return require("ai_edge_litert.interpreter", "the litert engine").Interpreter


TFLITE_RUNTIME_NUMPY_FIX = (
    "tflite-runtime wheels are built against numpy 1.x and exist only for Python<=3.11; "
    "fix: make a venv with numpy<2 (python3.11 -m venv ~/tfl && ~/tfl/bin/pip install "
    "'numpy<2' tflite-runtime opencv-python-headless && ~/tfl/bin/pip install --no-deps edgeport), "
    "or use the litert engine (pip install ai-edge-litert), which supports numpy 2"
)


def _check_flatbuffer(path: Path) -> None:
    """:func:`edgeport.metadata.check_tflite` on the file, mapped rather than read (models can be large)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            check_tflite(view)
    except (OSError, ValueError) as exc:  # unreadable, or empty (mmap of 0 bytes)
        raise ModelError(f"expected a readable, non-empty TFLite file, could not read {path} ({exc})") from exc


def tflite_runtime_problem() -> str | None:
    """Why tflite-runtime cannot work in this environment, or None when it can."""
    py = sys.version_info
    if _numpy_major() >= 2:
        return (f"tflite-runtime needs numpy<2, but numpy {np.__version__} is installed; "
                f"{TFLITE_RUNTIME_NUMPY_FIX}")
    if (py.major, py.minor) > (3, 11):
        return (f"tflite-runtime needs Python<=3.11, but this is Python {py.major}.{py.minor}; "
                f"{TFLITE_RUNTIME_NUMPY_FIX}")
    return None


@ENGINES.register("tflite-runtime")
class TFLiteRuntimeEngine(_TFLiteEngine):
    """The standalone ``tflite-runtime`` wheel (Raspberry Pi OS, numpy<2 only)."""

    name = "tflite-runtime"
    module = "tflite_runtime"

    @classmethod
    def available(cls) -> bool:
        return _installed(cls.module) and tflite_runtime_problem() is None

    def _interpreter_class(self) -> Any:
        problem = tflite_runtime_problem()
        if problem:
            raise MissingDependencyError(problem)
        return require("tflite_runtime.interpreter", "the tflite-runtime engine").Interpreter


@ENGINES.register("tensorflow")
class TensorFlowEngine(_TFLiteEngine):
    """``tf.lite.Interpreter`` from full TensorFlow: only when asked for by name."""

    name = "tensorflow"
    module = "tensorflow"

    @classmethod
    def _distributions(cls) -> tuple[str, ...]:
        return ("tensorflow", "tensorflow-cpu", "tf-nightly")

    def _interpreter_class(self) -> Any:
        return require("tensorflow", "the tensorflow engine").lite.Interpreter


@ENGINES.register("onnxruntime")
class OnnxRuntimeEngine(Engine):
    """onnxruntime with the best execution providers present (or those asked for)."""

    name = "onnxruntime"
    module = "onnxruntime"
    suffixes = (".onnx",)

    @classmethod
    def _distributions(cls) -> tuple[str, ...]:
        return ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        threads: int | None = None,
        providers: Sequence[str] | str | None = None,
        trt_fp16: bool | None = None,
    ) -> None:
        """``providers``: names or "tensorrt,cuda,cpu" (default: best available);
        ``trt_fp16``: let TensorRT compute in fp16 (default: only for an fp16 model,
        e.g. model_fp16.onnx). TensorRT engines are cached next to the model in
        ``.trt-cache/``; the first run builds them (tens of seconds to minutes)."""
        super().__init__(model_path, threads)
        if trt_fp16 is None:
            trt_fp16 = "fp16" in self.model_path.name
        ort = require("onnxruntime", "the onnxruntime engine")
        self.providers = select_providers(providers, ort.get_available_providers())
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.model_path), sess_options=so,
                providers=[(p, provider_options(p, self.model_path, trt_fp16)) for p in self.providers])
            ins, outs = self._session.get_inputs(), self._session.get_outputs()
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelError(f"onnxruntime could not load {self.model_path}: {exc}; the file is damaged or "
                             "not a model onnxruntime runs: copy it again or re-export it") from exc
        self.providers = list(self._session.get_providers())
        self._check_single_io(len(ins), len(outs))
        self.input, self.output = self._info(ins[0]), self._info(outs[0])
        self._out_names = [outs[0].name]

    @staticmethod
    def _info(arg: Any) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in arg.shape)
        try:
            dtype = np.dtype(_ONNX_DTYPES[arg.type])
        except KeyError:
            raise ModelError(f"expected a numeric ONNX tensor, received {arg.type} for '{arg.name}'") from None
        return TensorInfo(arg.name, shape, dtype)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x)
        try:
            return self._session.run(self._out_names, {self.input.name: x})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types (Fail, RuntimeException)
            raise ModelError(f"onnxruntime failed to run {self.model_path.name}: {exc}") from exc

    def close(self) -> None:
        self._session = None

    @property
    def closed(self) -> bool:
        return self._session is None


def provider_options(provider: str, model_path: Path, trt_fp16: bool = False) -> dict[str, Any]:
    """Options per onnxruntime provider: TensorRT caches its engines next to the model."""
    if provider == "TensorrtExecutionProvider":
        return {"trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(model_path.parent / ".trt-cache"),
                "trt_fp16_enable": bool(trt_fp16)}
    return {}


def select_providers(asked: Sequence[str] | str | None, available: Sequence[str]) -> list[str]:
    """onnxruntime providers to use: those asked for (short names allowed) or the best present.

    ``asked`` may be "tensorrt,cuda,cpu" or full names; unknown or missing ones are an error.
    """
    if not asked:
        chosen = [p for p in ONNX_PROVIDER_PREFERENCE if p in available]
        return chosen or ["CPUExecutionProvider"]
    items = [s.strip() for s in asked.split(",")] if isinstance(asked, str) else list(asked)
    by_short = {p.lower().removesuffix("executionprovider"): p for p in available}
    chosen = []
    for item in filter(None, items):
        full = item if item in available else by_short.get(item.lower().removesuffix("executionprovider"))
        if full is None:
            raise ConfigError(
                f"onnxruntime provider '{item}' is not available here; expected one of "
                f"{', '.join(available)} (GPU providers need the onnxruntime-gpu build)"
            )
        chosen.append(full)
    return chosen


# --- factory and selection -----------------------------------------------------------

#: engines tried automatically for each file type, best first (never tensorflow).
AUTO_ORDER = {
    ".tflite": ("litert", "tflite-runtime"),
    ".onnx": ("onnxruntime",),
}


def create_engine(name: str, model_path: str | os.PathLike[str], threads: int | None = None, **opts: Any) -> Engine:
    """Load ``model_path`` with the engine called ``name`` (see :data:`ENGINES`)."""
    cls = ENGINES.get(name)
    if not cls.available() and name != "tflite-runtime":  # tflite-runtime explains itself
        hint = {"litert": "pip install ai-edge-litert", "onnxruntime": "pip install onnxruntime",
                "tensorflow": "pip install tensorflow"}.get(name, "")
        raise MissingDependencyError(
            f"engine '{name}' is not installed here; install it with: {hint}"
            f" (available engines: {', '.join(available_engines()) or 'none'})"
        )
    return cls(model_path, threads=threads, **opts)


def available_engines() -> list[str]:
    """Names of the engines usable in this environment (tensorflow included when installed)."""
    return [n for n in ENGINES.names() if ENGINES.get(n).available()]


def engines_for(path: str | os.PathLike[str], only_available: bool = True) -> list[str]:
    """Engines that load ``path`` automatically, best first; tensorflow is never listed."""
    order = AUTO_ORDER.get(Path(path).suffix.lower(), ())
    return [n for n in order if not only_available or ENGINES.get(n).available()]
