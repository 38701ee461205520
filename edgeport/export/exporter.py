"""``export(ExportConfig) -> ExportResult``: every scheme converted, verified, described.

One scheme failing (conversion, loading, verification or the --max-drop
budget) marks that scheme failed with its reason; the others still export.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from edgeport import __version__
from edgeport._lazy import require
from edgeport.config import to_dict
from edgeport.contract import METADATA_KEY, InputContract, ModelInfo
from edgeport.data import scan
from edgeport.errors import ModelError
from edgeport.export.calibration import load_images, per_class_counts, stratified_pick
from edgeport.export.config import ALL_SCHEMES, ExportConfig
from edgeport.export.rundir import RunInfo, read_run, sha256_file
from edgeport.export.schemes import ConversionContext, Scheme, create_scheme
from edgeport.export.tflite import UnsupportedOpsError
from edgeport.export.verify import open_engine, verify_artifact

log = logging.getLogger(__name__)

#: An artifact's status when the scheme cannot represent an op of this model and has no fallback: not an
#: error of the export unless that scheme was asked for by name (``--schemes``), see :attr:`ExportResult.ok`.
UNSUPPORTED = "unsupported"

#: Distribution names whose versions go into the manifest.
CONVERTERS = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")


@dataclass
class ArtifactResult:
    """One scheme's outcome (a manifest ``artifacts`` entry)."""

    scheme: str
    file: str
    format: str
    description: str = ""
    status: str = "ok"
    reason: str = ""
    bytes: int | None = None
    sha256: str | None = None
    input: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    verification: dict = field(default_factory=dict)
    conversion_seconds: float | None = None
    conversion_cpu_seconds: float | None = None
    graph: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def fail(self, reason: str) -> None:
        self.status = "failed"
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
    for name in CONVERTERS:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def _short(exc: BaseException, limit: int = 600) -> str:
    text = " ".join(str(exc).split())
    # converter errors repeat the MLIR location dumps; keep the head, which names the problem
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


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
    except Exception as exc:  # noqa: BLE001 - keras raises many types for a bad file
        raise ModelError(
            f"expected a Keras 3 model file loadable with safe_mode=True at {path}, "
            f"but it could not be loaded ({_short(exc, 300)}); re-run `edgeport build` or check the file"
        ) from exc
    policies = layer_policies(model)
    deploy = as_float32(model)
    if info is not None:
        info.update(keras_file_layer_policies=policies, rebuilt_float32=deploy is not model)
    return deploy


def _training_info(run: RunInfo, loaded: dict) -> dict:
    """The manifest's ``training`` entry: the policy the run trained under (metrics.json/config.yaml) and
    what the export converted (always float32 layers)."""
    runtime: dict = {}
    try:
        runtime = json.loads((run.run_dir / "metrics.json").read_text()).get("runtime") or {}
    except (OSError, ValueError, AttributeError):
        pass
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


def _onnx_graph(path: Path, fmt: str) -> dict:
    if fmt != "onnx":
        return {}
    from edgeport.export.onnx import graph_summary

    return graph_summary(path)


def _calibration_set(cfg: ExportConfig, run: RunInfo, contract: InputContract) -> tuple[np.ndarray, dict]:
    if cfg.calibration_data:
        ds = scan(cfg.calibration_data, seed=cfg.seed)
        pool, names, source = list(ds.samples), ds.classes, str(Path(cfg.calibration_data).resolve())
    else:
        pool, names, source = run.samples("train"), run.labels, "train split of data_split.csv"
    picked = stratified_pick(pool, cfg.calibration_samples, cfg.seed)
    images, _, kept = load_images(picked, contract, "loading calibration images", cfg.progress)
    info = {"source": source, "samples": len(kept), "requested": cfg.calibration_samples,
            "seed": cfg.seed, "per_class": per_class_counts(kept, names), "input_range": [0, 255],
            "augmentation": False}
    log.info("calibration: %d images from %s, per class %s", len(kept), source, info["per_class"])
    return images, info


