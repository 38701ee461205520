from edgeport.export.converters import CONVERTERS
from edgeport.schemes import ALL_SCHEMES


def test_every_catalogue_scheme_has_a_converter():
    assert CONVERTERS.in_order() == ALL_SCHEMES


def test_package_import_is_light():
    import subprocess
    import sys

    code = ("import sys, edgeport.export, edgeport.export.cli; "
            "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'onnx', 'onnxruntime', 'tf2onnx')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
