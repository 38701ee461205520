"""``export(ExportConfig) -> ExportResult``: every scheme converted, verified, described.

One scheme failing (conversion, loading, verification or the --max-drop
budget) marks that scheme failed with its reason; the others still export.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgeport import __version__
from edgeport._lazy import require
from edgeport.config import to_dict
from edgeport.contract import METADATA_KEY, InputContract, ModelInfo
from edgeport.errors import ConfigError, EdgeportError, ModelError, short_message
from edgeport.evalset import EvalSet
from edgeport.export.config import ExportConfig
from edgeport.export.context import ConversionContext
from edgeport.export.converters import CONVERTERS
from edgeport.export.datasets import calibration_images, golden_set, verification_set
from edgeport.export.int8.budget import DEFAULT_BUDGET, budget_of
from edgeport.export.int8.improve import Improved, improve
from edgeport.export.int8.report import REPORT_DIR
from edgeport.export.tflite import UnsupportedOpsError
from edgeport.export.verify import evaluate, latency_p50, open_engine, predict, verify_artifact
from edgeport.files import check_out_folder, replace_dir, scratch_dir, sha256_file
from edgeport.golden import GOLDEN_DIR, write_golden
from edgeport.intervals import MISSED, UNDECIDED
from edgeport.manifest import (
    FAILED,
    FAILED_DIR,
    MANIFEST_FILE,
    OK,
    SCHEMA_VERSION,
    UNSUPPORTED,
    read_manifest,
    verify_sha256,
    write_manifest,
)
from edgeport.metrics import compare
from edgeport.rundir import LABELS_FILE, MODEL_FILE, RunInfo, read_run
from edgeport.schemes import ALL_SCHEMES, SCHEMES, SchemeSpec, get_scheme

log = logging.getLogger(__name__)

#: Distribution names whose versions go into the manifest.
CONVERTER_PACKAGES = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")


@dataclass
class ArtifactResult:
    """One scheme's outcome (a manifest ``artifacts`` entry)."""

    scheme: str
    file: str
    format: str
    description: str = ""
    precision: str = ""  #: what it computes in (the catalogue's label, amended by export)
    status: str = OK
    reason: str = ""
    bytes: int | None = None
    sha256: str | None = None
    input: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    verification: dict = field(default_factory=dict)
    conversion_seconds: float | None = None
    conversion_cpu_seconds: float | None = None
    graph: dict = field(default_factory=dict)
    golden: dict = field(default_factory=dict)  #: figures on the golden set (edgeport check compares with them)
    quantization: dict = field(default_factory=dict)  #: int8 budget search: float fallback, trace, report files
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def fail(self, reason: str) -> None:
        self.status = FAILED
        self.reason = f"{self.reason}; {reason}" if self.reason else reason

    def unsupported(self, reason: str) -> None:
        self.status = UNSUPPORTED
        self.reason = reason
        self.notes.append("no file was written: this scheme cannot represent this model")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote: the folder, its manifest and each scheme's outcome."""

    out_dir: Path
    manifest_path: Path
    manifest: dict
    artifacts: tuple[ArtifactResult, ...]
    #: schemes asked for by name: one of them being unsupported for the model makes the export not ok
    requested: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No scheme failed, and none asked for by name is unsupported (a default export skips those)."""
        return all(a.ok or (a.status == UNSUPPORTED and a.scheme not in self.requested) for a in self.artifacts)

    @property
    def failed(self) -> list[ArtifactResult]:
        return [a for a in self.artifacts if not a.ok and a.status != UNSUPPORTED]

    @property
    def unsupported(self) -> list[ArtifactResult]:
        return [a for a in self.artifacts if a.status == UNSUPPORTED]

    def artifact(self, scheme: str) -> ArtifactResult:
        for a in self.artifacts:
            if a.scheme == scheme:
                return a
        raise KeyError(scheme)


def converter_versions() -> dict[str, str | None]:
    """Installed versions of the converters and engines (None when absent)."""
    out: dict[str, str | None] = {}
    for name in CONVERTER_PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def load_keras_model(path: Path, info: dict | None = None):
    """Load ``model.keras`` in safe mode as a float32 model; anything unloadable is a ModelError.

    A model saved with mixed-precision layers (a run built before edgeport
    saved float32 models) is rebuilt with float32 layers and the same weights,
    so every scheme converts as for a float32-trained model. ``info``, when
    given, receives the file's layer policies and whether it was rebuilt.
    """
    from edgeport.build.precision import as_float32, global_policy, layer_policies

    keras = require("keras", "loading the run's Keras model")
    try:
        with global_policy("float32"):
            model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:
        raise ModelError(
            f"expected a Keras 3 model file loadable with safe_mode=True at {path}, "
            f"but it could not be loaded ({short_message(exc, 300)}); re-run `edgeport build` or check the file"
        ) from exc
    policies = layer_policies(model)
    deploy = as_float32(model)
    if info is not None:
        info.update(keras_file_layer_policies=policies, rebuilt_float32=deploy is not model)
    return deploy


def _training_info(run: RunInfo, loaded: dict) -> dict:
    """The manifest's ``training`` entry: the policy the run trained under (metrics.json/config.yaml) and
    what the export converted (always float32 layers)."""
    runtime = run.metrics.get("runtime")
    runtime = runtime if isinstance(runtime, dict) else {}
    policy = runtime.get("training_dtype_policy")
    if policy is None and "mixed_precision" in runtime:
        policy = "mixed_float16" if runtime["mixed_precision"] else "float32"
    if policy is None and run.config.get("mixed_precision") in ("on", "off"):
        policy = "mixed_float16" if run.config["mixed_precision"] == "on" else "float32"
    if policy is None and "mixed_float16" in loaded.get("keras_file_layer_policies", {}):
        policy = "mixed_float16"
    return {"dtype_policy": policy or "unknown", "exported_dtype_policy": "float32", **loaded}


def _contract(run: RunInfo, model) -> InputContract:
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
        raise ModelError(f"expected a model input of shape (batch, H, W, 3), received {shape}")
    if run.contract is None:
        return InputContract(height=int(shape[1]), width=int(shape[2]))
    if (run.contract.height, run.contract.width) != (shape[1], shape[2]):
        raise ModelError(
            f"expected the model input size {shape[1]}x{shape[2]} to match image_size in "
            f"{run.run_dir / 'config.yaml'}, received {run.contract.height}x{run.contract.width}"
        )
    return run.contract


def _model_info(run: RunInfo, contract: InputContract, scheme: str, fmt: str, file: str, extra: dict) -> ModelInfo:
    return ModelInfo(
        labels=run.labels, input=contract, scheme=scheme, source_sha256=run.source_sha256,
        backbone=run.backbone, edgeport_version=__version__,
        extra={"format": fmt, "file": file, **extra},
    )


def _embed(path: Path, fmt: str, info: ModelInfo) -> None:
    if fmt == "tflite":
        from edgeport.export.tflite import embed_metadata

        path.write_bytes(embed_metadata(path.read_bytes(), info.to_json()))
    else:
        from edgeport.export.onnx import embed_metadata

        embed_metadata(path, {METADATA_KEY: info.to_json(), "labels": "\n".join(info.labels)})


def _graph(path: Path, fmt: str) -> dict:
    """The format's graph summary of a written artifact (ops, types, what stayed float)."""
    if fmt == "onnx":
        from edgeport.export.onnx import graph_summary

        return graph_summary(path)
    from edgeport.export.tflite import graph_summary as tflite_graph

    return tflite_graph(path.read_bytes())


