"""Bad input across build, export, run and bench, through the real CLI (``edgeport.cli.main``).

Each case ends in its documented exit code (2: bad input, one ``edgeport
CMD: error:`` line; 1: ran, but the result failed a check; 0: done, with
unusable inputs skipped and counted), never a traceback; nothing is
half-written to the case's outputs, and no temporary folder is left (the
system temporary folder is pointed at an empty one for each case).
Stage-specific details live beside each stage's own tests; this table is
the issue-11 acceptance list.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from edgeport.cli import main


@dataclass
class Ctx:
    """What a case builds its input from (fixtures are looked up lazily: build cases need no export)."""

    tmp: Path
    request: pytest.FixtureRequest

    @property
    def data(self) -> Path:
        return self.request.getfixturevalue("tiny_data_dir")

    @property
    def export(self) -> Path:
        return self.request.getfixturevalue("tiny_export_dir")

    @property
    def run_dir(self) -> Path:
        return self.request.getfixturevalue("tiny_run_dir")

    def images(self, n: int = 2) -> Path:
        d = self.tmp / "frames"
        d.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(n):
            cv2.imwrite(str(d / f"{i}.png"), rng.integers(0, 256, (40, 40, 3), np.uint8))
        return d

    def file(self, name: str, data: bytes | str) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    def export_copy(self) -> Path:
        dst = self.tmp / "export"
        shutil.copytree(self.export, dst)
        return dst

    def csv_data(self, bad_row: str) -> Path:
        """A copy of the tiny data as split.csv with one row replaced by ``bad_row`` (line 3)."""
        root = self.tmp / "csvdata"
        rows = []
        for i, img in enumerate(sorted(self.data.rglob("*.jpg"))):
            rows.append(f"{img},{img.parent.name},{'val' if i % 4 == 0 else 'train'}")
        rows[1] = bad_row.format(path=sorted(self.data.rglob("*.jpg"))[1])
        return self.file("csvdata/split.csv", "path,label,split\n" + "\n".join(rows) + "\n") and root / "split.csv"

    def video(self, keep: float = 1.0, name: str = "clip.avi") -> Path:
        rng = np.random.default_rng(1)
        full = self.tmp / ("full_" + name)
        writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 40))
        for _ in range(30):
            writer.write(rng.integers(0, 256, (40, 48, 3), np.uint8))
        writer.release()
        data = full.read_bytes()
        full.unlink()
        return self.file(name, data[: int(len(data) * keep)])


@dataclass
class Case:
    argv: Callable[[Ctx], list[str]]
    rc: int
    match: str  #: regex searched in stderr (+ stdout for rc 0/1 cases)
    absent: Callable[[Ctx], list[Path]] = lambda c: []  #: outputs that must not exist afterwards
    check: Callable[[Ctx, str, str], None] | None = None  #: extra checks on (ctx, out, err)
    needs: str = ""  #: an importable module the case needs


def _tiny_build(c: Ctx, *extra: str) -> list[str]:
    return ["build", "--data", str(c.data), "--out", str(c.tmp / "run"), "--backbone", "tiny", "--weights", "none",
            "--image-size", "16", "--epochs", "1", "--fine-tune-epochs", "0", "--batch-size", "16",
            "--progress", "off", *extra]


def _no_run(c: Ctx) -> list[Path]:
    return [c.tmp / "run"]


def _damaged_state(c: Ctx, text: str) -> list[str]:
    ck = c.tmp / "run" / "checkpoints"
    ck.mkdir(parents=True)
    (ck / "state.json").write_text(text)
    return _tiny_build(c, "--resume")


def _state_untouched(c: Ctx, out: str, err: str) -> None:
    assert sorted(p.name for p in (c.tmp / "run").rglob("*")) == ["checkpoints", "state.json"]


def _summary_json(key: str, value: object) -> Callable[[Ctx, str, str], None]:
    """Check the --json-summary: standard JSON (no NaN) whose ``key`` is ``value`` (... : any true value)."""
    def check(c: Ctx, out: str, err: str) -> None:
        text = (c.tmp / "s.json").read_text()
        assert "NaN" not in text, text
        got = json.loads(text)[key]
        assert bool(got) if value is ... else got == value, text
    return check


def _one_class(c: Ctx) -> Path:
    shutil.copytree(c.data / "circle", c.tmp / "one" / "circle")
    return c.tmp / "one"


def _junk_classes(c: Ctx) -> Path:
    c.file("junk/a/1.jpg", "not an image")
    c.file("junk/b/1.jpg", "not an image either")
    return c.tmp / "junk"


def _edit_manifest(c: Ctx, edit: Callable[[str], str]) -> Path:
    e = c.export_copy()
    (e / "manifest.json").write_text(edit((e / "manifest.json").read_text()))
    return e


def _damage(c: Ctx, scheme: str) -> list[str]:
    e = c.export_copy()
    art = next(a for a in json.loads((e / "manifest.json").read_text())["artifacts"] if a["scheme"] == scheme)
    data = bytearray((e / art["file"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (e / art["file"]).write_bytes(bytes(data))
    return ["run", str(e), "--scheme", scheme, "--source", str(c.images()), "--max-frames", "1"]


def _all_damaged(c: Ctx) -> list[str]:
    e = c.export_copy()
    for f in list(e.glob("*.tflite")) + list(e.glob("*.onnx")):
        f.write_bytes(f.read_bytes()[:-100] + b"\0" * 100)
    return ["bench", str(e), "--data", str(c.data), "--limit", "4", "--runs", "2", "--warmup", "0", "--progress", "off",
            "--out", str(c.tmp / "bench")]


def _labels_with_escapes(c: Ctx) -> list[str]:
    import onnx

    model = onnx.load(str(c.export / "model.onnx"))
    for prop in model.metadata_props:
        if prop.key == "edgeport":
            meta = json.loads(prop.value)
            meta["labels"] = [f"{lab}\x1b[2J\x1b]0;owned\x07" for lab in meta["labels"]]
            prop.value = json.dumps(meta)
    onnx.save(model, str(c.tmp / "escapes.onnx"))  # a plain file: no manifest, no hash to stop it
    return ["run", str(c.tmp / "escapes.onnx"), "--source", str(c.images(1)), "--top-k", "5"]


def _nan_weights(c: Ctx) -> list[str]:
    """The ONNX model with one weight tensor made NaN (a plain file: no manifest hash stops it)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(c.export / "model.onnx"))
    big = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    big.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(big).shape, np.nan, np.float32), big.name))
    onnx.save(model, str(c.tmp / "nan.onnx"))
    return ["run", str(c.tmp / "nan.onnx"), "--source", str(c.images(1))]


