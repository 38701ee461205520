"""edgeport.export: the run's Keras model -> TFLite and ONNX artifacts, verified.

    from edgeport.export import ExportConfig, export
    result = export(ExportConfig(run_dir="runs/flowers"))

Importing this package does not import TensorFlow; :func:`export` does.
"""

from edgeport.export.config import ALL_SCHEMES, IO_DTYPES, ExportConfig
from edgeport.export.exporter import ArtifactResult, ExportResult, export
from edgeport.export.schemes import SCHEMES, Scheme, create_scheme

__all__ = [
    "ALL_SCHEMES", "IO_DTYPES", "ArtifactResult", "ExportConfig", "ExportResult", "SCHEMES", "Scheme",
    "create_scheme", "export",
]