def _golden_figures(engine, contract: InputContract, golden: EvalSet) -> dict:
    """What one artifact gives on the golden images in the export machine's engine: its figures and its top-1
    class on each image (`edgeport check` pairs a device's answers with these)."""
    probs = predict(engine, golden.images, contract, progress=False)
    f = compare(probs, golden.reference, golden.labels, golden.names)
    return {"images": f["images"], "agreement_pct": f["agreement_pct"], "max_abs_prob_diff": f["max_abs_prob_diff"],
            "top1": [int(i) for i in probs.argmax(1)], "engine": engine.name, "engine_version": engine.version()}


def _gate(a: ArtifactResult, cfg: ExportConfig, reference: bool) -> None:
    """A float32 reference must match Keras to the tolerance; every other scheme is held to the budget
    (:func:`~edgeport.export.int8.budget.budget_of`) on the report images, decided on each figure's interval:
    it fails when it misses (``--undecided fail``: also when it is not decided), and an undecided one says
    how many images would decide it."""
    v = a.verification
    if not v.get("images"):
        if cfg.max_drop is not None or cfg.min_agreement is not None or cfg.min_decided_agreement is not None:
            a.fail("the budget (--max-drop/--min-agreement) needs validation images, but the run's data_split.csv "
                   "has no val/test split")
        return
    if reference:
        if not v["max_abs_prob_diff"] <= cfg.tolerance:  # NaN fails too
            a.fail(f"float32 artifact differs from Keras by {v['max_abs_prob_diff']:.3g} in probability "
                   f"(tolerance {cfg.tolerance:g}; agreement {v['agreement_pct']:.2f} %)")
        return
    budget = budget_of(cfg)
    decision = budget.decide(v, cfg.confidence)
    v["budget"] = decision.to_dict()
    where = f"on {v['images']} held-aside images: {decision.describe()}"
    if decision.outcome == MISSED:
        a.fail(f"misses the budget ({budget.describe()}) {where}")
    elif decision.outcome == UNDECIDED and cfg.undecided == "fail":
        a.fail(f"the budget ({budget.describe()}) is not decided {where}; --undecided fail ships only what is shown "
               "to meet it (use more validation images, or --undecided pass)")
    elif decision.outcome == UNDECIDED:
        a.notes.append(f"the budget ({budget.describe()}) is not decided {where}: shipped, since nothing shows it "
                       "misses (--undecided fail would refuse it)")


