"""A scheme that cannot represent an op of the model: reported as 'unsupported', and the exit status.

A default export (no --schemes) exits 0 when a scheme is merely unsupported
for the model; naming that scheme in --schemes makes it exit 1 (the user
asked for a file they did not get). A scheme that *fails* always exits 1.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")

from edgeport.cli import main
from edgeport.export import ALL_SCHEMES


def test_default_export_exits_0_with_an_unsupported_scheme(sine_run_dir, tmp_path, capsys):
    out = tmp_path / "all"
    rc = main(["-q", "export", str(sine_run_dir), "--out", str(out), "--calibration-samples", "8",
               "--verify-samples", "8"])
    manifest = json.loads((out / "manifest.json").read_text())
    statuses = {a["scheme"]: a["status"] for a in manifest["artifacts"]}
    assert statuses == {s: "unsupported" if s == "int8" else "ok" for s in ALL_SCHEMES}
    assert rc == 0
    assert "SIN" in capsys.readouterr().out  # the table names the op


def test_named_unsupported_scheme_exits_1(sine_run_dir, tmp_path):
    rc = main(["-q", "export", str(sine_run_dir), "--out", str(tmp_path / "x"), "--schemes", "int8,fp32",
               "--calibration-samples", "8", "--verify-samples", "8"])
    assert rc == 1
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert [(a["scheme"], a["status"]) for a in manifest["artifacts"]] == [("fp32", "ok"), ("int8", "unsupported")]