def _unloadable_onnx(c: Ctx) -> list[str]:
    """A plain folder with an .onnx whose first node names an operator onnxruntime does not have: its
    metadata reads fine (the parent's checks pass), the bench worker's engine cannot load it."""
    import onnx

    model = onnx.load(str(c.export / "model.onnx"))
    model.graph.node[0].op_type = "NoSuchOperator"
    folder = c.tmp / "plain"
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"))
    return ["bench", str(folder), "--data", str(c.data), "--limit", "4", "--runs", "2", "--warmup", "0",
            "--progress", "off", "--out", str(c.tmp / "bench")]


def _no_escapes(c: Ctx, out: str, err: str) -> None:
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert "?[2J?]0;owned?" in out


def _huge_png(c: Ctx) -> Path:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    side = 20000
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    rows = (b"\x00" * (1 + side // 8)) * side
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def _data_with_huge_png(c: Ctx) -> Path:
    root = c.tmp / "hugedata"
    shutil.copytree(c.data, root)
    cls = sorted(p for p in root.iterdir() if p.is_dir())[0]
    (cls / "zz_huge.png").write_bytes(_huge_png(c))
    return root


def _skipped_one(c: Ctx, out: str, err: str) -> None:
    report = json.loads((c.tmp / "bench" / "bench.json").read_text())
    assert report["data"]["num_skipped"] == 1
    assert "refused before decoding" in report["data"]["skipped"][0]["reason"]


CASES: dict[str, Case] = {
    # --- build: every cheap check before anything is written to --out --------------------------------
    "build weights file missing": Case(
        lambda c: _tiny_build(c, "--weights", "/nope.h5"), 2,
        r"expected --weights imagenet, none or the path of a weights file, received '/nope.h5' \(no such file\)", _no_run),
    "build weights not HDF5": Case(
        lambda c: _tiny_build(c, "--weights", str(c.file("w.weights.h5", "not weights"))), 2,
        r"expected --weights .*w.weights.h5 to be an HDF5 file, but its first bytes are b'not weig'", _no_run),
    "build weights of an unknown kind": Case(
        lambda c: _tiny_build(c, "--weights", str(c.file("w.txt", "x"))), 2,
        r"expected --weights to be a Keras weights file \(.weights.h5, .h5", _no_run),
    "build imagenet for a backbone without": Case(
        lambda c: _tiny_build(c, "--weights", "imagenet"), 2, r"backbone tiny has no ImageNet weights", _no_run),
    "build image size below the backbone's": Case(
        lambda c: _tiny_build(c, "--backbone", "mobilenet_v2", "--image-size", "16"), 2,
        r"expected --image-size >= 32 for backbone mobilenet_v2, received 16", _no_run),
    "build unknown backbone": Case(
        lambda c: _tiny_build(c, "--backbone", "resnet51"), 2, r"unknown backbone 'resnet51'", _no_run),
    "build out is a file": Case(
        lambda c: _tiny_build(c, "--out", str(c.file("run", "x"))), 2,
        r"expected --out to be a folder for the run, received .*/run, which is a file"),
    "build config value of the wrong type": Case(
        lambda c: _tiny_build(c, "--config", str(c.file("c.yaml", "dropout: high\n"))), 2,
        r"expected 'dropout' in .*c.yaml to be a number or null, received 'high' \(str\)", _no_run),
    "build config malformed YAML": Case(
        lambda c: _tiny_build(c, "--config", str(c.file("c.yaml", "epochs: [1\n"))), 2,
        r"expected valid YAML in .*c.yaml, received a syntax error at line 2", _no_run),
    "build config a list": Case(
        lambda c: _tiny_build(c, "--config", str(c.file("c.json", "[1, 2]"))), 2,
        r"expected a mapping of keys to values in .*c.json, received list", _no_run),
    "build config unknown key": Case(
        lambda c: _tiny_build(c, "--config", str(c.file("c.yaml", "epoch: 3\n"))), 2,
        r"unknown key\(s\) epoch in .*c.yaml", _no_run),
    "build CSV with one empty split cell": Case(
        lambda c: _tiny_build(c, "--data", str(c.csv_data("{path},circle,"))), 2,
        r"expected a split \(train/val/test\) in every row .* received an empty split on line 3", _no_run),
    "build CSV with an empty label": Case(
        lambda c: _tiny_build(c, "--data", str(c.csv_data("{path},,train"))), 2,
        r"expected a label in every row .* received an empty label on line 3", _no_run),
    "build data missing": Case(
        lambda c: _tiny_build(c, "--data", str(c.tmp / "nothing")), 2,
        r"expected a data folder or CSV, but '.*nothing' does not exist", _no_run),
    "build data with one class": Case(
        lambda c: _tiny_build(c, "--data", str(_one_class(c))), 2,
        r"expected at least 2 classes to train a classifier, found 1 \('circle'\)", _no_run),
    "build data that cannot be decoded": Case(
        lambda c: _tiny_build(c, "--data", str(_junk_classes(c))), 2,
        r"none of the 2 images under .*junk could be decoded", _no_run),
    "build resume with a damaged state.json": Case(
        lambda c: _damaged_state(c, '{"phase": 1, "epo'), 2,
        r"expected a JSON checkpoint state in .*state.json, it is damaged", check=_state_untouched),
    "build resume with a state.json of the wrong shape": Case(
        lambda c: _damaged_state(c, "[1, 2, 3]"), 2,
        r"expected a checkpoint state with phase, epoch, weights, optimizer and history", check=_state_untouched),
    "build resume naming missing checkpoints": Case(
        lambda c: _damaged_state(c, json.dumps({"phase": 1, "epoch": 2, "weights": "w.weights.h5",
                                                "optimizer": "o.npz", "history": []})), 2,
        r"expected the checkpoint files w.weights.h5, o.npz that .* names, found none", check=_state_untouched),
    "build max-image-pixels not a number": Case(
        lambda c: _tiny_build(c, "--max-image-pixels", "lots"), 2,
        r"argument --max-image-pixels: expected a positive number of pixels", _no_run),
    # --- export -------------------------------------------------------------------------------------
    "export run dir missing": Case(
        lambda c: ["export", str(c.tmp / "nope"), "--out", str(c.tmp / "e")], 2,
        r"expected a run directory written by `edgeport build`, but .*nope is not a folder", lambda c: [c.tmp / "e"]),
    "export unknown scheme": Case(
        lambda c: ["export", str(c.run_dir), "--schemes", "int4", "--out", str(c.tmp / "e")], 2,
        r"unknown export scheme\(s\) 'int4'", lambda c: [c.tmp / "e"]),
    "export config value of the wrong type": Case(
        lambda c: ["export", str(c.run_dir), "--out", str(c.tmp / "e"), "--config",
                   str(c.file("e.yaml", "opset: [17]\n"))], 2,
        r"expected 'opset' in .*e.yaml to be an integer, received \[17\] \(list\)", lambda c: [c.tmp / "e"]),
    "export config malformed JSON": Case(
        lambda c: ["export", str(c.run_dir), "--out", str(c.tmp / "e"), "--config", str(c.file("e.json", "{opset: 1"))],
        2, r"expected valid JSON in .*e.json, received a syntax error", lambda c: [c.tmp / "e"]),
    "export range rule a scheme lacks": Case(
        lambda c: ["export", str(c.run_dir), "--out", str(c.tmp / "e"), "--calibration-method", "mse"], 2,
        r"expected --calibration-method for onnx-int8 to be one of auto, minmax, percentile, entropy; "
        r"received 'mse' \(offered by int8\)", lambda c: [c.tmp / "e"]),
    "export calibration samples zero": Case(
        lambda c: ["export", str(c.run_dir), "--out", str(c.tmp / "e"), "--calibration-samples", "0"], 2,
        r"expected --calibration-samples >= 1, received 0", lambda c: [c.tmp / "e"]),
    "export negative max-drop": Case(
        lambda c: ["export", str(c.run_dir), "--out", str(c.tmp / "e"), "--max-drop", "-1"], 2,
        r"--max-drop: expected top-1 points >= 0", lambda c: [c.tmp / "e"]),
    # --- run ----------------------------------------------------------------------------------------
    "run model missing": Case(
        lambda c: ["run", str(c.tmp / "nope.tflite"), "--source", str(c.images())], 2,
        r"expected a model file or an export directory, received '.*nope.tflite' which does not exist"),
    "run text file named .tflite": Case(
        lambda c: ["run", str(c.file("m.tflite", "hello, not a model")), "--source", str(c.images())], 2,
        r"expected a TFLite flatbuffer \(identifier TFL3\)"),
    "run first 100 kB of a .tflite": Case(
        lambda c: ["run", str(c.file("m.tflite", (c.export / "model_fp32.tflite").read_bytes()[:100_000])),
                   "--source", str(c.images())], 2,
        r"expected a complete TFLite flatbuffer, but its .* lies outside the file's 100000 bytes"),
    "run half an .onnx": Case(
        lambda c: ["run", str(c.file("m.onnx", (c.export / "model.onnx").read_bytes()[:60_000])),
                   "--source", str(c.images())], 2,
        r"expected a complete ONNX model file, but field \d+ at byte \d+ needs \d+ bytes"),
    "run export with a damaged int8 file": Case(
        lambda c: _damage(c, "int8"), 2, r"expected model_int8.tflite to have the sha256 that .*manifest.json records"),
    "run export with a damaged onnx file": Case(
        lambda c: _damage(c, "onnx"), 2, r"expected model.onnx to have the sha256 that .*manifest.json records"),
    "run export whose manifest is cut short": Case(
        lambda c: ["run", str(_edit_manifest(c, lambda text: text[:200])), "--source", str(c.images())], 2,
        r"expected JSON in .*manifest.json, could not read it"),
    "run json-summary into a missing folder": Case(
        lambda c: ["run", str(c.export), "--source", str(c.images()), "--json-summary", str(c.tmp / "no" / "s.json")],
        2, r"expected --json-summary in an existing folder, received .*s.json: .*no does not exist; create it first",
        lambda c: [c.tmp / "no"], check=lambda c, out, err: _assert("#0" not in out, out)),
    "run json-summary is a folder": Case(
        lambda c: ["run", str(c.export), "--source", str(c.images()), "--json-summary", str(c.tmp)], 2,
        r"expected --json-summary to be a file name, received .*, which is a folder"),
    "run zero frames": Case(
        lambda c: ["run", str(c.export), "--source", str(c.file("junk/a.jpg", "x").parent),
                   "--json-summary", str(c.tmp / "s.json")], 1,
        r"no frame was classified \(1 unreadable frame\(s\) skipped\)", check=_summary_json("fps_ratio", None)),
    "run truncated video": Case(
        lambda c: ["run", str(c.export), "--source", str(c.video(0.5)), "--json-summary", str(c.tmp / "s.json")], 1,
        r"video file '.*clip.avi' ended after \d+ of the 30 frames its header announces",
        check=_summary_json("source_ended_early", ...)),
    "run a file named like a pipeline": Case(
        lambda c: ["run", str(c.export), "--source", str(c.video(1.0, "clip!1.avi")), "--headless"], 0,
        r"frames 30 in", check=lambda c, out, err: _assert(out.count('"top"') == 30, out)),
    "run images over the pixel limit": Case(
        lambda c: ["--max-image-pixels", "100", "run", str(c.export), "--source", str(c.images())], 1,
        r"no frame was classified \(2 unreadable frame\(s\) skipped\)"),
    "run stream credentials not printed": Case(
        lambda c: ["run", str(c.export), "--source", "rtsp://admin:p@ss/w0rd@127.0.0.1:9/live", "--retries", "0"], 2,
        r"could not open stream 'rtsp://\*\*\*@127.0.0.1:9/live'",
        check=lambda c, out, err: _assert("w0rd" not in out + err, err)),
    "run labels with escape sequences": Case(
        _labels_with_escapes, 0, r"frames 1 in", check=_no_escapes, needs="onnx"),
    "run a model whose output is NaN": Case(
        _nan_weights, 2, r"expected finite probabilities from nan.onnx, received 5 NaN or infinite of 5; the model "
        r"file is damaged", check=lambda c, out, err: _assert('"top"' not in out, out), needs="onnx"),
    "run top-k zero": Case(
        lambda c: ["run", str(c.export), "--source", str(c.images()), "--top-k", "0"], 2,
        r"expected --top-k >= 1, received 0"),
    # --- bench --------------------------------------------------------------------------------------
    "bench export dir missing": Case(
        lambda c: ["bench", str(c.tmp / "nope"), "--data", str(c.data), "--out", str(c.tmp / "bench")], 2,
        r"expected an export directory .* but '.*nope' is not a directory", lambda c: [c.tmp / "bench"]),
    "bench every variant failed": Case(
        _all_damaged, 1, r"no variant could be measured: all 8 failed",
        check=lambda c, out, err: _assert(out.count("FAILED") == 8 and "sha256" in out, out)),
    "bench a model the worker's engine cannot load": Case(
        _unloadable_onnx, 1, r"no variant could be measured: all 1 failed",
        check=lambda c, out, err: _assert(all(
            "onnxruntime could not load" in r["reason"] and "NoSuchOperator" in r["reason"]
            for r in json.loads((c.tmp / "bench" / "bench.json").read_text())["rows"]), out),
        needs="onnx"),
    "bench out is a file": Case(
        lambda c: ["bench", str(c.export), "--data", str(c.data), "--out", str(c.file("bench", "x"))], 2,
        r"expected --out to be a folder for bench.json/.csv/.md/.png, received .*bench, which is a file"),
    "bench config value of the wrong type": Case(
        lambda c: ["bench", str(c.export), "--data", str(c.data), "--config", str(c.file("b.yaml", "threads: [one]\n")),
                   "--out", str(c.tmp / "bench")], 2,
        r"expected 'threads' in .*b.yaml to be a list of integers, received \['one'\]", lambda c: [c.tmp / "bench"]),
    "bench config malformed YAML": Case(
        lambda c: ["bench", str(c.export), "--data", str(c.data), "--config", str(c.file("b.yaml", "a: b: c\n")),
                   "--out", str(c.tmp / "bench")], 2, r"expected valid YAML in .*b.yaml", lambda c: [c.tmp / "bench"]),
    "bench CSV with one empty split cell": Case(
        lambda c: ["bench", str(c.export), "--data", str(c.csv_data("{path},circle,")), "--out", str(c.tmp / "bench")],
        2, r"received an empty split on line 3", lambda c: [c.tmp / "bench"]),
    "bench manifest that is a list": Case(
        lambda c: ["bench", str(_edit_manifest(c, lambda text: "[]")), "--data", str(c.data),
                   "--out", str(c.tmp / "bench")], 2,
        r"expected a JSON object in .*manifest.json, received list", lambda c: [c.tmp / "bench"]),
    "bench unknown engine": Case(
        lambda c: ["bench", str(c.export), "--data", str(c.data), "--engines", "tensorrt-llm",
                   "--out", str(c.tmp / "bench")], 2, r"unknown engine 'tensorrt-llm'", lambda c: [c.tmp / "bench"]),
    "bench compare of a file that is no report": Case(
        lambda c: ["bench", "compare", str(c.file("x.json", '{"a": 1}')), str(c.file("y.json", "[]"))], 2,
        r"expected an edgeport bench report in .*x.json"),
    "bench image over the pixel limit is skipped and counted": Case(
        lambda c: ["bench", str(c.export), "--data", str(_data_with_huge_png(c)), "--split", "all",
                   "--schemes", "int8", "--no-accuracy", "--runs", "2", "--warmup", "0", "--progress", "off",
                   "--out", str(c.tmp / "bench")], 0, r"wrote .*bench.json", check=_skipped_one),
}


def _assert(ok: bool, text: str) -> None:
    assert ok, text[-2000:]


CHILD_OUTPUT = Path(__file__).resolve().parent / "child_output"


def _children_wrote_no_traceback(folder: Path) -> None:
    """No child process printed a traceback, and no bench worker failed on an error that is not edgeport's
    clear one (the worker turns any exception into a one-line ``reason``: only its own output tells which)."""
    for log in sorted(folder.iterdir()):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, f"child process {log.name}:\n{text[-3000:]}"
        if log.suffix == ".out":
            for line in text.splitlines():
                if line.startswith("{") and '"user_error"' in line:
                    res = json.loads(line)
                    assert res["user_error"], (f"a bench worker (pid {log.stem}) failed on {res['error_type']}: "
                                               f"{res['reason']} - a bug, not a clear error; its parent passed on "
                                               "only this one line")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, request, capsys, monkeypatch):
    case = CASES[name]
    if case.needs:
        pytest.importorskip(case.needs)
    scratch = tmp_path / "system-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # temp folders made in this process land here
    monkeypatch.setenv("TMPDIR", str(scratch))  # and in child processes
    children = tmp_path / "child-output"  # what each child process wrote (tests/child_output/sitecustomize.py)
    children.mkdir()
    monkeypatch.setenv("EDGEPORT_TEST_CHILD_LOG", str(children))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CHILD_OUTPUT), os.environ.get("PYTHONPATH")])))
    c = Ctx(tmp_path / "case", request)
    c.tmp.mkdir()
    argv = case.argv(c)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    _children_wrote_no_traceback(children)
    assert rc == case.rc, f"exit {rc}, expected {case.rc}\n{err[-3000:]}\n{out[-1000:]}"
    if case.rc == 2:  # one error line (after argparse's usage lines, for a usage error)
        command = next(a for a in argv if a in ("build", "export", "run", "bench"))
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("usage:", " "))]
        assert len(lines) == 1 and lines[0].startswith(f"edgeport {command}: error: "), err
    assert re.search(case.match, err + out), f"{case.match!r} not in:\n{err[-3000:]}\n{out[-2000:]}"
    for p in case.absent(c):
        assert not p.exists(), f"{p} was written"
    if case.check:
        case.check(c, out, err)
    # edgeport's temporary folders (edgeport-bench-*, edgeport-export-*) are gone; files that TensorFlow
    # (autograph sources, removed at exit) and others keep there are not edgeport's
    left = [p.name for p in scratch.iterdir() if p.is_dir() or "edgeport" in p.name]
    assert not left, f"left in the temporary folder: {left}"
    leftovers = [p for p in c.tmp.rglob(".*.tmp")]
    assert not leftovers, f"half-written files: {leftovers}"


def test_resume_with_nothing_to_resume_says_so_and_trains(tmp_path, request, caplog):
    """--resume on an empty --out is allowed (a restart loop can always pass it) but said plainly."""
    c = Ctx(tmp_path, request)
    with caplog.at_level(logging.WARNING):
        rc = main(_tiny_build(c, "--resume", "--image-size", "8"))
    assert rc == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith(f"--resume: nothing to resume in {c.tmp / 'run'} (no checkpoints/state.json); "
                            "starting a new run from epoch 1") for m in warnings), warnings
    assert (c.tmp / "run" / "model.keras").is_file()


def test_at_least_forty_cases():
    assert len(CASES) >= 40
    assert {name.split()[0] for name in CASES} == {"build", "export", "run", "bench"}