#: timed invokes of one image for each artifact's p50 (at least; :func:`latency_p50` times at least 0.5 s)
LATENCY_RUNS = 20


def _improve(scheme: SchemeSpec, ctx: ConversionContext, cfg: ExportConfig, selection: EvalSet,
             contract: InputContract, path: Path, out: Path, a: ArtifactResult) -> Improved | None:
    """The float-fallback search on the selection images (the file at ``path`` is replaced by what it
    chooses); a failing search leaves the full-integer model, with a note."""
    try:
        improved = improve(scheme, ctx, cfg, selection, contract, path, out / REPORT_DIR)
    except Exception as exc:  # noqa: BLE001 - the search is an improvement: never lose the converted model
        log.warning("%s: the float-fallback search failed (%s); keeping full int8", scheme.name, short_message(exc, 300))
        a.notes.append(f"the float-fallback search failed ({short_message(exc, 300)}); this is the full-integer model")
        return None
    applied = cfg.search and improved.applied
    a.precision = improved.label if applied else scheme.label
    a.quantization = {**improved.entry, "applied": applied}
    if applied:
        a.notes.append(f"{improved.result.message}; the verification figures are on images the search did not use")
        a.graph = _graph(path, scheme.format)
    elif not improved.result.met:
        a.notes.append(improved.result.message)
    return improved


