"""Damaged model files: a clear edgeport error or a verified result, never a traceback, crash or hang.

Every artifact kind of the tiny export (.tflite and .onnx, all schemes) is
truncated at many offsets and has random bytes flipped. A damaged file can
reach three places, each tested here:

* the pure-Python metadata readers (in-process: thousands of cases are cheap);
* ``Classifier.open`` on an export directory: the manifest's sha256 stops it;
* an engine, when a plain file is handed over without a manifest: LiteRT or
  onnxruntime might crash the process on a malformed file, so those cases run
  in forks of a child process (``fuzz_child.py``), each with a timeout, and
  must exit cleanly: 0 with a result that is checked (a classification with
  the file's own labels and probabilities; an output tensor of the shape and
  type the engine declares), or 2 with one ``edgeport run: error:`` line.

The damage is drawn anew on every run; the seed is printed and named in every
failure message: ``EDGEPORT_FUZZ_SEED=N pytest tests/runtime/test_fuzz.py``
replays a failure.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from allowed_skips import skip_without

from edgeport.contract import METADATA_KEY, ModelInfo
from edgeport.errors import ModelError
from edgeport.metadata import check_tflite, read_model_info, read_onnx_metadata, read_tflite_metadata
from edgeport.runtime import Classifier, engines_for

HERE = Path(__file__).resolve().parent
TRUNCATIONS = 60  # offsets per file, spread over its length (plus byte 100 000, the case)
FLIPS = 60  # damaged copies per file, 1 to 16 random bytes each

#: new damage on every run, unless a failure is being replayed
SEED = int(os.environ.get("EDGEPORT_FUZZ_SEED") or random.SystemRandom().randrange(2**31))
REPLAY = f"(fuzz seed {SEED}: replay with EDGEPORT_FUZZ_SEED={SEED})"


@pytest.fixture(autouse=True)
def _say_the_seed():
    print(REPLAY)  # shown with a failing test's captured output


def _rng(test: int) -> random.Random:
    return random.Random(SEED * 10 + test)


def _artifacts(export_dir: Path) -> list[Path]:
    files = sorted(export_dir.glob("*.tflite")) + sorted(export_dir.glob("*.onnx"))
    assert {f.suffix for f in files} == {".tflite", ".onnx"}, files
    return files


def damaged(data: bytes, rng: random.Random, truncations: int = TRUNCATIONS, flips: int = FLIPS):
    """(kind, bytes) copies of ``data``: truncated at spread offsets, and with random bytes flipped."""
    n = len(data)
    for cut in sorted({int(n * i / truncations) for i in range(truncations)} | {min(100_000, n - 1)}):
        yield f"truncated at {cut}", data[:cut]
    for _ in range(flips):
        x = bytearray(data)
        where: set[int] = set()
        count = rng.choice((1, 2, 4, 16))
        while len(where) < count:
            # half the flips in the first/last 4 kB, where the flatbuffer/protobuf structure lives
            where.add(rng.randrange(n) if rng.random() < 0.5 else rng.choice((rng.randrange(min(n, 4096)),
                                                                                n - 1 - rng.randrange(min(n, 4096)))))
        for i in where:
            x[i] = (x[i] + rng.randrange(1, 256)) % 256  # always another value: every copy is damaged
        yield f"bytes flipped at {sorted(where)}", bytes(x)


def test_metadata_readers_on_damaged_files(tiny_export_dir):
    """In-process: every damaged copy gives ModelError or metadata that parses (or is cleanly refused)."""
    rng = _rng(0)
    outcomes = {"result": 0, "ModelError": 0}
    for f in _artifacts(tiny_export_dir):
        reader = read_tflite_metadata if f.suffix == ".tflite" else read_onnx_metadata
        for kind, data in damaged(f.read_bytes(), rng):
            try:
                raw = reader(data).get(METADATA_KEY)
                if raw:
                    ModelInfo.from_json(raw, f.name)
                outcomes["result"] += 1
            except ModelError:
                outcomes["ModelError"] += 1
            except Exception as exc:  # noqa: BLE001 - what this test is looking for
                pytest.fail(f"{f.name} {kind}: {type(exc).__name__}: {exc} {REPLAY}")
    assert sum(outcomes.values()) >= 500 and outcomes["ModelError"] > 100 and outcomes["result"] > 100, (outcomes,
                                                                                                       REPLAY)


def test_every_truncation_of_a_tflite_is_refused_before_an_engine_sees_it(tiny_export_dir):
    """tflite-runtime 2.14 dies with SIGSEGV on some truncated files; the structural check the TFLite
    engines run first refuses every cut (about 300 per file, the last 64 bytes one by one) and passes
    the whole file, damaged or not, whenever nothing it references is missing."""
    for f in _artifacts(tiny_export_dir):
        if f.suffix != ".tflite":
            continue
        data = f.read_bytes()
        check_tflite(data)
        cuts = sorted(set(range(8, len(data), max(1, len(data) // 300))) | set(range(len(data) - 64, len(data))))
        passed = []
        for cut in cuts:
            try:
                check_tflite(data[:cut])
                passed.append(cut)
            except ModelError:
                pass
        assert not passed, f"{f.name}: cuts at {passed[:5]} of {len(data)} bytes not refused"


def _shape_starts(data: bytes) -> tuple[list[int], list[int]]:
    """Where the shape vectors of the fp16 file's tensors start: (DEQUANTIZE outputs, tensors with weight data)."""
    from edgeport import metadata as m

    root = m._table_at(data, 0)
    codes = [m._builtin_code(data, c) for c in m._tables(data, root, 1, "codes")]
    buffers = m._tables(data, root, 4, "buffers")
    (sg,) = m._tables(data, root, 2, "subgraphs")
    tensors = m._tables(data, sg, 0, "tensors")

    def shape_start(i: int) -> int | None:  # the first dimension's bytes (None for a scalar)
        start, rank = m._vector(data, m._field_pos(data, tensors[i], 0), 4, "shape")
        return start if rank else None

    def code(op: int) -> int:  # opcode_index 0 is left out of the file
        pos = m._field_pos(data, op, 0)
        return codes[m._u32(data, pos) if pos is not None else 0]

    dequantized = [shape_start(m._ints(data, op, 2, "outputs")[0]) for op in m._tables(data, sg, 3, "operators")
                   if code(op) == 6]
    weights = [shape_start(i) for i, t in enumerate(tensors) if m._field_pos(data, t, 2) is not None
               and m._buffer_span(data, buffers[m._u32(data, m._field_pos(data, t, 2))], "buffer")[1]]
    return [s for s in dequantized if s is not None], [s for s in weights if s is not None]


