"""onnxruntime with the best execution providers present: TensorRT > CUDA > CPU (the Jetson path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from edgeport.errors import ConfigError, ModelError
from edgeport.runtime.engines.base import ENGINES, Engine, TensorInfo

#: onnxruntime execution providers, best first (the Jetson path: TensorRT, CUDA, then CPU).
ONNX_PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)

#: ONNX element types -> numpy dtype names
_ONNX_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}


@ENGINES.register("onnxruntime")
class OnnxRuntimeEngine(Engine):
    """onnxruntime with the best execution providers present (or those asked for)."""

    name = "onnxruntime"
    module = "onnxruntime"
    suffixes = (".onnx",)
    distributions = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")
    install = "pip install onnxruntime"
    install_note = "optional; on a Jetson use NVIDIA's onnxruntime-gpu wheel"
    preference = 30
    probe_calls = {"providers": "get_available_providers"}

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
        ort = self.import_module()
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
        except Exception as exc:
            raise ModelError(f"onnxruntime could not load {self.model_path}: {exc}; the file is damaged or "
                             "not a model onnxruntime runs: copy it again or re-export it") from exc
        self.providers = list(self._session.get_providers())
        self._check_single_io(len(ins), len(outs))
        self.input, self.output = self._info(ins[0]), self._info(outs[0])
        self._out_names = [outs[0].name]

    @staticmethod
    def _info(arg: Any) -> TensorInfo:
        import numpy as np

        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in arg.shape)
        try:
            dtype = np.dtype(_ONNX_DTYPES[arg.type])
        except KeyError:
            raise ModelError(f"expected a numeric ONNX tensor, received {arg.type} for '{arg.name}'") from None
        return TensorInfo(arg.name, shape, dtype)

    def invoke(self, x: Any) -> Any:
        self._check_input(x)
        try:
            return self._session.run(self._out_names, {self.input.name: x})[0]
        except Exception as exc:
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


