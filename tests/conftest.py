"""Shared fixtures: real data from ../shared (skipped when absent) and tiny real models."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import allowed_skips

FLOWERS = allowed_skips.FLOWERS


# --- every skip must be one tests/allowed_skips.py allows, here and now -------------------------------------


def _skip_reason(longrepr: object) -> str:
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def _refuse_skip(report: pytest.BaseReport) -> None:
    """Turn a skip that the allowlist does not allow into a failure that says why."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report.longrepr)
    why_not = allowed_skips.problem(reason)
    if why_not:
        report.outcome = "failed"
        report.longrepr = (f"skipped, and the skip is not allowed: {why_not}\n  reason given: {reason}\n"
                           f"  (tests/allowed_skips.py lists the allowed reasons; job {allowed_skips.job()!r})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _refuse_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _refuse_skip(outcome.get_result())


def pytest_configure(config):
    allowed_skips.job()  # a misspelt EDGEPORT_TEST_JOB is a usage error before anything runs


def has_tensorflow() -> bool:
    try:
        import tensorflow  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def flowers_dir() -> Path:
    """../shared/data/flowers (5 classes, fixed split.csv); skips when absent."""
    if not (FLOWERS / "split.csv").is_file():
        pytest.skip(f"real data not found at {FLOWERS}")
    return FLOWERS


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A synthetic 5-class image set (class folders, 48 px JPEGs)."""
    from tiny import make_tiny_data

    return make_tiny_data(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    """A build run of the tiny backbone on synthetic shapes (needs TensorFlow)."""
    if not has_tensorflow():
        pytest.skip("TensorFlow is not installed (the build stage needs the [train] extra)")
    from tiny import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture(scope="session")
def tiny_export_dir(request, tmp_path_factory) -> Path:
    """Every scheme of the tiny run, exported once per test session.

    With EDGEPORT_TEST_EXPORT_DIR set (the TensorFlow-free Pi-like CI job),
    the artifacts exported earlier by ``python tests/tiny.py`` are used.
    """
    pre = os.environ.get("EDGEPORT_TEST_EXPORT_DIR")
    if pre:
        return Path(pre)
    if not has_tensorflow():
        pytest.skip("no TensorFlow to export with and EDGEPORT_TEST_EXPORT_DIR is not set")
    from tiny import make_tiny_export

    run_dir = request.getfixturevalue("tiny_run_dir")
    return make_tiny_export(run_dir, tmp_path_factory.mktemp("tiny-export") / "export")


@pytest.fixture(scope="session")
def mismatched_exports(request, tmp_path_factory) -> dict[str, Path]:
    """Exports of the tiny run made with another resize method / swapped labels (see tiny.MISMATCHED).

    In the TensorFlow-free Pi-like job they were exported earlier beside EDGEPORT_TEST_EXPORT_DIR.
    """
    from tiny import MISMATCHED, make_mismatched_exports

    pre = os.environ.get("EDGEPORT_TEST_EXPORT_DIR")
    if pre:
        return {name: Path(pre).parent / f"export-{name}" for name in MISMATCHED}
    if not has_tensorflow():
        pytest.skip("no TensorFlow to export with and EDGEPORT_TEST_EXPORT_DIR is not set")
    return make_mismatched_exports(request.getfixturevalue("tiny_run_dir"), tmp_path_factory.mktemp("mismatched"))
