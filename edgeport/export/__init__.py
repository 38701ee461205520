"""edgeport.export: the run's Keras model -> TFLite and ONNX artifacts, verified.

    from edgeport.export import ExportConfig, export
    result = export(ExportConfig(run_dir="runs/flowers"))

Importing this package does not import TensorFlow; :func:`export` does.
"""

from edgeport.export.config import IO_DTYPES, ExportConfig
from edgeport.export.exporter import ArtifactResult, ExportResult, export
from edgeport.schemes import ALL_SCHEMES, SCHEMES, SchemeSpec, get_scheme

__all__ = [
    "ALL_SCHEMES", "IO_DTYPES", "ArtifactResult", "ExportConfig", "ExportResult", "SCHEMES", "SchemeSpec",
    "export", "get_scheme",
]
