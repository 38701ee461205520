"""Merging several devices' reports, and the --max-drop gate."""

from __future__ import annotations

import csv
import json

import pytest

from edgeport.benchmarks.comparison import COMPARE_KIND, compare, merge
from edgeport.benchmarks.runner import gate
from edgeport.cli import main
from edgeport.errors import DataError

from .handmade import make_report


def _write(tmp_path, name, report):
    p = tmp_path / name
    p.write_text(json.dumps(report))
    return p


def test_merge_labels_rows_by_device():
    merged = merge([make_report("pi5"), make_report("jetson")])
    assert merged["kind"] == COMPARE_KIND
    assert [r["device"] for r in merged["rows"]] == ["pi5"] * 4 + ["jetson"] * 4
    assert [s["device"] for s in merged["reports"]] == ["pi5", "jetson"]


def test_merge_makes_same_device_names_unique():
    merged = merge([make_report("pi5"), make_report("pi5")])
    assert {r["device"] for r in merged["rows"]} == {"pi5", "pi5 #2"}


def test_compare_writes_table_and_plot(tmp_path):
    a = _write(tmp_path, "a.json", make_report("pi5"))
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    _write(b_dir, "bench.json", make_report("jetson", int8_delta=-0.5))
    merged = compare([a, b_dir], tmp_path / "cmp")
    files = merged["files"]
    rows = list(csv.DictReader(open(files["csv"])))
    assert [r["device"] for r in rows] == ["pi5"] * 4 + ["jetson"] * 4
    md = open(files["md"]).read()
    assert "| pi5 p50 ms | pi5 top-1 % | pi5 Δtop-1 | jetson p50 ms |" in md and "## pi5" in md and "## jetson" in md
    # the devices side by side: one line per artifact x engine x threads, both devices' figures on it
    int8_t1 = next(line for line in md.splitlines() if line.startswith("| model_int8.tflite | int8 | litert | 1 |"))
    assert "-1.5" in int8_t1 and "-0.5" in int8_t1


def test_compare_rejects_a_non_report(tmp_path):
    bad = _write(tmp_path, "bad.json", {"hello": 1})
    with pytest.raises(DataError, match="bench report"):
        compare([bad])


def test_gate_lists_only_schemes_over_the_limit():
    report = make_report(int8_delta=-3.0)
    bad = gate(report, 2.0)
    assert len(bad) == 1 and "model_int8.tflite" in bad[0] and "-3.0" in bad[0]  # two thread rows, one entry
    assert gate(report, 3.5) == []


def test_cli_compare_and_max_drop_exit_codes(tmp_path, capsys):
    a = _write(tmp_path, "a.json", make_report("pi5", int8_delta=-4.0))
    b = _write(tmp_path, "b.json", make_report("jetson", int8_delta=-1.0))
    assert main(["bench", "compare", str(a), str(b), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "pi5" in out and "jetson" in out and (tmp_path / "o" / "compare.json").is_file()
    assert main(["bench", "compare", str(a), str(b), "--max-drop", "2"]) == 1
    err = capsys.readouterr().err
    assert "pi5: model_int8.tflite" in err and "jetson" not in err
    assert main(["bench", "compare", str(a), str(b), "--max-drop", "5"]) == 0


def test_cli_gate_fails_when_nothing_can_be_checked(tmp_path, capsys):
    report = make_report()
    for r in report["rows"]:
        r["accuracy"] = None
    a = _write(tmp_path, "a.json", report)
    assert main(["bench", "compare", str(a), "--max-drop", "1"]) == 1
    assert "no variant has a top-1 change" in capsys.readouterr().err


def test_cli_bad_report_is_one_line_error(tmp_path, capsys):
    assert main(["bench", "compare", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
