"""The runtime never imports TensorFlow; its CLI module stays light."""

from __future__ import annotations

import subprocess
import sys

from .helpers import ROOT

MODULES = ["edgeport.runtime", "edgeport.runtime.engines", "edgeport.runtime.classifier",
           "edgeport.runtime.sources", "edgeport.runtime.loop", "edgeport.runtime.stats",
           "edgeport.runtime.overlay", "edgeport.runtime.doctor", "edgeport.runtime.cli",
           "edgeport.benchmarks", "edgeport.cli"]


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, cwd=str(ROOT))


def test_import_with_tensorflow_blocked(export_dir):
    code = f"""
import sys, importlib
sys.modules["tensorflow"] = None
for m in {MODULES!r}:
    importlib.import_module(m)
from edgeport.runtime import Classifier, available_engines
from edgeport.runtime.doctor import doctor
import edgeport.runtime as rt
[getattr(rt, n) for n in rt.__all__]
doctor()
import numpy as np
if available_engines():
    with Classifier.open(sys.argv[1]) as clf:
        clf.classify(np.zeros((40, 50, 3), np.uint8))
print("OK")
"""
    res = _python(code, str(export_dir))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("OK")


def test_tensorflow_not_in_sys_modules_after_use(export_dir):
    code = f"""
import sys, importlib
for m in {MODULES!r}:
    importlib.import_module(m)
from edgeport.runtime import Classifier, available_engines
from edgeport.runtime.doctor import doctor
from edgeport.cli import make_parser
make_parser()
doctor()
import numpy as np
if available_engines():
    with Classifier.open(sys.argv[1]) as clf:
        clf.classify(np.zeros((40, 50, 3), np.uint8))
assert "tensorflow" not in sys.modules, "tensorflow was imported"
print("OK")
"""
    res = _python(code, str(export_dir))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("OK")


def test_runtime_cli_module_is_light():
    code = """
import sys
import edgeport.runtime.cli, edgeport.runtime
heavy = [m for m in ("cv2", "numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime", "tensorflow") if m in sys.modules]
assert not heavy, heavy
print("OK")
"""
    res = _python(code)
    assert res.returncode == 0, res.stderr[-3000:]
