"""What the TFLite interpreters share (LiteRT, tflite-runtime and TensorFlow's have the same API)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any

from edgeport.errors import ConfigError, ModelError
from edgeport.metadata import check_tflite
from edgeport.runtime.engines.base import Engine, TensorInfo


class TFLiteEngine(Engine):
    """Shared code of the TFLite interpreters (they have the same API)."""

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
        except MemoryError as exc:  # e.g. a damaged dynamic batch dimension (tflite-runtime: std::bad_alloc)
            self._interp = None
            raise ModelError(f"{self.name} could not load {self.model_path}: its tensors need more memory than "
                             f"this machine gives ({exc}); a damaged file (e.g. a tensor's shape) or a model too "
                             "large for this device: copy it again or re-export it smaller") from exc
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
        import numpy as np

        scale, zp = d.get("quantization", (0.0, 0))
        shape = tuple(int(v) for v in d["shape"])
        shape = (1, *shape[1:]) if shape and shape[0] <= 0 else shape
        return TensorInfo(d["name"], shape, np.dtype(d["dtype"]), float(scale), int(zp))

    def invoke(self, x: Any) -> Any:
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



def _check_flatbuffer(path: Path) -> None:
    """:func:`edgeport.metadata.check_tflite` on the file, mapped rather than read (models can be large)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            check_tflite(view)
    except (OSError, ValueError) as exc:  # unreadable, or empty (mmap of 0 bytes)
        raise ModelError(f"expected a readable, non-empty TFLite file, could not read {path} ({exc})") from exc


