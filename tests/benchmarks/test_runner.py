"""End to end on the tiny export: every scheme, failure rows, process isolation, honest latency, no TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from edgeport.benchmarks import BenchConfig, run
from edgeport.benchmarks.report import FAILED, NOT_AVAILABLE, OK, load
from edgeport.benchmarks.runner import select_samples
from edgeport.benchmarks.worker import measure_latency
from edgeport.cli import main
from edgeport.errors import ConfigError, DataError
from edgeport.imaging import load_resized
from edgeport.metrics import top_k_pct
from edgeport.schemes import precision_of

QUICK = dict(limit=12, warmup=2, runs=10, progress=False)


@pytest.fixture(scope="module")
def bench(tiny_export_dir, tiny_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out")
    cfg = BenchConfig(export_dir=str(tiny_export_dir), data=str(tiny_data_dir), threads=(1, 2), out=str(out), **QUICK)
    return cfg, run(cfg), out


def _manifest(export_dir: Path) -> dict:
    return json.loads((export_dir / "manifest.json").read_text())


def _runnable_tflite_engine():
    from edgeport.runtime import engines_for

    return engines_for("x.tflite")


def test_writes_the_four_files_with_every_scheme(bench, tiny_export_dir):
    cfg, report, out = bench
    for name in ("bench.json", "bench.csv", "bench.md", "bench.png"):
        assert (out / name).is_file(), name
    back = load(out / "bench.json")
    from edgeport.benchmarks.report import SCHEMA_VERSION

    assert back["schema_version"] == SCHEMA_VERSION == 3 and back["environment"]["python"]
    files = {a["file"] for a in _manifest(tiny_export_dir)["artifacts"]}
    assert {r["artifact"] for r in report["rows"]} == files
    md = (out / "bench.md").read_text()
    assert all(f"| {f} |" in md for f in files)


def test_ok_rows_have_every_number(bench):
    _, report, _ = bench
    ok = [r for r in report["rows"] if r["status"] == OK]
    assert ok, [(r["artifact"], r["reason"]) for r in report["rows"]]
    for r in ok:
        assert r["runs"] == 10 and r["warmup"] == 2
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["images_per_s"] == pytest.approx(1000 / lat["mean"])
        assert r["load_s"] > 0 and r["first_inference_ms"] > 0 and r["bytes"] > 0
        acc = r["accuracy"]
        assert acc["images"] == 12 and acc["top5_pct"] is None  # 5 classes: no top-5
        # top-1 is the share of its own answers, image by image, that are the true class
        truth = np.asarray(report["data"]["labels"])
        assert len(acc["top1"]) == acc["images"]
        assert acc["top1_pct"] == pytest.approx(100.0 * np.mean(np.asarray(acc["top1"]) == truth[:acc["images"]]))
        # against its fp32 reference (same engine), image by image: the answers shared, the top-1 difference
        ref_artifact, ref_engine = acc["reference"].split("@")
        ref = next(q["accuracy"] for q in ok if q["artifact"] == ref_artifact and q["engine"] == ref_engine)
        assert ref_artifact.endswith(("fp32.tflite", ".onnx")) and "int8" not in ref_artifact, acc["reference"]
        assert acc["agreement_pct"] == pytest.approx(100.0 * np.mean(np.asarray(acc["top1"]) == ref["top1"]))
        assert acc["delta_top1_pts"] == pytest.approx(acc["top1_pct"] - ref["top1_pct"], abs=1e-6)
    assert {r["threads"] for r in ok} == {1, 2}


def test_rows_without_an_engine_say_not_available(bench):
    _, report, _ = bench
    for r in report["rows"]:
        if r["status"] != OK:
            assert r["status"] in (NOT_AVAILABLE, FAILED) and r["reason"], r


def test_fp32_is_the_reference_of_its_format(bench):
    _, report, _ = bench
    for r in report["rows"]:
        if r["status"] == OK and precision_of(r["scheme"]) == "fp32":
            assert r["accuracy"]["delta_top1_pts"] == 0.0 and r["accuracy"]["agreement_pct"] == 100.0
            assert r["accuracy"]["reference"].startswith(r["artifact"] + "@")


def test_dynamic_range_is_not_labelled_int8(bench):
    _, report, _ = bench
    dyn = [r for r in report["rows"] if precision_of(r["scheme"]) == "dynamic"]
    assert dyn and all("float" in r["precision"] and not r["precision"].startswith("int8") for r in dyn)


def test_each_variant_runs_in_its_own_process(bench):
    _, report, _ = bench
    ok = [r for r in report["rows"] if r["status"] == OK]
    pids = [r["pid"] for r in ok]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids
    for r in ok:
        assert r["peak_rss_mb"] >= r["baseline_rss_mb"] > 0


def test_accuracy_equals_the_classifier_in_this_process(bench, tiny_export_dir):
    """The report's top-1 for the fp32 TFLite is what Classifier gives on the same images."""
    from edgeport.runtime import Classifier

    cfg, report, _ = bench
    row = next(r for r in report["rows"] if r["artifact"] == "model_fp32.tflite" and r["status"] == OK)
    labels = tuple(_manifest(tiny_export_dir)["labels"])
    pairs, _ = select_samples(cfg, cfg.data, labels)
    with Classifier.open(tiny_export_dir / "model_fp32.tflite", engine=row["engine"]) as clf:
        size = (clf.contract.height, clf.contract.width)
        top = [int(np.argmax(clf.predict(clf.prepare(load_resized(p, size, clf.contract.resize))))) for p, _ in pairs]
    assert row["accuracy"]["top1_pct"] == pytest.approx(top_k_pct(np.array(top), [y for _, y in pairs], 1))


