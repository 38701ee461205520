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
    bad, undecided = gate(report, 2.0)  # -3.00 [-4.3, -2.1]: shown to lose more than 2 points
    assert len(bad) == 1 and "model_int8.tflite" in bad[0] and "-3.00 [" in bad[0]  # two thread rows, one entry
    assert undecided == []
    assert gate(report, 5.0) == ([], [])  # shown to lose less than 5
    bad, undecided = gate(report, 2.5)  # the interval straddles -2.5: not decided, which passes by default
    assert bad == [] and len(undecided) == 1 and "not decided at 1000 images" in undecided[0]
    assert len(gate(report, 2.5, undecided="fail")[0]) == 1


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


def test_compare_says_which_device_differences_are_beyond_noise():
    """The same artifact on two devices: latency set against the first device with a bootstrap interval of the
    ratio, top-1 paired image by image when both scored the same images in the same order."""
    import numpy as np

    rng = np.random.default_rng(0)
    labels = [int(v) for v in rng.integers(0, 2, 400)]
    a, b = make_report("laptop"), make_report("pi5")
    for report, slow, flips in ((a, 1.0, 0), (b, 3.0, 40)):
        report["data"].update(order_sha256="same", labels=labels, images=400)
        for r in report["rows"]:
            if r["status"] != "ok":
                continue
            p50 = r["latency_ms"]["p50"] * slow
            r["latency_ms"].update(p50=p50, samples=list(rng.normal(p50, 0.02 * p50, 60)))
            top1 = list(labels)
            for i in range(flips):  # the second device gets 40 of 400 images wrong that the first got right
                top1[i] = 1 - top1[i]
            r["accuracy"].update(top1=top1, images=400, top1_pct=100.0 * np.mean(np.array(top1) == labels))
    diffs = {(d["artifact"], d["threads"]): d for d in merge([a, b])["differences"]}
    d = diffs[("model_int8.tflite", 1)]
    assert d["device"] == "pi5" and d["against"] == "laptop" and d["pairing"] == "paired"
    assert d["p50_ratio"] == pytest.approx(3.0, rel=0.05) and d["latency_beyond_noise"]
    assert d["p50_ratio_ci"][0] > 2.5 and d["top1_diff_pts"] == pytest.approx(-10.0)
    assert d["accuracy_beyond_noise"] and d["top1_diff_pts_ci"][1] < 0 and d["same_answer_pct"] == 90.0
    same = merge([a, make_report("laptop again")])  # no samples nor per-image answers: intervals from what is there
    assert all(not x["latency_beyond_noise"] for x in same["differences"])
    b["data"]["order_sha256"] = "other images"
    assert merge([a, b])["differences"][0]["pairing"] == "unpaired"
