"""``edgeport bench``: what each scheme costs in accuracy and buys in speed and size, on this device.

For every artifact x engine x threads variant, a fresh worker process
(:mod:`edgeport.benchmarks.worker`) loads the model and times
``engine.invoke`` on real preprocessed images; once per artifact x engine a
worker also classifies the labelled images for accuracy. Images are decoded
and resized once here (per the model's input contract) and shared with the
workers as a ``.npy`` file. No TensorFlow anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgeport.benchmarks import report as rep
from edgeport.benchmarks.artifacts import Artifact, find_artifacts, normalise_scheme
from edgeport.benchmarks.config import BenchConfig
from edgeport.benchmarks.environment import describe
from edgeport.benchmarks.metrics import accuracy_summary, latency_stats
from edgeport.config import to_dict
from edgeport.contract import InputContract
from edgeport.errors import ConfigError, DataError
from edgeport.progress import Progress

log = logging.getLogger(__name__)

#: Never picked by "auto"/"all": full TensorFlow is not a device engine (name it to use it).
_NOT_AUTOMATIC = ("tensorflow",)


# --- which engines run which artifact -----------------------------------------------------


def _unavailable_reason(name: str) -> str:
    if name == "tflite-runtime":
        from edgeport.runtime.engines import tflite_runtime_problem

        problem = tflite_runtime_problem()
        if problem:
            return problem.split(";")[0]
    hints = {"litert": "pip install ai-edge-litert", "onnxruntime": "pip install onnxruntime",
             "tflite-runtime": "pip install tflite-runtime", "tensorflow": "pip install tensorflow"}
    return f"{name} is not installed here ({hints.get(name, 'install it')})"


def plan_engines(art: Artifact, engines: str) -> list[tuple[str, bool, str]]:
    """(engine, available, reason-if-not) for one artifact under an --engines choice."""
    from edgeport.runtime import ENGINES

    suffix = Path(art.file).suffix.lower()
    readers = [n for n in ENGINES.names() if suffix in getattr(ENGINES.get(n), "suffixes", ())]
    if engines == "auto":
        from edgeport.runtime import engines_for

        names = engines_for(art.path)
        if names:
            return [(names[0], True, "")]
        wanted = engines_for(art.path, only_available=False) or [n for n in readers if n not in _NOT_AUTOMATIC]
        if not wanted:
            return [("-", False, f"no engine reads {suffix} files")]
        return [(wanted[0], False, "no installed engine runs it: " + "; ".join(_unavailable_reason(n) for n in wanted))]
    if engines == "all":
        names = [n for n in readers if n not in _NOT_AUTOMATIC]
    else:
        names = [s.strip() for s in engines.split(",") if s.strip()]
        for n in names:
            ENGINES.get(n)  # unknown name -> ConfigError listing the known ones
        names = [n for n in names if n in readers]
    out = []
    for n in names:
        ok = bool(ENGINES.get(n).available())
        out.append((n, ok, "" if ok else _unavailable_reason(n)))
    return out


def check_engines_option(engines: str) -> None:
    """Reject unknown engine names early (before any work)."""
    if engines in ("auto", "all"):
        return
    from edgeport.runtime import ENGINES

    names = [s.strip() for s in engines.split(",") if s.strip()]
    if not names:
        raise ConfigError("expected --engines auto, all or a comma-separated list like litert,onnxruntime; received ''")
    for n in names:
        ENGINES.get(n)


# --- images -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Images:
    """Decoded, resized images of the labelled set, saved for the workers."""

    npy: str
    labels: np.ndarray  # model class index per image


def resolve_data(cfg: BenchConfig, manifest: dict | None) -> str:
    if cfg.data:
        return cfg.data
    run_dir = (manifest or {}).get("run_dir")
    if run_dir and (Path(run_dir) / "data_split.csv").is_file():
        return str(Path(run_dir) / "data_split.csv")
    raise DataError(
        "expected --data DATA (a labelled image folder or CSV) for accuracy and real input images, received none"
        + (f", and the run directory {run_dir} has no data_split.csv" if run_dir else
           " and the export has no manifest run_dir to find the training split in")
    )


def select_samples(cfg: BenchConfig, data: str, labels: tuple[str, ...]) -> tuple[list[tuple[str, int]], dict]:
    """(path, model class index) of the images to use, and a summary of the data."""
    from edgeport.data import scan

    ds = scan(data)
    samples = list(ds.samples) if cfg.split == "all" else ds.split(cfg.split)
    if not samples:
        present = sorted({s.split for s in ds.samples})
        raise DataError(f"expected images in the '{cfg.split}' split of {data}, found none; "
                        f"splits present: {', '.join(present)} (choose one with --split)")
    index = {name: i for i, name in enumerate(labels)}
    unknown = [c for c in ds.classes if c not in index]
    if unknown:
        raise DataError(f"expected the data's classes to be the model's labels ({', '.join(labels)}), "
                        f"received unknown classes: {', '.join(unknown)}; point --data at the data the model was trained on")
    if cfg.limit and cfg.limit < len(samples):
        keep = np.sort(np.random.default_rng(0).permutation(len(samples))[: cfg.limit])
        samples = [samples[i] for i in keep]
    pairs = [(s.path, index[ds.classes[s.label]]) for s in samples]
    summary = {"root": ds.root, "layout": ds.layout, "split": cfg.split, "classes": list(labels),
               "source": data}
    return pairs, summary


def decode_images(pairs: list[tuple[str, int]], contract: InputContract, out: Path,
                  progress: bool = True) -> tuple[Images, list[dict]]:
    """Decode and resize every image once per the contract; unreadable ones are skipped (listed)."""
    from edgeport.imaging import ImageDecodeError, load_resized

    size = (contract.height, contract.width)
    arr = np.zeros((len(pairs), contract.height, contract.width, 3), np.uint8)
    ok = np.zeros(len(pairs), bool)
    skipped: list[dict] = []

    def one(i: int) -> None:
        try:
            arr[i] = load_resized(pairs[i][0], size, contract.resize)
            ok[i] = True
        except ImageDecodeError as exc:
            skipped.append({"path": pairs[i][0], "reason": str(exc)})

    with Progress(len(pairs), f"decoding {contract.height}x{contract.width}", progress) as bar, \
            ThreadPoolExecutor(min(8, (os.cpu_count() or 2) * 2)) as pool:
        for _ in pool.map(one, range(len(pairs))):
            bar.update()
    if not ok.any():
        raise DataError(f"none of the {len(pairs)} images could be decoded; check --data")
    path = out / f"images_{contract.height}x{contract.width}_{contract.resize}.npy"
    np.save(path, arr[ok])
    labels = np.asarray([p[1] for p in pairs], np.int64)[ok]
    return Images(str(path), labels), skipped


def _contract_of(art: Artifact, manifest: dict | None) -> InputContract | None:
    from edgeport.metadata import read_model_info

    try:
        info = read_model_info(art.path)
    except Exception:  # noqa: BLE001 - a corrupt file fails later, in its worker
        info = None
    if info is not None:
        return info.input
    if manifest and manifest.get("input"):
        return InputContract.from_dict(manifest["input"])
    return None


def _labels_of(artifacts: list[Artifact], manifest: dict | None) -> tuple[str, ...]:
    if manifest and manifest.get("labels"):
        return tuple(manifest["labels"])
    from edgeport.metadata import read_model_info

    for a in artifacts:
        try:
            info = read_model_info(a.path)
        except Exception:  # noqa: BLE001
            continue
        if info is not None:
            return tuple(info.labels)
    raise DataError("expected labels in manifest.json or in an artifact's edgeport metadata, found none; "
                    "benchmark an export made by `edgeport export`")


# --- workers ------------------------------------------------------------------------------


def run_worker(job: dict, workdir: Path, timeout: float, on_progress: Callable[[str], None] | None = None) -> dict:
    """Run one job in a fresh ``python -m edgeport.benchmarks.worker`` process.

    Never raises for a failing variant: a crash, a timeout or an error inside
    the worker comes back as ``{"ok": False, "reason": ...}``.
    """
    from edgeport.benchmarks.worker import PROGRESS_PREFIX

    path = workdir / f"job_{os.getpid()}_{abs(hash(json.dumps(job, sort_keys=True)))}.json"
    path.write_text(json.dumps(job))
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([sys.executable, "-m", "edgeport.benchmarks.worker", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out: list[str] = []
    tail: deque[str] = deque(maxlen=20)

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(PROGRESS_PREFIX):
                if on_progress:
                    on_progress(line[len(PROGRESS_PREFIX):].strip())
            elif line.strip():
                tail.append(line.rstrip())

    def read_stdout() -> None:
        assert proc.stdout is not None
        out.append(proc.stdout.read())

    readers = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return {"ok": False, "reason": f"timed out after {timeout:g} s (raise --timeout)"}
    finally:
        for t in readers:
            t.join(timeout=5)
    lines = [ln for ln in "".join(out).splitlines() if ln.strip()]
    if lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    last = tail[-1] if tail else "no output"
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
    return {"ok": False, "reason": f"worker crashed ({how}): {last[:200]}"}


# --- the run ------------------------------------------------------------------------------


def _reference_key(rows_acc: dict, art: Artifact, engine: str) -> tuple[str, str] | None:
    """The fp32 (artifact, engine) to compare with: same format and engine, else same format, else any."""
    fp32 = [(a, e) for (a, e), v in rows_acc.items() if normalise_scheme(v["scheme"]) == "fp32" and v["topk"] is not None]
    for want in ((art.format, engine), (art.format, None), (None, None)):
        for a, e in fp32:
            fmt = rows_acc[(a, e)]["format"]
            if (want[0] is None or fmt == want[0]) and (want[1] is None or e == want[1]):
                return a, e
    return None


def run(cfg: BenchConfig) -> dict:
    """Benchmark an export directory; returns the report (see :mod:`edgeport.benchmarks.report`).

    Writes bench.json/.csv/.md/.png when ``cfg.out`` is set.
    """
    check_engines_option(cfg.engines)
    artifacts, manifest = find_artifacts(cfg.export_dir, cfg.schemes)
    labels = _labels_of(artifacts, manifest)
    data = resolve_data(cfg, manifest)
    pairs, data_summary = select_samples(cfg, data, labels)
    threads = sorted({int(t) for t in cfg.threads})

    plans = [(a, plan_engines(a, cfg.engines) if a.status == "ok" else [("-", False, a.reason)]) for a in artifacts]
    n_jobs = sum((int(cfg.accuracy) + len(threads)) for a, p in plans for _, ok, _ in p if ok)
    rows: list[dict] = []
    acc: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="edgeport-bench-") as tmp:
        work = Path(tmp)
        images: dict[tuple, tuple[Images, list[dict]]] = {}
        for a, _ in plans:
            c = _contract_of(a, manifest) if a.status == "ok" else None
            key = (c.height, c.width, c.resize) if c else None
            if c and key not in images:
                images[key] = decode_images(pairs, c, work, cfg.progress)
        first = next(iter(images.values()), None)
        skipped = first[1] if first else []
        data_summary.update({"images": int(first[0].labels.size) if first else 0,
                             "skipped": skipped, "num_skipped": len(skipped)})

        with Progress(n_jobs, "benchmarking", cfg.progress) as bar:
            for art, plan in plans:
                c = _contract_of(art, manifest) if art.status == "ok" else None
                imgs = images[(c.height, c.width, c.resize)][0] if c else None
                base = dict(artifact=art.file, scheme=art.scheme, precision=art.precision, format=art.format,
                            bytes=art.bytes, sha256=art.manifest.get("sha256"))
                for engine, available, reason in plan:
                    if not available:
                        status = rep.FAILED if art.status != "ok" else rep.NOT_AVAILABLE
                        rows.append(rep.empty_row(**base, engine=engine, status=status, reason=reason))
                        continue
                    if imgs is None:
                        for t in threads:
                            rows.append(rep.empty_row(**base, engine=engine, threads=t, status=rep.FAILED,
                                                      reason="no input contract (no edgeport metadata and no manifest)"))
                        continue
                    job = {"model": art.path, "engine": engine, "images": imgs.npy}
                    acc_result = None
                    if cfg.accuracy:
                        bar.update(0, note=f"{art.file} {engine} accuracy")
                        note = f"{art.file} {engine} accuracy"
                        acc_result = run_worker({**job, "kind": "accuracy", "threads": max(threads), "top_k": 5},
                                                work, cfg.timeout,
                                                lambda done, note=note: bar.update(0, note=f"{note} {done}"))
                        bar.update()
                        acc[(art.file, engine)] = {"scheme": art.scheme, "format": art.format,
                                                   "topk": np.asarray(acc_result["topk"]) if acc_result.get("ok") else None}
                        if not acc_result.get("ok"):
                            for t in threads:
                                rows.append(rep.empty_row(**base, engine=engine, threads=t, status=rep.FAILED,
                                                          reason=acc_result.get("reason", "failed")))
                            bar.update(len(threads))
                            continue
                    for t in threads:
                        bar.update(0, note=f"{art.file} {engine} t{t}")
                        res = run_worker({**job, "kind": "latency", "threads": t, "warmup": cfg.warmup,
                                          "runs": cfg.runs, "max_seconds": cfg.max_seconds,
                                          "indices": list(range(min(cfg.latency_images, int(imgs.labels.size))))},
                                         work, cfg.timeout)
                        bar.update()
                        rows.append(_row(base, engine, t, res, cfg))
        # accuracy needs every fp32 result, so it is filled in last
        for row in rows:
            a = acc.get((row["artifact"], row["engine"]))
            if a is None or a["topk"] is None or row["status"] != rep.OK:
                continue
            labels_arr = next(v[0].labels for v in images.values())
            ref = _reference_key(acc, next(x for x in artifacts if x.file == row["artifact"]), row["engine"])
            summary = accuracy_summary(a["topk"], labels_arr, labels, acc[ref]["topk"] if ref else None)
            summary["reference"] = f"{ref[0]}@{ref[1]}" if ref else None
            row["accuracy"] = summary

    report = {
        "schema_version": rep.SCHEMA_VERSION,
        "kind": rep.KIND,
        "environment": describe(cfg.device_name),
        "config": to_dict(cfg),
        "export": {"dir": str(Path(cfg.export_dir).resolve()), "manifest": bool(manifest),
                   "edgeport_version": (manifest or {}).get("edgeport_version"),
                   "source_model_sha256": (manifest or {}).get("source_model_sha256"),
                   "run_dir": (manifest or {}).get("run_dir"),
                   "input": (manifest or {}).get("input")},
        "data": data_summary,
        "rows": rows,
    }
    for row in rows:
        row["device"] = report["environment"]["device"]
    if cfg.out:
        report["files"] = rep.write(report, cfg.out)
    return rep.validate(report)


def _row(base: dict, engine: str, threads: int, res: dict, cfg: BenchConfig) -> dict:
    if not res.get("ok"):
        return rep.empty_row(**base, engine=engine, threads=threads, status=rep.FAILED,
                             reason=res.get("reason", "failed"), pid=res.get("pid"))
    stats = latency_stats(res["times_ms"])
    ips = stats.pop("images_per_s")
    runs = len(res["times_ms"])
    note = f"time-capped: {runs}/{cfg.runs} runs in {cfg.max_seconds:g} s" if runs < cfg.runs else ""
    return rep.empty_row(
        **base, engine=engine, engine_version=res.get("engine_version"), threads=threads, status=rep.OK,
        reason=note, load_s=res["load_s"], first_inference_ms=res["first_inference_ms"], warmup=cfg.warmup,
        runs=runs, latency_ms=stats, images_per_s=ips, peak_rss_mb=res.get("peak_rss_mb"),
        baseline_rss_mb=res.get("baseline_rss_mb"), pid=res.get("pid"), input=res.get("input"),
        output=res.get("output"), providers=res.get("providers"),
    )


def gate(report: dict, max_drop: float) -> list[str]:
    """Variants whose top-1 fell more than ``max_drop`` points below fp32 (the CI gate)."""
    bad = []
    seen = set()
    for r in report["rows"]:
        a = r.get("accuracy") or {}
        d = a.get("delta_top1_pts")
        key = (r.get("device"), r["artifact"], r["engine"])
        if d is not None and d < -max_drop and key not in seen:
            seen.add(key)
            where = f"{r['device']}: " if r.get("device") and len({x.get('device') for x in report['rows']}) > 1 else ""
            bad.append(f"{where}{r['artifact']} ({r['scheme']}) on {r['engine']}: top-1 {d:+.1f} points vs fp32 "
                       f"(allowed -{max_drop:g})")
    return bad
