"""The report schema and its writers (json, csv, md, terminal table, png)."""

from __future__ import annotations

import csv
import json

import cv2
import pytest
from allowed_skips import skip_without

from edgeport.benchmarks import report as rep
from edgeport.benchmarks.plot import plot_report, points_from_rows
from edgeport.errors import DataError


def test_validate_accepts_hand_report(hand_report):
    assert rep.validate(hand_report) is hand_report


@pytest.mark.parametrize(
    "breakage, match",
    [
        (lambda r: r.pop("rows"), "lacks: rows"),
        (lambda r: r.update(schema_version=99), "schema_version"),
        (lambda r: r.update(kind="other"), "kind"),
        (lambda r: r["rows"][0].pop("latency_ms"), "lacks: latency_ms"),
        (lambda r: r["rows"][0].update(status="meh"), "unknown status"),
        (lambda r: r["rows"][0]["latency_ms"].pop("p99"), "p99"),
        (lambda r: r["rows"][0]["accuracy"].pop("agreement_pct"), "agreement_pct"),
    ],
)
def test_validate_names_the_problem(hand_report, breakage, match):
    breakage(hand_report)
    with pytest.raises(DataError, match=match):
        rep.validate(hand_report)


def test_write_all_files_and_round_trip(hand_report, tmp_path):
    files = rep.write(hand_report, tmp_path)
    assert set(files) >= {"json", "csv", "md"}
    back = rep.load(files["json"])
    assert back["rows"] == json.loads(json.dumps(hand_report["rows"]))
    rows = list(csv.DictReader(open(files["csv"])))
    assert len(rows) == 4
    assert rows[1]["artifact"] == "model_int8.tflite" and float(rows[1]["delta_top1_pts"]) == pytest.approx(-1.5)
    assert float(rows[1]["latency_p50_ms"]) == 8.0 and rows[1]["top1_pct_a"] != ""
    assert rows[3]["status"] == "not available" and rows[3]["latency_p50_ms"] == ""
    md = open(files["md"]).read()
    assert "| model_int8.tflite |" in md and "## Environment" in md and "Cortex-A76" in md
    if "png" in files:  # matplotlib or OpenCV drew it
        assert cv2.imread(files["png"]) is not None


def test_nan_is_written_as_null(hand_report, tmp_path):
    hand_report["rows"][0]["accuracy"]["per_class_top1_pct"]["b"] = float("nan")
    rep.write(hand_report, tmp_path, plot=False)
    text = (tmp_path / "bench.json").read_text()
    assert "NaN" not in text and json.loads(text)["rows"][0]["accuracy"]["per_class_top1_pct"]["b"] is None


def test_terminal_table_shows_every_row_and_status(hand_report):
    text = rep.format_table(hand_report["rows"])
    lines = text.splitlines()
    assert len(lines) == 2 + 4
    assert "n/a" in lines[-1] and "broken" in lines[-1]
    assert "-1.5" in lines[3] and "8.00" in lines[3]
    assert all(len(line) <= len(lines[1]) for line in lines)  # aligned under the header rule


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        rep.load(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(DataError, match="lacks"):
        rep.load(tmp_path / "x.json")


def test_plot_points_and_front(hand_report):
    pts = points_from_rows(hand_report["rows"])
    assert len(pts) == 3  # the unavailable row is not plotted
    front = {(p.label, p.latency_ms): p.front for p in pts}
    # fp32 (20 ms, 90 %) is the most accurate -> front; int8 t2 (5 ms) is fastest -> front; int8 t1 dominated
    assert front[("fp32 litert t1", 20.0)] and front[("int8 litert t2", 5.0)]
    assert not front[("int8 litert t1", 8.0)]


@pytest.mark.parametrize("backend", ["opencv", "matplotlib"])
def test_plot_backends_draw_an_image(hand_report, tmp_path, backend):
    if backend == "matplotlib":
        skip_without("matplotlib", why="plotting is not part of a device's install")
    out = plot_report(hand_report, tmp_path / "p.png", backend=backend)
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 300 and img.std() > 5


def test_plot_skips_without_points(hand_report, tmp_path):
    for r in hand_report["rows"]:
        r["accuracy"] = None
    assert plot_report(hand_report, tmp_path / "p.png") is None
    assert not (tmp_path / "p.png").exists()


def test_terminal_table_cuts_long_notes_but_json_keeps_them(hand_report):
    hand_report["rows"][3]["reason"] = "x" * 300
    line = rep.format_table(hand_report["rows"], max_note=50).splitlines()[-1]
    assert line.endswith("x" * 47 + "...")
    assert len(hand_report["rows"][3]["reason"]) == 300


def test_labels_of_coincident_points_do_not_overlap():
    from edgeport.benchmarks.plot import place_labels

    anchors = [(100.0, 100.0)] * 6
    sizes = [(80.0, 10.0)] * 6
    spots = place_labels(anchors, sizes, (0, 0, 400, 300))
    for i, (x, y) in enumerate(spots):
        assert 0 <= x and x + 80 <= 400 and 0 <= y and y + 10 <= 300
        for (x2, y2) in spots[i + 1:]:
            assert x + 80 <= x2 or x2 + 80 <= x or y + 10 <= y2 or y2 + 10 <= y


def test_terminal_and_markdown_tables_carry_no_control_characters(hand_report):
    """A label (from a manifest someone sent) or a device name with escape sequences is shown as '?'."""
    row = hand_report["rows"][1]
    row["accuracy"]["worst_class"] = "daisy\x1b[2J\x1b]0;owned\x07"
    row["reason"] = "expected labels a, b\x1b[31m"
    hand_report["environment"]["device"] = "pi\x1b[1m5"
    text = "\n".join([rep.format_table(hand_report["rows"]), rep.format_markdown_table(hand_report["rows"]),
                      *rep.environment_lines(hand_report["environment"])])
    assert "\x1b" not in text and "\x07" not in text
    assert "daisy?[2J?]0;owned?" in text and "device: pi?[1m5" in text


def test_environment_records_no_hostname(monkeypatch):
    import platform

    from edgeport.benchmarks.environment import cpu_model, describe

    monkeypatch.setattr(platform, "node", lambda: "alices-laptop.home")
    env = describe()
    assert "alices-laptop" not in json.dumps(env) and "hostname" not in env
    assert env["device"] in (env["board"], cpu_model())
    assert describe("lab pi 3")["device"] == "lab pi 3"