def _export_scheme(scheme: SchemeSpec, ctx: ConversionContext, cfg: ExportConfig, run: RunInfo,
                   contract: InputContract, verify: EvalSet | None, out: Path,
                   golden: EvalSet | None = None, selection: EvalSet | None = None) -> ArtifactResult:
    """Convert into ``out``, improve (int8 budget search), embed metadata, describe, verify and gate one
    scheme (never raises for it)."""
    a = ArtifactResult(scheme=scheme.name, file=scheme.file, format=scheme.format, description=scheme.description,
                       precision=scheme.label)
    path = out / scheme.file
    log.info("%s: converting -> %s", scheme.name, path)
    if scheme.calibrated and (ctx.calibration is None or len(ctx.calibration) == 0):
        a.fail("no calibration images (the run has no training split; pass --calibration-data DIR)")
        return a
    t0, c0 = time.perf_counter(), time.process_time()
    improved = None
    try:
        a.graph = CONVERTERS.get(scheme.name)(ctx, path) or _graph(path, scheme.format)
        a.conversion_seconds = round(time.perf_counter() - t0, 3)
        a.conversion_cpu_seconds = round(time.process_time() - c0, 3)  # all threads: load-independent
        if scheme.searchable and selection is not None and (cfg.search or cfg.diagnose):
            improved = _improve(scheme, ctx, cfg, selection, contract, path, out, a)
        extra = {"io_dtype": cfg.io_dtype} if scheme.integer_io else {}
        if a.precision != scheme.label:
            extra["precision"] = a.precision
        qat = (a.quantization or {}).get("qat") or {}
        if qat.get("chosen"):  # the file says it was fine-tuned, and how much
            extra["qat"] = {k: qat[k] for k in ("epochs", "images", "seconds")}
        _embed(path, scheme.format, _model_info(run, contract, scheme.name, scheme.format, scheme.file, extra))
    except Exception as exc:  # noqa: BLE001 - converters raise anything; isolate the scheme
        path.unlink(missing_ok=True)
        if isinstance(exc, UnsupportedOpsError):
            log.warning("%s: %s", scheme.name, exc)
            a.unsupported(str(exc))
            return a
        log.warning("%s: conversion failed: %s", scheme.name, short_message(exc, 300))
        a.fail(f"conversion failed: {short_message(exc)}")
        return a
    if scheme.int8_weights and a.graph.get("weight_dtypes") is not None and not a.graph["weight_dtypes"].get("int8"):
        a.notes.append("no weight tensor was large enough to quantize (TFLite skips < 1024 "
                       "elements): this model is effectively float32")
    if a.graph.get("float_fallback"):
        a.notes.append(f"{', '.join(a.graph['float_fallback'])} stayed float32 (no {scheme.name} kernel; the "
                       "converter's float fallback): the rest is integer, see graph.float_fallback")
    a.bytes = path.stat().st_size
    a.sha256 = sha256_file(path)
    try:
        with open_engine(path, cfg.threads) as engine:
            a.input, a.output = engine.input.to_dict(), engine.output.to_dict()
            if verify is not None:
                a.verification = verify_artifact(engine, contract, verify.images, verify.labels, verify.reference,
                                                 run.labels, cfg.progress, f"{scheme.name} verification",
                                                 max_seconds=cfg.verify_seconds, confidence=cfg.confidence)
                a.verification.update(latency_p50(engine, verify.images[0], contract, LATENCY_RUNS,
                                                  confidence=cfg.confidence))
            if golden is not None:
                a.golden = _golden_figures(engine, contract, golden)
        if improved is not None and verify is not None and a.quantization.get("applied"):
            full = _full_int8_figures(improved, verify, contract, cfg, path)
            a.verification.update(full.pop("artifact_latency"))  # both p50s from one alternating measurement
            a.quantization["full_int8"] = full
    except Exception as exc:  # noqa: BLE001 - an engine rejecting the file fails this scheme only
        log.warning("%s: verification failed: %s", scheme.name, short_message(exc, 300))
        a.fail(f"verification failed: {short_message(exc)}")
    else:
        _gate(a, cfg, scheme.reference)
    _settle(a, out)
    log.info("%s: %s%s", scheme.name, a.status, f": {a.reason}" if a.reason else "")
    return a


def _qat_options(cfg: ExportConfig, run: RunInfo, contract: InputContract) -> dict:
    """What a QAT fine-tune needs from the run (``--qat``): its train split, model file, checkpoint folder, and
    how long its fine-tune epochs took (the estimate a message gives when QAT is not asked for)."""
    timing = run.metrics.get("timing") if isinstance(run.metrics.get("timing"), dict) else {}
    epochs = [float(t) for t in timing.get("phase2_epoch_seconds") or [] if isinstance(t, (int, float))]
    return {"enabled": cfg.qat, "epochs": cfg.qat_epochs, "lr": cfg.qat_lr, "seed": cfg.seed, "resume": cfg.resume,
            "model_path": run.model_path, "train": run.samples("train") if cfg.qat else [], "classes": run.labels,
            "contract": contract, "checkpoint_dir": run.run_dir / "checkpoints" / "qat",
            "source_sha256": run.source_sha256, "epoch_seconds": float(np.median(epochs)) if epochs else None,
            "train_images": len(run.samples("train"))}


def _split(verify: EvalSet, cfg: ExportConfig) -> tuple[EvalSet, EvalSet]:
    """(selection images for the float-fallback search, the disjoint rest as the set every artifact is
    verified and reported on): nothing reported was used to choose."""
    selection, report = verify.split(cfg.selection_fraction, cfg.seed)
    info = {**verify.info, "images": len(report), "selection_images": len(selection),
            "keras_top1_pct": report.reference_top1_pct, "report_image_ids": list(report.ids),
            "selection_image_ids": list(selection.ids)}
    return selection, replace(report, info=info)


