"""The only reasons a test may skip; any other skip fails the run (tests/conftest.py enforces it).

A skip hides whatever the test would have caught, so it is allowed only when its reason is one of
the entries below *and* that reason is true on this machine: a skip that says "onnxruntime is not
installed" passes in the Raspberry Pi-like job, which does not install it, and fails the main job,
which must. A test that may skip calls :func:`skip` (or :func:`skip_without`) with an entry's key;
skips written elsewhere (``pytest.importorskip`` at the top of a module, a fixture's ``pytest.skip``)
are matched by the entry's ``also`` patterns. A new reason to skip is a new entry here, with why.

The two CI jobs (``.ci/run``):

* ``make test`` (job "main"): the ``[all]`` extra (TensorFlow, LiteRT, onnxruntime, ...) on numpy 2.
* ``make test-pi`` (job "pi", ``EDGEPORT_TEST_JOB=pi``): what a Raspberry Pi gets, numpy<2,
  tflite-runtime 2.14, headless OpenCV, and pytest; the runtime and benchmark tests only.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

FLOWERS = Path(os.environ.get("EDGEPORT_FLOWERS", Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers"))

#: what each CI job leaves out on purpose (module names as imported; "numpy>=2" / "numpy<2" for numpy itself)
NOT_IN_JOB: dict[str, frozenset[str]] = {
    # tflite-runtime 2.14 has no numpy-2 build; the device-side tests of it run in the Pi job
    "main": frozenset({"tflite_runtime", "numpy<2"}),
    # a device's install: no TensorFlow (the runtime must not need it), one engine, no plotting, no dev tools
    # (paho-mqtt and selenium are in it: the service tests run there too)
    "pi": frozenset({"tensorflow", "keras", "ai_edge_litert", "onnxruntime", "onnx", "tf2onnx", "matplotlib", "yaml",
                     "PIL", "numpy>=2"}),
}

#: the one TFLite engine each job installs (tests that name the engine they expect use it)
TFLITE_ENGINE = {"main": "litert", "pi": "tflite-runtime"}


def job() -> str:
    """The CI job this run is: "pi" when the Makefile's test-pi says so, else "main"."""
    name = os.environ.get("EDGEPORT_TEST_JOB", "main")
    if name not in NOT_IN_JOB:
        raise pytest.UsageError(f"expected EDGEPORT_TEST_JOB to be one of {', '.join(NOT_IN_JOB)}, received {name!r}")
    return name


def _missing(requirement: str) -> bool:
    """True when ``requirement`` (a module name, or numpy>=2 / numpy<2) is not met here."""
    if requirement.startswith("numpy"):
        import numpy as np

        major = int(np.__version__.split(".")[0])
        return major < 2 if requirement == "numpy>=2" else major >= 2
    try:
        return importlib.util.find_spec(requirement) is None
    except (ImportError, ValueError):  # a parent package that is missing, or a module without a spec
        return True


def _not_in_job(reason: str) -> str | None:
    names = re.findall(r"\b(numpy[<>]=?2|[A-Za-z_][\w.]*)\b is not installed", reason)
    if not names:
        return "the reason does not name what is not installed ('X is not installed')"
    for name in names:
        top = name if name.startswith("numpy") else name.split(".")[0]
        if top not in NOT_IN_JOB[job()]:
            return f"the {job()} job installs {top} (tests/allowed_skips.py NOT_IN_JOB): it must be there"
        if not _missing(top):
            return f"{top} is installed here: the test must run"
    return None


def _no_tensorflow(reason: str) -> str | None:
    if "tensorflow" in NOT_IN_JOB[job()] and _missing("tensorflow"):
        return None
    return f"TensorFlow is part of the {job()} job" + ("" if _missing("tensorflow") else " and importable here: "
                                                          "a failed import of it is a broken install, not a skip")


def _no_flowers(reason: str) -> str | None:
    return None if not (FLOWERS / "split.csv").is_file() else f"{FLOWERS} is here: the flowers tests must run"


@dataclass(frozen=True)
class Allowed:
    key: str
    why: str
    #: None when the reason holds on this machine, else what is wrong with the skip
    check: Callable[[str], str | None]
    #: skip reasons written without :func:`skip` that mean this entry (searched, case-insensitive)
    also: tuple[str, ...] = field(default=())


ALLOWED: dict[str, Allowed] = {a.key: a for a in (
    Allowed("not-in-this-job",
            "a test needs a package (or a numpy major) that this CI job leaves out on purpose (NOT_IN_JOB): "
            "tflite-runtime exists only for numpy<2, the Pi job is a device's install",
            _not_in_job),
    Allowed("no-tensorflow",
            "the build and export stages need TensorFlow, which the Pi job must not have; their modules skip at "
            "import there (pytest.importorskip in tests/export and tests/build, which do not run in that job)",
            _no_tensorflow, also=(r"tensorflow",)),
    Allowed("no-flowers",
            "the real-data tests need ../shared/data/flowers, which CI has beside the clone; a clone without it "
            "(a contributor's laptop) skips them",
            _no_flowers, also=(r"real data not found",)),
)}


def skip(key: str, detail: str) -> None:
    """Skip the running test for the allowlist entry ``key`` (its reason is checked when the report is made)."""
    __tracebackhide__ = True
    if key not in ALLOWED:
        raise KeyError(f"no allowed skip '{key}' in tests/allowed_skips.py (known: {', '.join(ALLOWED)})")
    pytest.skip(f"{key}: {detail}")


def skip_without(*requirements: str, why: str = "") -> None:
    """Skip unless every requirement is met (module names, or numpy>=2 / numpy<2): the job lacks it on purpose."""
    __tracebackhide__ = True
    missing = [r for r in requirements if _missing(r)]
    if missing:
        skip("not-in-this-job", " and ".join(f"{m} is not installed" for m in missing) + (f" ({why})" if why else ""))


def problem(reason: str) -> str | None:
    """None when a skip with this reason is allowed here, else why it is not."""
    key = reason.split(":", 1)[0].strip()
    if key in ALLOWED:
        return ALLOWED[key].check(reason)
    for entry in ALLOWED.values():
        if any(re.search(p, reason, re.I) for p in entry.also):
            return entry.check(reason)
    return "no entry of tests/allowed_skips.py allows it"