def test_engine_not_installed_is_a_row_not_a_crash(tiny_export_dir, tiny_data_dir):
    from edgeport.runtime import ENGINES

    missing = [n for n in ENGINES.names() if ".tflite" in ENGINES.get(n).suffixes and not ENGINES.get(n).available()]
    if not missing:
        pytest.skip("every TFLite engine is installed here")
    report = run(BenchConfig(export_dir=str(tiny_export_dir), data=str(tiny_data_dir), engines=missing[0],
                             schemes=("fp32",), **QUICK))
    assert [(r["engine"], r["status"]) for r in report["rows"]] == [(missing[0], NOT_AVAILABLE)]
    assert missing[0] in report["rows"][0]["reason"]


def test_corrupt_artifact_is_a_failed_row(tiny_export_dir, tiny_data_dir, tmp_path):
    if not _runnable_tflite_engine():
        pytest.skip("no TFLite engine installed")
    export = tmp_path / "export"
    shutil.copytree(tiny_export_dir, export)
    (export / "model_int8.tflite").write_bytes(b"\x00" * 64 + b"not a flatbuffer")
    report = run(BenchConfig(export_dir=str(export), data=str(tiny_data_dir), schemes=("fp32", "int8"),
                             threads=(1, 2), **QUICK))
    rows = [r for r in report["rows"] if r["format"] == "tflite"]
    assert [r["status"] for r in rows if r["artifact"] == "model_fp32.tflite"] == [OK, OK]
    bad = [r for r in rows if r["artifact"] == "model_int8.tflite"]
    assert bad and all(r["status"] == FAILED and r["latency_ms"] is None for r in bad)
    assert "sha256" in bad[0]["reason"]  # the manifest's hash catches the changed file before it runs
    (export / "manifest.json").unlink()  # a plain folder: the damaged file itself is the clear error
    report = run(BenchConfig(export_dir=str(export), data=str(tiny_data_dir), schemes=("fp32", "int8"), **QUICK))
    bad = [r for r in report["rows"] if r["artifact"] == "model_int8.tflite"]
    assert bad and all(r["status"] == FAILED for r in bad) and "TFLite flatbuffer" in bad[0]["reason"]