def test_a_shape_that_disagrees_with_its_data_is_refused(tiny_export_dir, tmp_path):
    """Fuzz seed 3 found it: one byte of a DEQUANTIZE output's shape (3 -> 240) made LiteRT's XNNPACK read far
    past the fp16 weights (SIGSEGV); the check refuses such a shape, and one that disagrees with a tensor's data."""
    import struct

    data = (tiny_export_dir / "model_fp16.tflite").read_bytes()
    dequantized, weights = _shape_starts(data)
    assert dequantized and weights
    for start, says in ((dequantized[0], "changes its tensor's element count"), (weights[0], "bytes holds")):
        bad = bytearray(data)
        struct.pack_into("<i", bad, start, struct.unpack_from("<i", data, start)[0] * 80)
        with pytest.raises(ModelError, match=f"expected a consistent TFLite flatbuffer, but .*{says}"):
            check_tflite(bytes(bad))
        (tmp_path / "bad.tflite").write_bytes(bad)
        proc = subprocess.run([sys.executable, "-m", "edgeport", "run", str(tmp_path / "bad.tflite"), "--source",
                               str(HERE), "--max-frames", "1", "--headless"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "consistent TFLite flatbuffer" in proc.stderr, (proc.returncode, proc.stderr)


def test_a_quantization_table_outside_the_file_is_refused(tiny_export_dir):
    """Found in the Pi job (fuzz seed 920871530): a flipped offset of a tensor's quantization parameters made
    tflite-runtime 2.14 read outside the file (SIGSEGV); the check walks those tables too."""
    import struct

    from edgeport import metadata as m

    data = (tiny_export_dir / "model_int8.tflite").read_bytes()
    (sg,) = m._tables(data, m._table_at(data, 0), 2, "subgraphs")
    pos = next(p for p in (m._field_pos(data, t, 4) for t in m._tables(data, sg, 0, "tensors")) if p is not None)
    bad = bytearray(data)
    struct.pack_into("<I", bad, pos, 7_000_000)
    with pytest.raises(ModelError, match="QuantizationParameters table .* lies outside the file"):
        check_tflite(bytes(bad))


def _offset_fields(data: bytes) -> list[tuple[str, int, int, int]]:
    """(table name, field, where its offset is, table) of every offset field the file's tables hold, named as
    the structural check's schema (``metadata._OFFSET_FIELDS``) names them."""
    from edgeport import metadata as m

    found = []

    def walk(table: int, name: str) -> None:
        for field, kind in m._OFFSET_FIELDS.get(name, {}).items():
            pos = m._field_pos(data, table, field)
            if pos is None:
                continue
            found.append((name, field, pos, table))
            if kind[0] == "table":
                walk(m._table_at(data, pos), kind[1])
            elif kind[0] == "tables":
                start, n = m._vector(data, pos, 4, "tables")
                for i in range(n):
                    walk(m._table_at(data, start + 4 * i), kind[1])
            elif kind[0] == "union" and (member := data[m._field_pos(data, table, field - 1)]):
                walk(m._table_at(data, pos), m._UNIONS[kind[1]].get(member, "?"))

    walk(m._table_at(data, 0), "Model")
    return found


def test_every_offset_a_tflite_holds_is_followed_by_the_check(tiny_export_dir):
    """Each kind of offset field in the tiny export's .tflite files (28: a tensor's quantization, an operator's
    options, a signature's tensor names, ...), pointed past the end of the file, is refused: the check
    walks every table, vector, string and union member of schema.fbs, not only those a fuzz seed found."""
    import struct

    kinds = set()
    for f in _artifacts(tiny_export_dir):
        if f.suffix != ".tflite":
            continue
        data = f.read_bytes()
        seen = set()
        for name, field, pos, _ in _offset_fields(data):
            if (name, field) in seen:
                continue
            seen.add((name, field))
            bad = bytearray(data)
            struct.pack_into("<I", bad, pos, len(data) - pos + 8)
            with pytest.raises(ModelError, match="lies outside the file"):
                check_tflite(bytes(bad))
                pytest.fail(f"{f.name}: {name} field {field} (at byte {pos}) pointing past the end was not refused")
        kinds |= seen
    names = {name for name, _ in kinds}
    assert {"Model", "SubGraph", "Tensor", "QuantizationParameters", "Operator", "Buffer", "SignatureDef",
            "TensorMap", "Metadata"} <= names and ("Operator", 4) in kinds and len(kinds) >= 25, sorted(kinds)


def test_a_field_its_table_does_not_hold_is_refused(tiny_export_dir, tmp_path):
    """Found in the Pi job (fuzz seed 393264066): one byte of a tensor's vtable (0 -> 64) gave the tensors
    sharing it a sparsity table that was never written, and tflite-runtime 2.14 followed it (SIGSEGV). A
    builder writes every field inside its table's inline bytes; the check refuses one outside them."""
    import struct

    from edgeport import metadata as m

    data = (tiny_export_dir / "model_fp32.tflite").read_bytes()
    (sg,) = m._tables(data, m._table_at(data, 0), 2, "subgraphs")
    for t in m._tables(data, sg, 0, "tensors"):
        vtable = t - struct.unpack_from("<i", data, t)[0]
        vsize, size = struct.unpack_from("<HH", data, vtable)
        if vsize >= 4 + 2 * 7 and m._field_pos(data, t, 6) is None:  # a sparsity slot, empty
            break
    else:
        pytest.fail("no tensor with an empty sparsity slot in its vtable")
    bad = bytearray(data)
    struct.pack_into("<H", bad, vtable + 4 + 2 * 6, size)
    (tmp_path / "bad.tflite").write_bytes(bad)
    proc = subprocess.run([sys.executable, "-m", "edgeport", "run", str(tmp_path / "bad.tflite"), "--source",
                           str(HERE), "--max-frames", "1", "--headless"], capture_output=True, text=True, timeout=120)
    said = f"field 6 at byte {size}, outside its {size} bytes"
    assert proc.returncode == 2 and said in proc.stderr, (proc.returncode, proc.stderr)


def test_a_table_that_claims_no_bytes_gives_an_answer(tiny_export_dir):
    """Stress seed 10 of the same run: one byte left a vtable saying its table has 0 bytes and no field; the
    check raised StopIteration (a traceback out of edgeport run) instead of passing the file or refusing it."""
    import struct

    from edgeport import metadata as m

    data = (tiny_export_dir / "model_fp32.tflite").read_bytes()
    (sg,) = m._tables(data, m._table_at(data, 0), 2, "subgraphs")
    op = m._tables(data, sg, 3, "operators")[0]
    vtable = op - struct.unpack_from("<i", data, op)[0]
    vsize = struct.unpack_from("<H", data, vtable)[0]
    bad = bytearray(data)
    bad[vtable + 2 : vtable + vsize] = bytes(vsize - 2)  # object size 0, every field absent
    try:
        check_tflite(bytes(bad))
    except ModelError:
        pass


def _input_vector(data: bytes, field: int) -> int:
    """Where the first item of the model input's shape (field 0) or shape signature (field 7) lies."""
    from edgeport import metadata as m

    (sg,) = m._tables(data, m._table_at(data, 0), 2, "subgraphs")
    (x,) = m._ints(data, sg, 1, "inputs")
    return m._vector(data, m._field_pos(data, m._tables(data, sg, 0, "tensors")[x], field), 4, "shape")[0]


def test_an_input_shape_the_graph_cannot_run_is_refused(tiny_export_dir, tmp_path):
    """Found by a stress run of the Pi job's fuzz (seed 11 of a 1,000-file run): one byte of the fp16 file's
    input shape (channels 3 -> 1539) loaded in tflite-runtime 2.14 and killed the first invoke with SIGFPE.
    Refused twice over: the shape disagrees with the shape signature the converter wrote, and (signature
    damaged alike) the first convolution's filter has 3 input channels, and 16 outputs cannot be 513 groups."""
    import struct

    from edgeport.runtime import create_engine

    data = (tiny_export_dir / "model_fp16.tflite").read_bytes()
    shape, signature = _input_vector(data, 0), _input_vector(data, 7)
    bad = bytearray(data)
    struct.pack_into("<i", bad, shape + 12, 1539)
    with pytest.raises(ModelError, match=r"shape \[1, 32, 32, 1539\] with the shape signature \[-1, 32, 32, 3\]"):
        check_tflite(bytes(bad))
    struct.pack_into("<i", bad, signature + 12, 1539)
    (tmp_path / "bad.tflite").write_bytes(bad)
    names = engines_for(tmp_path / "bad.tflite")
    assert names, "no TFLite engine installed"
    with pytest.raises(ModelError, match=r"convolution of 1539 input channels with a filter of shape \[16, 3, 3, 3\]"):
        create_engine(names[0], tmp_path / "bad.tflite")


def test_a_batch_no_machine_can_hold_is_a_clear_error(tiny_export_dir, tmp_path):
    """Stress seed 15: a flipped byte of the input's batch dimension (the signature says -1: any batch is
    consistent) made tflite-runtime 2.14 raise MemoryError (std::bad_alloc) out of allocate_tensors, a
    traceback; LiteRT refuses the same file while delegating. Either way, one ModelError."""
    import struct

    from edgeport.runtime import create_engine

    data = (tiny_export_dir / "model_fp16.tflite").read_bytes()
    bad = bytearray(data)
    struct.pack_into("<i", bad, _input_vector(data, 0), 2**31 - 1)
    check_tflite(bytes(bad))  # consistent: the damage is only in how much memory the file asks for
    (tmp_path / "big.tflite").write_bytes(bad)
    with pytest.raises(ModelError, match="could not load"):
        create_engine(engines_for(tmp_path / "big.tflite")[0], tmp_path / "big.tflite")


def _schema_offset_fields(source: str) -> tuple[dict, dict]:
    """The offset fields and unions of a flatc-generated schema_py_generated.py, in metadata's notation."""
    tables: dict[str, dict[int, tuple]] = {}
    union_of = {}
    for name, body in re.findall(r"\nclass (\w+)\(object\):(.*?)(?=\nclass |\Z)", source, re.S):
        for meth, j, code in re.findall(r"    def (\w+)\(self(, j)?\):\n((?:        .*\n)+)", body):
            off = re.search(r"Offset\((\d+)\)", code)
            if not off or meth.endswith(("Length", "IsNone", "AsNumpy")):
                continue
            field = (int(off.group(1)) - 4) // 2
            cls = re.search(r"obj = (\w+)\(\)", code)
            if j:
                kind = ("tables", cls.group(1)) if "Indirect" in code else ("strings",) if "String(" in code else \
                    ("vector", int(re.search(r"j \* (\d+)", code).group(1)))
            elif "Indirect" in code:
                kind = ("table", cls.group(1))
            elif "Union(" in code:
                kind, union_of[(name, field)] = ("union", None), meth
            elif "String(" in code:
                kind = ("string",)
            else:
                continue
            tables.setdefault(name, {})[field] = kind
    return tables, union_of


def test_the_checks_schema_is_the_installed_litert_schema():
    """metadata._OFFSET_FIELDS was read from LiteRT's schema; a LiteRT with fields the check does not know
    fails here, with the table and field to add."""
    skip_without("ai_edge_litert", why="its schema_py_generated.py is what the check's schema is compared with")
    import importlib.util

    from edgeport import metadata as m

    spec = importlib.util.find_spec("ai_edge_litert.schema_py_generated")
    assert spec is not None and spec.origin, "ai_edge_litert has no schema_py_generated.py"
    source = Path(spec.origin).read_text()
    tables, union_of = _schema_offset_fields(source)
    union_names = {(t, f): kind[1] for t, fields in m._OFFSET_FIELDS.items() for f, kind in fields.items()
                   if kind[0] == "union"}
    assert set(union_of) == set(union_names), (sorted(union_of), sorted(union_names))
    for key in union_of:
        tables[key[0]][key[1]] = ("union", union_names[key])
    assert tables == m._OFFSET_FIELDS, {t: (tables.get(t), m._OFFSET_FIELDS.get(t))
                                        for t in set(tables) | set(m._OFFSET_FIELDS)
                                        if tables.get(t) != m._OFFSET_FIELDS.get(t)}
    for union, members in m._UNIONS.items():
        enum = re.search(rf"\nclass {union}\(object\):\n((?:    \w+ = \d+\n)+)", source)
        assert enum, f"no union {union} in LiteRT's schema"
        codes = {int(v): k for k, v in re.findall(r"    (\w+) = (\d+)", enum.group(1))}
        assert members == {c: n for c, n in codes.items() if n in tables}, union


def test_first_100_kb_of_a_real_tflite(tiny_export_dir, tmp_path):
    """The issue's case: a copy cut short (at 100 kB, or earlier for a smaller file)."""
    for f in _artifacts(tiny_export_dir):
        cut = tmp_path / f.name
        cut.write_bytes(f.read_bytes()[: min(100_000, f.stat().st_size // 2)])
        with pytest.raises(ModelError, match="truncated or damaged"):
            read_model_info(cut)


def test_classifier_open_on_an_export_with_a_damaged_file_stops_at_the_hash(tiny_export_dir, tmp_path):
    rng = _rng(1)
    manifest = json.loads((tiny_export_dir / "manifest.json").read_text())
    checked = 0
    for art in manifest["artifacts"]:
        if art["status"] != "ok" or not engines_for(art["file"]):
            continue
        for kind, data in list(damaged((tiny_export_dir / art["file"]).read_bytes(), rng, truncations=2, flips=2))[1:]:
            export = tmp_path / f"e{checked}"
            shutil.copytree(tiny_export_dir, export)
            (export / art["file"]).write_bytes(data)
            with pytest.raises(ModelError, match="sha256"):
                Classifier.open(export, scheme=art["scheme"])
                pytest.fail(f"{art['file']} {kind} opened {REPLAY}")
            checked += 1
    assert checked >= 12


@pytest.fixture()
def one_image(tmp_path) -> Path:
    import cv2
    import numpy as np

    d = tmp_path / "frames"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8))
    return d


def test_damaged_plain_files_in_a_real_engine_exit_cleanly(tiny_export_dir, tmp_path, one_image):
    """Forked children (fuzz_child.py): each damaged file ends with exit 0 and a result, or exit 2 and
    one edgeport error line; no crash (signal), no hang (timeout), no traceback."""
    rng = _rng(2)
    files = tmp_path / "damaged"
    files.mkdir()
    cases = []
    for f in _artifacts(tiny_export_dir):
        if not engines_for(f):
            continue
        copies = list(damaged(f.read_bytes(), rng, truncations=2, flips=5))
        for i, (kind, data) in enumerate(copies):
            p = files / f"{i}_{f.name}"
            p.write_bytes(data)
            # truncated files stop at the metadata reader in `edgeport run`; load them in the engine too
            modes = ("cli", "engine") if kind.startswith("truncated") else ("cli",) if i % 2 else ("engine",)
            cases += [{"path": str(p), "mode": m, "source": str(one_image), "kind": kind} for m in modes]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, str(HERE / "fuzz_child.py"), str(tmp_path / "cases.json")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(cases) >= 50, REPLAY
    counts = {"ok": 0, "error": 0}
    for r in results:
        name = f"{Path(r['path']).name} ({r['mode']}, {r['kind']}) {REPLAY}"
        assert not r["timed_out"], f"{name} hung: {r['output'][-500:]}"
        assert r["signal"] is None, f"{name} crashed the process with signal {r['signal']}: {r['output'][-500:]}"
        assert "Traceback" not in r["output"], f"{name}: {r['output'][-1500:]}"
        assert r["rc"] in (0, 2), f"{name} exit {r['rc']}: {r['output'][-500:]}"
        if r["rc"] == 2:
            prefix = "edgeport run: error: " if r["mode"] == "cli" else "ModelError: "
            assert prefix in r["output"], f"{name}: {r['output'][-500:]}"
            counts["error"] += 1
        else:
            check = _check_classification if r["mode"] == "cli" else _check_engine_output
            check(Path(r["path"]), r["output"], name)
            counts["ok"] += 1
    assert counts["error"] >= 10, (counts, REPLAY)


def _check_classification(path: Path, output: str, name: str) -> None:
    """`edgeport run ... --max-frames 1` exited 0: one frame, classified with the labels the damaged file itself
    carries (damage may have changed them), probabilities finite in [0, 1], best first."""
    lines = [json.loads(ln) for ln in output.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, f"{name}: expected one JSON line for one frame: {output[-800:]}"
    top = lines[0].get("top")
    labels = tuple(read_model_info(path).labels)
    assert isinstance(top, list) and 1 <= len(top) <= len(labels), f"{name}: {lines[0]}"
    assert all(t["label"] in labels for t in top), f"{name}: labels {[t['label'] for t in top]} not in {labels}"
    probs = [t["prob"] for t in top]
    assert all(isinstance(p, (int, float)) and math.isfinite(p) and 0.0 <= p <= 1.0 + 1e-6 for p in probs), \
        f"{name}: probabilities {probs}"
    assert probs == sorted(probs, reverse=True), f"{name}: not best first: {probs}"


def _check_engine_output(path: Path, output: str, name: str) -> None:
    """The engine case exited 0: one output tensor of one image, of the shape and type the engine declares."""
    lines = [ln for ln in output.splitlines() if ln.startswith("ok ")]
    assert len(lines) == 1, f"{name}: expected one 'ok {{...}}' line: {output[-800:]}"
    try:
        got = json.loads(lines[0][3:])
    except ValueError:
        pytest.fail(f"{name}: exit 0 without the output's description: {lines[0]!r}")
    assert got["shape"] == got["declared_shape"] and got["dtype"] == got["declared_dtype"], f"{name}: {got}"
    assert got["shape"][0] == 1 and got["values"] == math.prod(got["shape"]) >= 2, f"{name}: {got}"
