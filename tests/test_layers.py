"""The import rule, checked on the source: the device side never reaches up into the workstation.

``edgeport.runtime`` and ``edgeport.benchmarks`` run on a Raspberry Pi or a Jetson with numpy,
OpenCV and one engine. They and the shared modules below the stages may import neither
``edgeport.build`` / ``edgeport.export`` nor TensorFlow, Keras or the converters, not even
inside a function. The one exception is the ``tensorflow`` engine, which loads
``tf.lite.Interpreter`` only when a user names it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgeport"
#: the layer below the stages (shared by build, export, runtime, benchmarks)
SHARED = ("contract", "manifest", "schemes", "metrics", "files", "golden", "metadata", "imaging", "data", "registry",
          "errors", "progress", "config", "video", "synthetic", "_lazy", "flags", "chatter", "evalset", "sampling",
          "rundir", "tables", "intervals")
FORBIDDEN = ("edgeport.build", "edgeport.export", "edgeport.pipeline", "tensorflow", "keras", "tf2onnx", "onnx")
#: (file, module) pairs allowed despite the rule
ALLOWED = {("runtime/engines/tensorflow_lite.py", "tensorflow")}


def _device_side_files() -> list[Path]:
    files = sorted((PACKAGE / "runtime").rglob("*.py")) + sorted((PACKAGE / "benchmarks").rglob("*.py"))
    return files + [PACKAGE / f"{name}.py" for name in SHARED]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports: import statements anywhere, and require('x')/import_module('x') calls."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "require", "import_module") and node.args and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value))
    return found


def _hits(path: Path) -> list[str]:
    rel = str(path.relative_to(PACKAGE))
    return sorted(m for m in imported_modules(path)
                  if any(m == f or m.startswith(f + ".") for f in FORBIDDEN) and (rel, m.split(".")[0]) not in ALLOWED)


@pytest.mark.parametrize("path", _device_side_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_device_side_never_imports_the_stages_or_tensorflow(path):
    assert path.is_file(), f"{path} is listed as a shared module but does not exist"
    assert _hits(path) == []


def test_the_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from edgeport.export.tflite import calibrate\n    import keras\n"
                 "    require('tensorflow', 'x')\n")
    assert imported_modules(f) >= {"edgeport.export.tflite", "keras", "tensorflow"}


@pytest.mark.parametrize("package", sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()))
def test_no_public_name_is_shadowed_by_a_submodule(package):
    """``from edgeport.benchmarks import bench`` must give the function whatever was imported before: once
    ``edgeport.benchmarks.bench`` (a module) is imported, Python sets that attribute on the package and
    the function is gone. So no name a package exports may also be one of its modules."""
    import importlib

    exported = set(getattr(importlib.import_module(f"edgeport.{package}"), "__all__", ()))
    modules = {p.stem for p in (PACKAGE / package).glob("*.py")} | {
        p.name for p in (PACKAGE / package).iterdir() if (p / "__init__.py").is_file()}
    assert not exported & modules, f"edgeport.{package} exports names that are also its modules: {exported & modules}"