def test_time_capped_accuracy_scores_a_subset_and_says_so(tiny_export_dir, tiny_data_dir):
    if not _runnable_tflite_engine():
        pytest.skip("no TFLite engine installed")
    report = run(BenchConfig(export_dir=str(tiny_export_dir), data=str(tiny_data_dir), schemes=("fp32", "int8"),
                             accuracy_max_seconds=1e-6, **QUICK))
    ok = [r for r in report["rows"] if r["status"] == OK]
    assert ok
    for r in ok:
        acc = r["accuracy"]
        assert 1 <= acc["images"] < acc["images_total"] == 12
        assert f"accuracy on {acc['images']}/12 images" in r["reason"]
        assert acc["delta_top1_pts"] is not None  # compared on the images both passes saw


def test_bad_options_are_clear_errors(tiny_export_dir, tiny_data_dir):
    with pytest.raises(ConfigError, match="unknown engine"):
        run(BenchConfig(export_dir=str(tiny_export_dir), data=str(tiny_data_dir), engines="warp-drive"))
    with pytest.raises(ConfigError, match="--threads"):
        BenchConfig(export_dir=".", threads=(0,))
    with pytest.raises(DataError, match="split"):
        run(BenchConfig(export_dir=str(tiny_export_dir), data=str(tiny_data_dir), split="test"))


def test_default_data_is_the_runs_validation_split(tiny_export_dir):
    from edgeport.manifest import read_manifest

    run_dir = read_manifest(tiny_export_dir).run_dir
    if run_dir is None or not (run_dir / "data_split.csv").is_file():
        pytest.skip("the export's run directory (and its data_split.csv) is not on this machine")
    report = run(BenchConfig(export_dir=str(tiny_export_dir), schemes=("fp32",), **{**QUICK, "limit": 5}))
    assert report["data"]["source"].endswith("data_split.csv") and report["data"]["split"] == "val"
    assert all(r["accuracy"]["images"] == 5 for r in report["rows"] if r["status"] == OK)


def test_cli_writes_files_and_gates(tiny_export_dir, tiny_data_dir, tmp_path, capsys):
    args = ["bench", str(tiny_export_dir), "--data", str(tiny_data_dir), "--limit", "6", "--runs", "5",
            "--warmup", "1", "--schemes", "fp32,int8", "--out", str(tmp_path), "--progress", "off"]
    assert main(args + ["--max-drop", "100"]) == 0
    out = capsys.readouterr().out
    assert "model_fp32.tflite" in out and "max-drop gate passed" in out and "wrote" in out
    assert (tmp_path / "bench.csv").is_file()
    with pytest.raises(SystemExit) as exc:  # negative limit: a usage error, before anything runs
        main(args + ["--max-drop", "-1"])
    assert exc.value.code == 2 and "expected top-1 points >= 0" in capsys.readouterr().err