@dataclass(frozen=True)
class VerifySet:
    """Validation images with their labels and the Keras model's probabilities on them."""

    split: str
    images: np.ndarray
    labels: np.ndarray
    reference: np.ndarray
    info: dict

    def subset(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images, labels, reference) of all, or of a stratified seeded ``n`` of them."""
        idx = np.arange(len(self.labels)) if n >= len(self.labels) else _subset(self.labels, n, seed)
        return self.images[idx], self.labels[idx], self.reference[idx]


def _verification_set(cfg: ExportConfig, run: RunInfo, contract: InputContract, model) -> VerifySet | None:
    split = next((s for s in ("val", "test") if run.samples(s)), None)
    if split is None:
        log.warning("no val/test images in %s: artifacts are loaded but not compared with Keras",
                    run.run_dir / "data_split.csv")
        return None
    picked = stratified_pick(run.samples(split), cfg.verify_samples, cfg.seed)
    images, labels, kept = load_images(picked, contract, f"loading {split} images", cfg.progress)
    t0 = time.perf_counter()
    reference = np.asarray(model.predict(images.astype(np.float32), batch_size=32, verbose=0), np.float32)
    info = {"split": split, "samples": len(kept), "per_class": per_class_counts(kept, run.labels),
            "keras_accuracy": round(100.0 * float((reference.argmax(1) == labels).mean()), 4),
            "keras_seconds": round(time.perf_counter() - t0, 3),
            "int16x8_samples": min(cfg.int16x8_verify_samples, len(kept))}
    log.info("verification: %d %s images, per class %s; Keras top-1 %.2f %%", len(kept), split,
             info["per_class"], info["keras_accuracy"])
    return VerifySet(split, images, labels, reference, info)


def _gate(a: ArtifactResult, cfg: ExportConfig, reference: bool) -> None:
    v = a.verification
    if not v.get("samples"):
        if cfg.max_drop is not None:
            a.fail("--max-drop needs validation images, but the run's data_split.csv has no val/test split")
        return
    if reference and v["max_abs_diff"] > cfg.tolerance:
        a.fail(f"float32 artifact differs from Keras by {v['max_abs_diff']:.3g} in probability "
               f"(tolerance {cfg.tolerance:g}; agreement {v['agreement']:.2f} %)")
    if cfg.max_drop is not None and -v["delta_top1"] > cfg.max_drop:
        a.fail(f"top-1 dropped {-v['delta_top1']:.2f} points vs Keras (budget --max-drop {cfg.max_drop:g})")


def _export_scheme(scheme: Scheme, ctx: ConversionContext, cfg: ExportConfig, run: RunInfo,
                   contract: InputContract, verify: VerifySet | None) -> ArtifactResult:
    """Convert, embed metadata, describe, verify and gate one scheme (never raises for it)."""
    a = ArtifactResult(scheme=scheme.name, file=scheme.file, format=scheme.format, description=scheme.description)
    path = cfg.out_dir / scheme.file
    log.info("%s: converting -> %s", scheme.name, path)
    if scheme.calibrated and (ctx.calibration is None or len(ctx.calibration) == 0):
        a.fail("no calibration images (the run has no training split; pass --calibration-data DIR)")
        return a
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        scheme.convert(ctx, path)
        extra = {"io_dtype": cfg.io_dtype} if scheme.name == "int8" else {}
        _embed(path, scheme.format, _model_info(run, contract, scheme.name, scheme.format, scheme.file, extra))
    except Exception as exc:  # noqa: BLE001 - converters raise anything; isolate the scheme
        path.unlink(missing_ok=True)
        if isinstance(exc, UnsupportedOpsError):
            log.warning("%s: %s", scheme.name, exc)
            a.unsupported(str(exc))
            return a
        log.warning("%s: conversion failed: %s", scheme.name, _short(exc, 300))
        a.fail(f"conversion failed: {_short(exc)}")
        return a
    a.conversion_seconds = round(time.perf_counter() - t0, 3)
    a.conversion_cpu_seconds = round(time.process_time() - c0, 3)  # all threads: load-independent
    a.graph = ctx.graphs.get(scheme.name) or _onnx_graph(path, scheme.format)
    if scheme.name == "dynamic" and a.graph and not a.graph["weight_dtypes"].get("int8"):
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
                n = verify.info["int16x8_samples"] if scheme.name == "int16x8" else len(verify.labels)
                images, labels, reference = verify.subset(n, cfg.seed)
                a.verification = verify_artifact(engine, contract, images, labels, reference, cfg.progress,
                                                 f"{scheme.name} verification")
                if n < len(verify.labels):
                    a.verification["note"] = f"{n} of {len(verify.labels)} images (slow reference kernels)"
    except Exception as exc:  # noqa: BLE001 - an engine rejecting the file fails this scheme only
        log.warning("%s: verification failed: %s", scheme.name, _short(exc, 300))
        a.fail(f"verification failed: {_short(exc)}")
    else:
        _gate(a, cfg, scheme.reference)
    _settle(a, cfg.out_dir)
    log.info("%s: %s %s", scheme.name, a.status, a.reason)
    return a


FAILED_DIR = "failed"


def _settle(a: ArtifactResult, out: Path) -> None:
    """Move a converted file that failed verification or the budget to ``failed/`` (kept for
    inspection, out of the way of a device copying the folder); a success clears a stale copy there."""
    kept = out / FAILED_DIR / a.file
    if a.ok:
        kept.unlink(missing_ok=True)
        return
    kept.parent.mkdir(exist_ok=True)
    os.replace(out / a.file, kept)
    a.file = f"{FAILED_DIR}/{a.file}"
    a.notes.append(f"the file was moved to {FAILED_DIR}/ because the scheme failed; do not deploy it")


def export(cfg: ExportConfig) -> ExportResult:
    """Convert the run's model to every requested scheme, verify each, write the manifest."""
    run = read_run(cfg.run_dir)
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    loaded: dict = {}
    model = load_keras_model(run.model_path, loaded)
    contract = _contract(run, model)
    schemes = [create_scheme(n) for n in cfg.scheme_list]

    t0 = time.perf_counter()
    need_calib = any(s.calibrated for s in schemes)
    calib, calib_info = (_calibration_set(cfg, run, contract) if need_calib else (None, {}))
    calib_seconds = time.perf_counter() - t0
    verify = _verification_set(cfg, run, contract, model)

    with tempfile.TemporaryDirectory(prefix="edgeport-export-") as tmp:
        ctx = ConversionContext(model=model, workdir=Path(tmp), calibration=calib, io_dtype=cfg.io_dtype,
                                opset=cfg.opset, progress=cfg.progress)
        results = [_export_scheme(s, ctx, cfg, run, contract, verify) for s in schemes]

    if (run.run_dir / "labels.txt").resolve() != (out / "labels.txt").resolve():
        shutil.copyfile(run.run_dir / "labels.txt", out / "labels.txt")
    manifest = {
        "edgeport_version": __version__,
        "converters": converter_versions(),
        "source_model_sha256": run.source_sha256,
        "source_model": str(run.model_path.resolve()),
        "backbone": run.backbone,
        "training": _training_info(run, loaded),
        "labels": list(run.labels),
        "input": contract.to_dict(),
        "run_dir": str(run.run_dir),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": to_dict(replace(cfg, schemes=cfg.scheme_list)),
        "calibration": {**calib_info, "load_seconds": round(calib_seconds, 3)} if calib_info else {},
        "verification": verify.info if verify else {},
        "tolerance": cfg.tolerance,
        "max_drop": cfg.max_drop,
        "shared_seconds": {k: round(v, 3) for k, v in ctx.shared_seconds.items()},
        "artifacts": [a.to_dict() for a in results],
    }
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    requested = () if cfg.schemes is None or tuple(cfg.schemes) == ALL_SCHEMES else tuple(cfg.schemes)
    return ExportResult(out_dir=out, manifest_path=manifest_path, manifest=manifest, artifacts=tuple(results),
                        requested=requested)


def _subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified, seeded subset of ``n`` of ``labels``."""
    rng = np.random.default_rng(seed)
    per = {int(k): list(rng.permutation(np.flatnonzero(labels == k))) for k in np.unique(labels)}
    picked: list[int] = []
    while len(picked) < n:
        for k in sorted(per):
            if per[k] and len(picked) < n:
                picked.append(int(per[k].pop(0)))
    return np.array(sorted(picked), dtype=np.int64)
