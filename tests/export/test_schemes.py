import pytest

from edgeport.errors import ConfigError
from edgeport.export import ALL_SCHEMES, SCHEMES, create_scheme

# the export-directory contract (CONTEXT.md) that runtime and benchmarks read
CONTRACT_FILES = {
    "fp32": "model_fp32.tflite", "fp16": "model_fp16.tflite", "dynamic": "model_dynamic.tflite",
    "int8": "model_int8.tflite", "int16x8": "model_int16x8.tflite", "onnx": "model.onnx",
    "onnx-fp16": "model_fp16.onnx", "onnx-int8": "model_int8.onnx",
}


def test_registry_holds_every_scheme_with_contract_file_names():
    assert sorted(SCHEMES.names()) == sorted(ALL_SCHEMES) == sorted(CONTRACT_FILES)
    for name, file in CONTRACT_FILES.items():
        s = create_scheme(name)
        assert s.file == file and s.format == file.rsplit(".", 1)[1]
    assert {n for n in ALL_SCHEMES if create_scheme(n).calibrated} == {"int8", "int16x8", "onnx-int8"}
    assert {n for n in ALL_SCHEMES if create_scheme(n).reference} == {"fp32", "onnx"}
    assert "float activations" in create_scheme("dynamic").description


def test_unknown_scheme_lists_known():
    with pytest.raises(ConfigError, match="expected one of: dynamic, fp16"):
        create_scheme("int4")


def test_package_import_is_light():
    import subprocess
    import sys

    code = ("import sys, edgeport.export, edgeport.export.cli; "
            "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'onnx', 'onnxruntime', 'tf2onnx')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