def test_no_tensorflow_anywhere(tiny_export_dir, tiny_data_dir, tmp_path):
    """The bench and a worker job complete with TensorFlow and Keras made unimportable."""
    if not _runnable_tflite_engine():
        pytest.skip("no TFLite engine installed")
    code = textwrap.dedent(f"""
        import sys, json
        sys.modules["tensorflow"] = None
        sys.modules["keras"] = None
        import edgeport.cli, edgeport.benchmarks.cli
        from edgeport.benchmarks import BenchConfig, run
        from edgeport.benchmarks.worker import run_job
        r = run(BenchConfig(export_dir={str(tiny_export_dir)!r}, data={str(tiny_data_dir)!r}, schemes=("fp32",),
                            limit=4, warmup=1, runs=3, progress=False, out={str(tmp_path)!r}))
        assert any(row["status"] == "ok" for row in r["rows"]), r["rows"]
        import numpy as np
        np.save({str(tmp_path / "imgs.npy")!r}, np.zeros((2, 32, 32, 3), np.uint8))
        job = dict(kind="latency", model={str(tiny_export_dir / "model_fp32.tflite")!r}, engine=None,
                   images={str(tmp_path / "imgs.npy")!r}, warmup=1, runs=2)
        from edgeport.runtime import engines_for
        job["engine"] = engines_for(job["model"])[0]
        assert len(run_job(job)["times_ms"]) == 2
        print("TF-FREE", sys.modules["tensorflow"])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TF-FREE None" in proc.stdout


def _paired_ratio(measure_a, measure_b, pairs: int) -> tuple[float, list[float]]:
    """Median over ``pairs`` of a/b, each pair measured back to back in A-B-B-A order (a linear drift in the
    machine's load cancels within a pair, and a preemption spoils one pair, not the median)."""
    ratios = []
    for _ in range(pairs):
        a1, b1, b2, a2 = measure_a(), measure_b(), measure_b(), measure_a()
        ratios.append((a1 + a2) / (b1 + b2))
    return float(np.median(ratios)), ratios


#: README and benchmarks/bench_honest_latency.py: the bench's latency is within 10 % of a plain invoke loop
HONEST = 0.10


def test_reported_latency_is_honest(bench, tiny_export_dir, tiny_data_dir, tmp_path):
    """The bench's timed loop, and the fresh worker process the report comes from, match a plain loop of
    engine.invoke() on the same engine, threads and input, within the documented 10 %.

    On a machine that other work shares the bound is not widened: the two are measured alternately, in
    pairs, and the median of the per-pair ratios is held to 10 %.
    """
    from edgeport.benchmarks.runner import run_worker
    from edgeport.runtime import Classifier

    _, report, _ = bench
    row = next(r for r in report["rows"] if r["artifact"] == "model_fp32.tflite" and r["status"] == OK and r["threads"] == 1)
    model = tiny_export_dir / "model_fp32.tflite"
    with Classifier.open(model, engine=row["engine"], threads=1) as clf:
        img = load_resized(next(iter(sorted(Path(tiny_data_dir).rglob("*.jpg")))), (clf.contract.height, clf.contract.width))
        x = clf.prepare(img)
        invoke = clf.engine.invoke
        for _ in range(50):
            invoke(x)

        def plain(n: int) -> float:  # ms per call of a bare loop
            t0 = time.perf_counter()
            for _ in range(n):
                invoke(x)
            return (time.perf_counter() - t0) * 1000.0 / n

        # 1. the bench's timing loop (a timer around each call) costs nothing measurable
        in_process, ratios = _paired_ratio(lambda: float(np.mean(measure_latency(invoke, [x], warmup=0, runs=20))),
                                           lambda: plain(20), pairs=40)
        assert in_process == pytest.approx(1.0, abs=HONEST), f"bench loop / plain loop: {sorted(ratios)}"

        # 2. the figure the report gives: a fresh worker process, as `edgeport bench` runs it
        np.save(tmp_path / "images.npy", img[None])
        job = {"kind": "latency", "model": str(model), "engine": row["engine"], "images": str(tmp_path / "images.npy"),
               "threads": 1, "warmup": 20, "runs": 200}

        def worker() -> float:
            res = run_worker(job, tmp_path, timeout=120)
            assert res.get("ok"), res
            return float(np.median(res["times_ms"]))

        fresh, ratios = _paired_ratio(worker, lambda: float(np.median([plain(1) for _ in range(200)])), pairs=8)
    assert fresh == pytest.approx(1.0, abs=HONEST), f"worker p50 / plain-loop p50: {sorted(ratios)}"


def test_latency_alone_needs_no_data(tiny_export_dir, tmp_path):
    """--no-accuracy without --data: the export's golden images, or noise for a bare folder (like benchmark_model)."""
    if not _runnable_tflite_engine():
        pytest.skip("no TFLite engine installed")
    copied = tmp_path / "deep" / "er" / "export"  # the run it names (relative path) is not beside it here
    shutil.copytree(tiny_export_dir, copied)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_export_dir / "model_fp32.tflite", bare / "model_fp32.tflite")
    for export, layout in ((copied, "golden"), (bare, "noise")):
        report = run(BenchConfig(export_dir=str(export), accuracy=False, schemes=("fp32",),
                                 **{**QUICK, "data": None}))
        assert report["data"]["layout"] == layout and report["data"]["images"] > 0
        assert [r["status"] for r in report["rows"]] == [OK] and report["rows"][0]["accuracy"] is None
    with pytest.raises(DataError, match="--data"):  # accuracy needs labelled images
        run(BenchConfig(export_dir=str(bare), schemes=("fp32",), **{**QUICK, "data": None}))
