"""edgeport.export: the run's Keras model -> TFLite and ONNX artifacts, verified.

    from edgeport.export import ExportConfig, export
    result = export(ExportConfig(run_dir="runs/flowers"))

Importing this package does not import TensorFlow; :func:`export` does. The
exporter itself (numpy, the data readers) loads on first use of its names, so
the command line, which reads :class:`ExportConfig` to build its flags, stays light.
"""

from typing import Any

from edgeport.export.config import IO_DTYPES, ExportConfig
from edgeport.schemes import ALL_SCHEMES, SCHEMES, SchemeSpec, get_scheme

_FROM_EXPORTER = ("ArtifactResult", "ExportResult", "export")


def __getattr__(name: str) -> Any:
    if name not in _FROM_EXPORTER:
        raise AttributeError(f"module 'edgeport.export' has no attribute '{name}'")
    from edgeport.export import exporter

    value = getattr(exporter, name)
    globals()[name] = value
    return value


__all__ = [
    "ALL_SCHEMES", "IO_DTYPES", "ArtifactResult", "ExportConfig", "ExportResult", "SCHEMES", "SchemeSpec",
    "export", "get_scheme",
]