def _full_int8_figures(improved: Improved, verify: EvalSet, contract: InputContract, cfg: ExportConfig,
                       artifact: Path) -> dict:
    """The full-integer model on the same report images, measured in the same run: the table's side-by-side
    row. Its p50 is measured with ``artifact``'s invokes alternating (``artifact_latency``: the artifact's)."""
    baseline = improved.baseline or improved.result  # post-training full int8, QAT or not
    fig = evaluate(baseline.full_int8_path, verify, contract, cfg.threads, LATENCY_RUNS, reference=artifact,
                   confidence=cfg.confidence)
    keep = ("images", "agreement_pct", "agreement_pct_ci", "decided_agreement_pct", "decided_images", "top1_pct",
            "delta_top1_pts", "delta_top1_pts_ci", "max_abs_prob_diff", "p50_ms", "p50_ci_ms", "cpu_p50_ms")
    out = {k: fig.get(k) for k in keep}
    out["artifact_latency"] = ({"p50_ms": fig["ref_p50_ms"], "cpu_p50_ms": fig["ref_cpu_p50_ms"],
                                "p50_ci_ms": fig.get("ref_p50_ci_ms"), "cpu_p50_ci_ms": fig.get("ref_cpu_p50_ci_ms")}
                               if "ref_p50_ms" in fig else {})
    return out


def _settle(a: ArtifactResult, out: Path) -> None:
    """Move a converted file that failed verification or the budget to ``failed/`` (kept for
    inspection, out of the way of a device copying the folder)."""
    if a.ok:
        return
    kept = out / FAILED_DIR / a.file
    kept.parent.mkdir(exist_ok=True)
    os.replace(out / a.file, kept)
    a.file = f"{FAILED_DIR}/{a.file}"
    a.notes.append(f"the file was moved to {FAILED_DIR}/ because the scheme failed; do not deploy it")


def check_out_dir(out: Path, run: RunInfo) -> Path | None:
    """Refuse an --out that is not ours to replace; the previous export's manifest path when there is one.

    An export is built in a new folder beside ``out`` and swapped in only when
    it is complete, so ``out`` must be new, empty, or a previous export (and writable: :func:`check_out_folder`).
    """
    out = out.expanduser()
    if out.resolve() == run.run_dir.resolve() or (out / MODEL_FILE).exists():
        raise ConfigError(f"expected --out to be a folder for the export, received the run directory {out} itself; "
                          "use the default (RUN_DIR/export) or another folder")
    check_out_folder(out, "for the export")
    if not out.exists():
        return None
    if (out / MANIFEST_FILE).is_file():
        return out / MANIFEST_FILE
    if any(out.iterdir()):
        raise ConfigError(f"expected --out to be a new or empty folder or a previous export, but {out} holds other "
                          "files (and no manifest.json); choose another --out")
    return None


def _carry_over(previous: Path | None, out: Path, new: Path, run: RunInfo, done: set[str]) -> list[ArtifactResult]:
    """Artifacts of the previous export at ``out`` for schemes not exported now, kept when they come from the
    same model.keras and still hash to what that manifest recorded (nothing completed is lost)."""
    if previous is None:
        return []
    try:
        old = read_manifest(out)
    except EdgeportError as exc:
        log.warning("the previous export in %s is unreadable (%s); its artifacts are not kept", out, exc)
        return []
    if old is None or old.data.get("source_model_sha256") != run.source_sha256:
        return []
    kept = []
    for art in old.artifacts:
        if art.scheme in done or art.scheme not in SCHEMES or not art.path.is_file():
            continue
        try:
            verify_sha256(art.path, art.sha256)
        except EdgeportError:
            log.warning("%s: changed since it was exported; not kept", art.file)
            continue
        target = new / art.file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(art.path, target)
        fields = {f.name for f in dataclasses.fields(ArtifactResult)}
        kept.append(ArtifactResult(**{k: v for k, v in art.entry.items() if k in fields}))
        log.info("%s: kept from the previous export (same model.keras)", art.scheme)
    return kept


