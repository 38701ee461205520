"""``edgeport bench``: what each scheme costs in accuracy and buys in speed and size, on this device.

For every artifact x engine x threads variant, a fresh worker process
(:mod:`edgeport.benchmarks.worker`) loads the model and times
``engine.invoke`` on real preprocessed images; once per artifact x engine a
worker also classifies the labelled images for accuracy. Images are decoded
and resized once here (per the model's input contract) and shared with the
workers as a ``.npy`` file. No TensorFlow anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from edgeport import metrics
from edgeport.benchmarks import report as rep
from edgeport.benchmarks.artifacts import find_artifacts
from edgeport.benchmarks.config import BenchConfig
from edgeport.benchmarks.environment import describe
from edgeport.benchmarks.metrics import latency_stats
from edgeport.config import to_dict
from edgeport.contract import InputContract
from edgeport.errors import ConfigError, DataError, EdgeportError
from edgeport.files import check_out_folder, scratch_dir
from edgeport.intervals import CONFIDENCE, MISSED, UNDECIDED, decide_difference
from edgeport.manifest import FAILED, Artifact, Manifest, verify_sha256
from edgeport.progress import Progress
from edgeport.schemes import precision_of

log = logging.getLogger(__name__)

# --- which engines run which artifact -----------------------------------------------------


def _unavailable_reason(name: str) -> str:
    from edgeport.runtime import ENGINES

    return ENGINES.get(name).unavailable_reason().split(";")[0]


def plan_engines(art: Artifact, engines: str) -> list[tuple[str, bool, str]]:
    """(engine, available, reason-if-not) for one artifact under an --engines choice."""
    from edgeport.runtime import ENGINES

    suffix = Path(art.file).suffix.lower()
    readers = [n for n in ENGINES.names() if suffix in ENGINES.get(n).suffixes]
    automatic = [n for n in readers if ENGINES.get(n).preference is not None]  # "all" never means TensorFlow
    if engines == "auto":
        from edgeport.runtime import engines_for

        names = engines_for(art.path)
        if names:
            return [(names[0], True, "")]
        wanted = engines_for(art.path, only_available=False) or automatic
        if not wanted:
            return [("-", False, f"no engine reads {suffix} files")]
        return [(wanted[0], False, "no installed engine runs it: " + "; ".join(_unavailable_reason(n) for n in wanted))]
    if engines == "all":
        names = automatic
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


def resolve_data(cfg: BenchConfig, manifest: Manifest | None) -> str:
    if cfg.data:
        return cfg.data
    run_dir = manifest.run_dir if manifest is not None else None
    if run_dir is not None and (run_dir / "data_split.csv").is_file():
        return str(run_dir / "data_split.csv")
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
    # a seeded random order: --limit and a time-capped accuracy pass then score a random subset
    order = np.random.default_rng(0).permutation(len(samples))
    samples = [samples[i] for i in order[: cfg.limit or len(samples)]]
    pairs = [(s.path, index[ds.classes[s.label]]) for s in samples]
    # which images in which order, independent of where the data sits: `bench compare` pairs two devices'
    # answers image by image only when this matches
    order = hashlib.sha256("\n".join(os.path.relpath(s.path, ds.root) for s in samples).encode()).hexdigest()
    summary = {"root": ds.root, "layout": ds.layout, "split": cfg.split, "classes": list(labels),
               "source": data, "order_sha256": order}
    return pairs, summary


def _samples(cfg: BenchConfig, manifest: Manifest | None, labels: tuple[str, ...],
             checked: dict[str, Checked | str], work: Path) -> tuple[list[tuple[str, int]], dict]:
    """The images to run: --data (or the run's split); for latency alone (--no-accuracy) without data,
    the export's golden set, else random-noise images at the model's size (like LiteRT's benchmark_model)."""
    if cfg.accuracy or cfg.data:
        return select_samples(cfg, resolve_data(cfg, manifest), labels)
    try:
        return select_samples(cfg, resolve_data(cfg, manifest), labels)
    except DataError:
        pass
    from edgeport.golden import GOLDEN_DIR, read_golden

    golden = read_golden(Path(cfg.export_dir) / GOLDEN_DIR)
    summary = {"split": None, "classes": list(labels)}
    if golden is not None:
        pairs = [(str(golden.directory / f), int(t)) for f, t in zip(golden.files, golden.targets)]
        return pairs[: cfg.limit or len(pairs)], {**summary, "root": GOLDEN_DIR, "layout": "golden",
                                                   "source": "the export's golden set (no --data)"}
    import cv2

    contract = next((c.contract for c in checked.values() if isinstance(c, Checked)), None)
    h, w = (contract.height, contract.width) if contract else (224, 224)
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(cfg.limit or cfg.latency_images):
        path = work / f"noise_{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        pairs.append((str(path), 0))
    return pairs, {**summary, "root": None, "layout": "noise", "source": "random noise images (no --data)"}


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


@dataclass(frozen=True)
class Checked:
    """An artifact that passed the pre-flight checks: its hash and its labels/contract."""

    sha256: str
    labels: tuple[str, ...]
    contract: InputContract


def preflight(art: Artifact) -> Checked | str:
    """Hash the file that will run (it must match the manifest) and read its labels and contract
    (embedded ones must match the manifest's); a reason string when it cannot run."""
    from edgeport.runtime.classifier import load_model_info

    try:
        sha = verify_sha256(art.path, art.sha256)
        info = load_model_info(art.path, verify_hash=False)
    except EdgeportError as exc:
        return str(exc)
    return Checked(sha, tuple(info.labels), info.input)


def _labels_of(checked: dict[str, Checked | str], manifest: Manifest | None) -> tuple[str, ...]:
    if manifest is not None and manifest.labels:
        return manifest.labels
    labels = {c.labels for c in checked.values() if isinstance(c, Checked)}
    if len(labels) > 1:
        raise DataError("expected every artifact in the folder to carry the same labels, received "
                        + " / ".join(", ".join(x) for x in sorted(labels)) + "; benchmark one export at a time")
    if labels:
        return labels.pop()
    raise DataError("expected labels in manifest.json or in an artifact's edgeport metadata, found none; "
                    "benchmark an export made by `edgeport export`")


# --- workers and their scratch folder ------------------------------------------------------

#: the scratch folder of one run: edgeport-bench-<pid>-<random> in the system's temporary folder
SCRATCH_PREFIX = "edgeport-bench-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def sweep_stale_scratch(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the scratch folders of benchmarks that were killed (SIGKILL leaves no chance to clean up).

    Only folders named ``edgeport-bench-<pid>-*``, owned by this user, whose process is gone.
    """
    base = Path(root or tempfile.gettempdir())
    removed = []
    try:
        entries = list(base.glob(f"{SCRATCH_PREFIX}*"))
    except OSError:
        return removed
    for d in entries:
        m = re.fullmatch(rf"{re.escape(SCRATCH_PREFIX)}(\d+)-.+", d.name)
        try:
            if not m or not d.is_dir() or d.stat().st_uid != os.getuid() or _pid_alive(int(m.group(1))):
                continue
        except OSError:
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    if removed:
        log.info("removed %d temporary folder(s) of killed benchmarks in %s", len(removed), base)
    return removed



def run_worker(job: dict, workdir: Path, timeout: float, on_progress: Callable[[str], None] | None = None) -> dict:
    """Run one job in a fresh ``python -m edgeport.benchmarks.worker`` process.

    Never raises for a failing variant: a crash, a timeout or an error inside
    the worker comes back as ``{"ok": False, "reason": ...}``.
    """
    from edgeport.benchmarks.worker import PARENT_ENV, PROGRESS_PREFIX, SCRATCH_ENV

    path = workdir / f"job_{os.getpid()}_{abs(hash(json.dumps(job, sort_keys=True)))}.json"
    path.write_text(json.dumps(job))
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # the worker stops itself if this process dies (even by SIGKILL) and then removes the scratch folder
    env[PARENT_ENV], env[SCRATCH_ENV] = str(os.getpid()), str(workdir)
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
    except BaseException:  # Ctrl-C, SIGTERM (edgeport.cli.Terminated), anything: the worker goes too
        proc.kill()
        proc.wait()
        raise
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


def reference_for(predictions: dict[tuple[str, str], dict], art: Artifact, engine: str) -> tuple[str, str] | None:
    """The fp32 (artifact, engine) to compare with: same format and engine, else same format, else any."""
    fp32 = [k for k, v in predictions.items()
            if precision_of(v["artifact"].scheme) == "fp32" and v["topk"] is not None]
    for fmt, eng in ((art.format, engine), (art.format, None), (None, None)):
        for k in fp32:
            if (fmt is None or predictions[k]["artifact"].format == fmt) and (eng is None or k[1] == eng):
                return k
    return None


Plan = list[tuple[Artifact, list[tuple[str, bool, str]]]]


def run(cfg: BenchConfig) -> dict:
    """Benchmark an export directory; returns the report (see :mod:`edgeport.benchmarks.report`).

    Writes bench.json/.csv/.md/.png when ``cfg.out`` is set.
    """
    check_engines_option(cfg.engines)
    if cfg.out:
        check_out_folder(Path(cfg.out).expanduser(), "for bench.json/.csv/.md/.png")  # before anything is measured
    found, manifest = find_artifacts(cfg.export_dir, cfg.schemes)
    checked = {a.file: preflight(a) for a in found if a.ok}
    artifacts = [replace(a, status=FAILED, reason=checked[a.file]) if isinstance(checked.get(a.file), str) else a
                 for a in found]
    labels = _labels_of(checked, manifest)
    plans: Plan = [(a, plan_engines(a, cfg.engines) if a.ok else [("-", False, a.reason)]) for a in artifacts]
    sweep_stale_scratch()
    with scratch_dir(f"{SCRATCH_PREFIX}{os.getpid()}-") as work:
        pairs, data_summary = _samples(cfg, manifest, labels, checked, work)
        contracts = {a.file: checked[a.file].contract if a.ok else None for a in artifacts}
        hashes = {a.file: checked[a.file].sha256 if a.ok else a.sha256 for a in artifacts}
        images: dict[tuple, Images] = {}
        skipped: list[dict] = []
        for c in contracts.values():
            key = (c.height, c.width, c.resize) if c else None
            if c and key not in images:
                images[key], skipped = decode_images(pairs, c, work, cfg.progress)
        first = next(iter(images.values()), None)
        if first is not None and cfg.accuracy:  # the true class per image, in order: compare pairs devices with it
            data_summary["labels"] = [int(v) for v in first.labels]
        data_summary.update({"images": int(first.labels.size) if first else 0,
                             "skipped": skipped, "num_skipped": len(skipped)})
        by_artifact = {f: images[(c.height, c.width, c.resize)] if c else None for f, c in contracts.items()}
        rows, predictions = _measure(plans, by_artifact, hashes, cfg, work)
    _fill_accuracy(rows, predictions, by_artifact, labels, cfg.confidence)

    environment = describe(cfg.device_name)
    for row in rows:
        row["device"] = environment["device"]
    m = manifest.data if manifest is not None else {}
    report = {
        "schema_version": rep.SCHEMA_VERSION,
        "kind": rep.KIND,
        "environment": environment,
        "config": to_dict(cfg),
        # as given (or relative to the report's folder): a report names no local folders of its own
        "export": {"dir": os.path.relpath(cfg.export_dir, cfg.out) if cfg.out else cfg.export_dir,
                   "manifest": manifest is not None,
                   "edgeport_version": m.get("edgeport_version"), "source_model_sha256": m.get("source_model_sha256"),
                   "backbone": m.get("backbone"), "run_dir": m.get("run_dir"), "input": m.get("input")},
        "data": data_summary,
        "rows": rows,
    }
    if cfg.out:
        report["files"] = rep.write(report, cfg.out)
    return rep.validate(report)


def _measure(plans: Plan, images: dict[str, Images | None], hashes: dict[str, str | None], cfg: BenchConfig,
             work: Path) -> tuple[list[dict], dict[tuple[str, str], dict]]:
    """One row per artifact x engine x threads (one row for an engine that cannot run),
    and the top-5 predictions of each artifact x engine."""
    threads = sorted({int(t) for t in cfg.threads})
    n_jobs = sum(int(cfg.accuracy) + len(threads) for _, plan in plans for _, ok, _ in plan if ok)
    rows: list[dict] = []
    predictions: dict[tuple[str, str], dict] = {}
    with Progress(n_jobs, "benchmarking", cfg.progress) as bar:
        for art, plan in plans:
            imgs = images.get(art.file)
            base = dict(artifact=art.file, scheme=art.scheme, precision=art.precision, format=art.format,
                        bytes=art.bytes, sha256=hashes.get(art.file))  # of the file measured
            for engine, available, reason in plan:
                if not available:
                    status = rep.FAILED if art.status == FAILED else rep.NOT_AVAILABLE
                    rows.append(rep.empty_row(**base, engine=engine, status=status, reason=reason))
                    continue

                def failed(why: str) -> list[dict]:
                    return [rep.empty_row(**base, engine=engine, threads=t, status=rep.FAILED, reason=why)
                            for t in threads]

                if imgs is None:
                    rows += failed("no input contract (no edgeport metadata and no manifest)")
                    bar.update(int(cfg.accuracy) + len(threads))
                    continue
                job = {"model": str(art.path), "engine": engine, "images": imgs.npy}
                if cfg.accuracy:
                    note = f"{art.file} {engine} accuracy"
                    bar.update(0, note=note)
                    res = run_worker({**job, "kind": "accuracy", "threads": max(threads), "top_k": 5,
                                      "max_seconds": cfg.accuracy_max_seconds}, work,
                                     cfg.timeout, lambda done, note=note: bar.update(0, note=f"{note} {done}"))
                    bar.update()
                    predictions[(art.file, engine)] = {
                        "artifact": art, "topk": np.asarray(res["topk"]) if res.get("ok") else None,
                        "topk_probs": np.asarray(res["topk_probs"]) if res.get("ok") else None}
                    if not res.get("ok"):  # it could not even load or run: no point timing it
                        rows += failed(res.get("reason", "failed"))
                        bar.update(len(threads))
                        continue
                n_latency = min(cfg.latency_images, int(imgs.labels.size))
                for t in threads:
                    bar.update(0, note=f"{art.file} {engine} t{t}")
                    res = run_worker({**job, "kind": "latency", "threads": t, "warmup": cfg.warmup, "runs": cfg.runs,
                                      "max_seconds": cfg.max_seconds, "indices": list(range(n_latency))},
                                     work, cfg.timeout)
                    bar.update()
                    rows.append(_row(base, engine, t, res, cfg))
    return rows, predictions


def _fill_accuracy(rows: list[dict], predictions: dict[tuple[str, str], dict], images: dict[str, Images | None],
                   labels: tuple[str, ...], confidence: float = CONFIDENCE) -> None:
    """Accuracy of each ok row vs its fp32 reference, with intervals and its top-1 per image (``top1``: what
    `bench compare` pairs across devices); needs every prediction, so it comes last."""
    for row in rows:
        p = predictions.get((row["artifact"], row["engine"]))
        imgs = images.get(row["artifact"])
        if p is None or p["topk"] is None or imgs is None or row["status"] != rep.OK:
            continue
        ref = reference_for(predictions, p["artifact"], row["engine"])
        ref_topk = predictions[ref]["topk"] if ref else None
        # a time-capped pass saw a prefix of the (shuffled) images: compare on what both saw
        n = len(p["topk"]) if ref_topk is None else min(len(p["topk"]), len(ref_topk))
        if ref_topk is None:
            summary = {**metrics.accuracy(p["topk"][:n], imgs.labels[:n], labels, confidence=confidence),
                       **dict.fromkeys(("reference_top1_pct", "delta_top1_pts", "delta_top1_pts_ci", "agreement_pct",
                                        "agreement_pct_ci", "decided_agreement_pct", "decided_images", "worst_class",
                                        "worst_class_drop_pts"))}
        else:
            ref_probs = predictions[ref]["topk_probs"][:n]
            margin = ref_probs[:, 0] - ref_probs[:, 1] if ref_probs.shape[1] > 1 else None
            summary = metrics.compare(p["topk"][:n], ref_topk[:n], imgs.labels[:n], labels, reference_margin=margin,
                                      confidence=confidence)
        summary["reference"] = f"{ref[0]}@{ref[1]}" if ref else None
        summary["top1"] = [int(i) for i in np.asarray(p["topk"])[:n, 0]]
        summary["images_total"] = int(imgs.labels.size)
        row["accuracy"] = summary
        if n < imgs.labels.size:
            note = f"accuracy on {n}/{imgs.labels.size} images (--accuracy-max-seconds)"
            row["reason"] = f"{row['reason']}; {note}" if row["reason"] else note


def _row(base: dict, engine: str, threads: int, res: dict, cfg: BenchConfig) -> dict:
    if not res.get("ok"):
        return rep.empty_row(**base, engine=engine, threads=threads, status=rep.FAILED,
                             reason=res.get("reason", "failed"), pid=res.get("pid"))
    stats = latency_stats(res["times_ms"], cfg.confidence)
    stats["samples"] = [round(float(t), 4) for t in res["times_ms"]]  # for compare's ratio intervals
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


def gate(report: dict, max_drop: float, confidence: float = CONFIDENCE,
         undecided: str = "pass") -> tuple[list[str], list[str]]:
    """The ``--max-drop`` gate, decided on each variant's Δtop-1 interval vs fp32 (paired, image by image):
    (variants that fail it, variants it is not decided for). A variant fails when its whole interval is
    below ``-max_drop`` (``undecided="fail"``: also when the interval straddles it). A report without paired
    counts (written before they were recorded) is judged on its point estimate, and says so."""
    bad, open_ = [], []
    seen = set()
    several = len({x.get("device") for x in report["rows"]}) > 1
    for r in report["rows"]:
        a = r.get("accuracy") or {}
        d = a.get("delta_top1_pts")
        key = (r.get("device"), r["artifact"], r["engine"])
        if d is None or key in seen:
            continue
        seen.add(key)
        where = f"{r['device']}: " if r.get("device") and several else ""
        what = f"{where}{r['artifact']} ({r['scheme']}) on {r['engine']}"
        if a.get("top1_pairs"):
            decision = decide_difference("max_drop", tuple(a["top1_pairs"]), -max_drop, confidence)
            line = f"{what}: top-1 vs fp32 {decision.describe()} ({100 * confidence:g} % interval)"
            if decision.outcome == MISSED or (decision.outcome == UNDECIDED and undecided == "fail"):
                bad.append(line)
            elif decision.outcome == UNDECIDED:
                open_.append(line)
        elif d < -max_drop:
            bad.append(f"{what}: top-1 {d:+.1f} points vs fp32 (allowed -{max_drop:g}; this report has no paired "
                       "counts for an interval: re-run `edgeport bench`)")
    return bad, open_
