"""What every engine is: the :class:`Engine` interface, the :data:`ENGINES` registry and the
factory. The engines themselves live one per module beside this one and describe themselves fully
(file types, install hint, doctor's probe, preference order), so adding one touches only its module.

Light at import (no numpy, no engine package): the CLI builds its help from :data:`ENGINES`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from edgeport.errors import ConfigError, MissingDependencyError, ModelError
from edgeport.registry import Registry

ENGINES: Registry[type["Engine"]] = Registry("engine")

@dataclass(frozen=True)
class TensorInfo:
    """One model input or output; ``scale`` is 0.0 when the tensor is not quantized."""

    name: str
    shape: tuple[int, ...]
    dtype: Any  #: a numpy dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        import numpy as np

        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)

    def to_dict(self) -> dict:
        """JSON-ready: name, shape, dtype name, scale, zero_point."""
        import numpy as np

        return {"name": self.name, "shape": [int(v) for v in self.shape], "dtype": np.dtype(self.dtype).name,
                "scale": float(self.scale), "zero_point": int(self.zero_point)}


def installed(module: str) -> bool:
    """True when ``module`` can be found, without importing it."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class Engine:
    """Base class: one loaded model, batch 1, raw tensors in and out.

    A subclass describes itself with the class attributes below; the registry, ``edgeport doctor``,
    ``edgeport bench``, the CLI help and the error messages read them, and name no engine themselves.
    """

    name: ClassVar[str] = ""
    #: file endings this engine loads
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: the module whose presence makes the engine available
    module: ClassVar[str] = ""
    #: pip distributions that provide it (for the version), default ``module`` with - for _
    distributions: ClassVar[tuple[str, ...]] = ()
    #: the exact command that installs it (the one place it is written)
    install: ClassVar[str] = ""
    #: said with the install hint when no engine runs this engine's files (e.g. the Jetson wheel)
    install_note: ClassVar[str] = ""
    #: rank among the engines of a file type when none is named (lower first); None: only by name
    preference: ClassVar[int | None] = None
    #: what doctor imports in a child process to prove the engine loads here (default ``module``)
    probe_module: ClassVar[str] = ""
    #: {report key: function of the probed module} called in that child, e.g. the onnxruntime providers
    probe_calls: ClassVar[dict[str, str]] = {}
    #: a remark doctor shows beside the engine
    note: ClassVar[str] = ""

    def __init__(self, model_path: str | os.PathLike[str], threads: int | None = None) -> None:
        self.model_path = Path(model_path)
        self.threads = threads
        if not self.model_path.is_file():
            from edgeport.runtime.paths import what_is

            raise ModelError(f"expected a model file, received '{model_path}' {what_is(self.model_path)}")
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
        return installed(cls.module) and cls.problem() is None

    @classmethod
    def problem(cls) -> str | None:
        """Why the engine cannot work in this environment although it may be installed (e.g. the numpy ABI), or None."""
        return None

    @classmethod
    def unavailable_reason(cls) -> str:
        """One clause: why it cannot run here, with what to do."""
        return cls.problem() or f"{cls.name} is not installed here ({cls.install or 'install it'})"

    @classmethod
    def version(cls) -> str:
        """The engine package's version, or '' when it is not installed."""
        from importlib.metadata import PackageNotFoundError, version

        for dist in cls.distributions or (cls.module.replace("_", "-"),):
            try:
                return version(dist)
            except PackageNotFoundError:
                continue
        return ""

    @classmethod
    def import_module(cls, module: str | None = None) -> Any:
        """Import the engine's package (or ``module`` of it); MissingDependencyError with its install hint."""
        name = module or cls.module
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            raise MissingDependencyError(f"expected the '{name.split('.')[0]}' package for the {cls.name} engine, "
                                         f"but it could not be imported ({exc}); install it with: {cls.install}"
                                         ) from exc

    # -- running ----------------------------------------------------------------------
    def invoke(self, x: Any) -> Any:
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

    def _check_input(self, x: Any) -> None:
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


# --- factory and selection -----------------------------------------------------------


def auto_order(suffix: str) -> tuple[str, ...]:
    """Engines tried automatically for files ending in ``suffix``, best first (never one with no preference)."""
    suffix = suffix.lower()
    found = [(cls.preference, name) for name in ENGINES.names()
             if suffix in (cls := ENGINES.get(name)).suffixes and cls.preference is not None]
    return tuple(name for _, name in sorted(found))


def model_suffixes() -> tuple[str, ...]:
    """Every file ending some engine loads, in the order of the engines' preference."""
    ordered = sorted(ENGINES.names(), key=lambda n: (ENGINES.get(n).preference is None, ENGINES.get(n).preference or 0))
    return tuple(dict.fromkeys(s for n in ordered for s in ENGINES.get(n).suffixes))


def by_preference() -> list[str]:
    """Engine names: those chosen automatically in their preference order, then those used only by name."""
    return sorted(ENGINES.names(), key=lambda n: (ENGINES.get(n).preference is None, ENGINES.get(n).preference or 0, n))


def install_hint(suffix: str) -> str:
    """What to install for files ending in ``suffix``: the preferred engine's command, then the others' names."""
    names = auto_order(suffix)
    if not names:
        return f"no engine reads {suffix} files"
    first = ENGINES.get(names[0])
    others = [ENGINES.get(n).install.split()[-1] for n in names[1:]]
    return first.install + (f" (or {', '.join(others)})" if others else "")


def create_engine(name: str, model_path: str | os.PathLike[str], threads: int | None = None, **opts: Any) -> Engine:
    """Load ``model_path`` with the engine called ``name`` (see :data:`ENGINES`)."""
    cls = ENGINES.get(name)
    problem = cls.problem()  # e.g. numpy 2 for tflite-runtime: said first, installed or not
    if problem:
        raise MissingDependencyError(problem)
    if not installed(cls.module):
        raise MissingDependencyError(
            f"engine '{cls.name}' is not installed here; install it with: {cls.install}"
            f" (available engines: {', '.join(available_engines()) or 'none'})"
        )
    return cls(model_path, threads=threads, **opts)


def available_engines() -> list[str]:
    """Names of the engines usable in this environment (those used only by name included)."""
    return [n for n in ENGINES.names() if ENGINES.get(n).available()]


def engines_for(path: str | os.PathLike[str], only_available: bool = True) -> list[str]:
    """Engines that load ``path`` automatically, best first; one used only by name is never listed."""
    order = auto_order(Path(path).suffix)
    return [n for n in order if not only_available or ENGINES.get(n).available()]