def export(config: ExportConfig | str | os.PathLike[str], **options: Any) -> ExportResult:
    """Convert the run's model to every requested scheme, verify each, write the manifest.

    ``export(ExportConfig(run_dir="runs/r1"))``, or ``export("runs/r1", schemes=("int8",), max_drop=1)``
    with :class:`ExportConfig`'s fields as keyword arguments.

    The export is built in a new folder beside ``cfg.out_dir`` and swapped in
    when it is complete: an interrupted export leaves the previous one as it
    was and no temporary folder. Artifacts of the previous export for schemes
    not asked for this time are kept when they come from the same model.
    """
    from edgeport.config import make_config

    cfg = make_config(ExportConfig, config, "run_dir", options)
    run = read_run(cfg.run_dir)
    out = cfg.out_dir
    previous = check_out_dir(out, run)
    schemes = [get_scheme(n) for n in cfg.scheme_list]
    loaded: dict = {}
    model = load_keras_model(run.model_path, loaded)
    contract = _contract(run, model)

    t0 = time.perf_counter()
    need_calib = any(s.calibrated for s in schemes)
    calib, calib_info = (calibration_images(cfg, run, contract) if need_calib else (None, {}))
    calib_seconds = time.perf_counter() - t0
    verify = verification_set(cfg, run, contract, model)
    selection = None
    if verify is not None and any(s.searchable for s in schemes) and (cfg.search or cfg.diagnose):
        if len(verify) >= 4:
            selection, verify = _split(verify, cfg)
            log.info("int8 budget %s: %d validation images choose a float fallback when needed, %d others "
                     "verify and report", budget_of(cfg).describe(), len(selection), len(verify))
        else:
            log.warning("too few validation images (%d) to keep a selection half apart: no float-fallback search",
                        len(verify))
    golden = golden_set(cfg, run, contract, model)

    with replace_dir(out) as new, scratch_dir("edgeport-export-") as tmp:
        ctx = ConversionContext(model=model, workdir=tmp, calibration=calib, io_dtype=cfg.io_dtype,
                                opset=cfg.opset, progress=cfg.progress, calibration_method=cfg.calibration_method,
                                qat_options=_qat_options(cfg, run, contract))
        results = [_export_scheme(s, ctx, cfg, run, contract, verify, new, golden, selection) for s in schemes]
        results += _carry_over(previous, out, new, run, {s.name for s in schemes})
        results.sort(key=lambda a: ALL_SCHEMES.index(a.scheme))
        shutil.copyfile(run.run_dir / LABELS_FILE, new / LABELS_FILE)
        if golden is not None:
            write_golden(new / GOLDEN_DIR, golden.images, golden.labels, golden.reference, run.labels, contract,
                         {a.scheme: a.golden for a in results if a.ok and a.golden})
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "edgeport_version": __version__,
            "converters": converter_versions(),
            "source_model_sha256": run.source_sha256,
            # paths relative to the export directory: a manifest copied to a device names no local folders
            "source_model": os.path.relpath(run.model_path.resolve(), out.resolve()),
            "backbone": run.backbone,
            "training": _training_info(run, loaded),
            "labels": list(run.labels),
            "input": contract.to_dict(),
            "run_dir": os.path.relpath(run.run_dir, out.resolve()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": to_dict(replace(cfg, schemes=cfg.scheme_list)),
            "calibration": {**calib_info, "load_seconds": round(calib_seconds, 3)} if calib_info else {},
            "verification": verify.info if verify else {},
            "budget": {**budget_of(cfg).to_dict(), "default": budget_of(cfg) is DEFAULT_BUDGET,
                       "search": cfg.search, "selection_images": len(selection) if selection is not None else 0,
                       "confidence": cfg.confidence, "undecided": cfg.undecided},
            "golden": {"dir": GOLDEN_DIR, "images": len(golden)} if golden is not None else {},
            "tolerance": cfg.tolerance,
            "max_drop": cfg.max_drop,
            "shared_seconds": {k: round(v, 3) for k, v in ctx.shared_seconds.items()},
            "artifacts": [a.to_dict() for a in results],
        }
        write_manifest(new, manifest)
    requested = () if cfg.schemes is None or tuple(cfg.schemes) == ALL_SCHEMES else tuple(cfg.schemes)
    return ExportResult(out_dir=out, manifest_path=out / MANIFEST_FILE, manifest=manifest, artifacts=tuple(results),
                        requested=requested)
