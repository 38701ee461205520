"""``edgeport pipeline`` and ``edgeport demo``: the four stages in one go.

    pipeline: build -> export -> bench -> a video of held-out images through
    the camera loop, all under one directory (run/, export/, bench/, video/).

``demo`` is the same on an embedded default (procedurally drawn shapes from
:mod:`edgeport.synthetic`) with settings that finish in minutes on a 2-core
CPU and need no internet. Importing this module is light (argparse only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeport.errors import ConfigError, EdgeportError
from edgeport.files import atomic_write_text, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    """Options of ``edgeport pipeline`` (and ``demo``, which changes the defaults)."""

    out: str
    data: str | None = None  #: None: generate the synthetic shapes set under OUT/data
    backbone: str = "resnet50v2"
    weights: str = "imagenet"
    head: str = "conv-bn-dropout"
    image_size: int = 224
    epochs: int = 10
    fine_tune_epochs: int = 5
    unfreeze: int | None = 1  #: None: every stage (training from scratch)
    batch_size: int = 32
    lr: float = 1e-3
    fine_tune_lr: float | None = None  #: default lr / 10
    schemes: tuple[str, ...] | None = None
    calibration_samples: int = 200
    verify_samples: int = 200
    threads: tuple[int, ...] = (1,)
    bench_runs: int = 100
    bench_limit: int | None = None
    video_images: int = 15
    frames_per_image: int = 4
    per_class: int = 200  #: synthetic images per class
    seed: int = 0
    replace: bool = False  #: remove a previous result in OUT first (the demo does)
    #: more options of the stages: {"build": {...}, "export": {...}, "bench": {...}} (BuildConfig etc. fields)
    stage_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.video_images < 1 or self.frames_per_image < 1:
            raise ConfigError(
                f"expected --video-images and --frames-per-image >= 1, "
                f"received {self.video_images} and {self.frames_per_image}"
            )
        if self.data is None and self.per_class < 4:
            raise ConfigError(f"expected --per-class >= 4 for the generated set, received {self.per_class}")


#: What ``edgeport demo`` uses unless told otherwise: a whole run in a few minutes on 2 CPU cores.
#: MobileNetV2 from scratch: phase 1 (a head on frozen random features) teaches nothing, so every
#: epoch trains the whole network. It stays near chance for 1-4 epochs (how long depends on the seed),
#: then learns the shapes quickly. Measured val top-1 on 3,000 images (seeds 0-4, 2-core CPU):
#: 12 epochs at lr 3e-3: 0.993-1.000; 10 epochs: 0.917-0.993; lr 5e-3: 0.64-0.995; 1e-2: 0.56.
DEMO_DEFAULTS: dict[str, Any] = dict(
    backbone="mobilenet_v2", weights="none", head="gap", image_size=64, epochs=0, fine_tune_epochs=12,
    unfreeze=None, batch_size=32, lr=3e-3, fine_tune_lr=3e-3, calibration_samples=100, verify_samples=200,
    bench_runs=50, bench_limit=200, per_class=600, video_images=30, frames_per_image=3,
)


def _pick_video_images(run_dir: Path, n: int) -> list[tuple[str, str]]:
    """Up to ``n`` held-out (val, else test) images, classes interleaved: (path, label)."""
    from edgeport.rundir import read_run
    from edgeport.sampling import round_robin

    run = read_run(run_dir)
    held = run.held_out()
    samples = held[1] if held else []
    order = round_robin([s.label for s in samples], n, seed=None)
    return [(str(samples[i].path), run.labels[samples[i].label]) for i in order]


def _run_camera_loop(model: Path, video: Path, out: Path, threads: int) -> dict:
    """`edgeport run MODEL --source VIDEO --headless --save` as a user would type it."""
    annotated, summary_path = out / "annotated.mp4", out / "run_summary.json"
    cmd = [sys.executable, "-m", "edgeport", "-q", "run", str(model), "--source", str(video), "--headless",
           "--save", str(annotated), "--json-summary", str(summary_path), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    atomic_write_text(out / "frames.jsonl", proc.stdout)
    if proc.returncode != 0:
        raise EdgeportError(f"the camera loop failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    frames = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    summary = json.loads(summary_path.read_text())
    return {"command": " ".join(cmd[2:]), "frames": frames, "summary": summary, "annotated": str(annotated)}


def _overlay_png(annotated: Path, png: Path, frame_index: int) -> None:
    import cv2

    cap = cv2.VideoCapture(str(annotated))
    cap.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
    ok, img = cap.read()
    cap.release()
    if ok:
        cv2.imwrite(str(png), img)


def run_pipeline(cfg: PipelineConfig) -> dict:
    """Run build, export, bench and the camera loop; write OUT/summary.{json,md}; return the summary."""
    from edgeport.benchmarks import BenchConfig
    from edgeport.benchmarks import run as bench
    from edgeport.build import BuildConfig, train
    from edgeport.export import ExportConfig, export
    from edgeport.video import images_to_video

    out = Path(cfg.out)
    if cfg.replace and (out / "run").exists():
        import shutil

        log.info("replacing the previous result in %s", out)
        for sub in ("data", "run", "export", "bench", "video"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    data = cfg.data
    if data is None:
        from edgeport.synthetic import make_dataset

        t = time.perf_counter()
        log.info("demo data: drawing %d images per class of 5 shapes into %s", cfg.per_class, out / "data")
        data = str(make_dataset(out / "data", per_class=cfg.per_class, size=96, seed=cfg.seed))
        times["data"] = time.perf_counter() - t

    unfreeze = cfg.unfreeze
    if unfreeze is None:
        from edgeport.build.backbones import BACKBONES

        unfreeze = len(BACKBONES.get(cfg.backbone).stages)
    t = time.perf_counter()
    log.info("stage 1/4 build: %s + %s head at %d px", cfg.backbone, cfg.head, cfg.image_size)
    run = train(BuildConfig(
        data=data, out=str(out / "run"), backbone=cfg.backbone, weights=cfg.weights, head=cfg.head,
        image_size=cfg.image_size, epochs=cfg.epochs, fine_tune_epochs=cfg.fine_tune_epochs,
        unfreeze=unfreeze, batch_size=cfg.batch_size, lr=cfg.lr, fine_tune_lr=cfg.fine_tune_lr, seed=cfg.seed,
        **cfg.stage_options.get("build", {}),
    ))
    times["build"] = time.perf_counter() - t

    t = time.perf_counter()
    log.info("stage 2/4 export: every scheme, calibrated and verified")
    exp = export(ExportConfig(
        run_dir=str(run.run_dir), out=str(out / "export"), schemes=cfg.schemes,
        calibration_samples=cfg.calibration_samples, verify_samples=cfg.verify_samples, seed=cfg.seed,
        **cfg.stage_options.get("export", {}),
    ))
    times["export"] = time.perf_counter() - t

    t = time.perf_counter()
    log.info("stage 3/4 bench: latency, size, memory and accuracy of each artifact")
    report = bench(BenchConfig(
        export_dir=str(exp.out_dir), threads=tuple(cfg.threads), runs=cfg.bench_runs, limit=cfg.bench_limit,
        out=str(out / "bench"), **cfg.stage_options.get("bench", {}),
    ))
    times["bench"] = time.perf_counter() - t

    t = time.perf_counter()
    log.info("stage 4/4 runtime: a video of held-out images through the camera loop")
    video_dir = out / "video"
    video_dir.mkdir(exist_ok=True)
    picked = _pick_video_images(Path(run.run_dir), cfg.video_images)
    video = images_to_video([p for p, _ in picked], video_dir / "input.mp4", fps=10.0,
                            frames_per_image=cfg.frames_per_image)
    # the runtime's own first choice among the TFLite files that passed (int8 when it did)
    from edgeport.schemes import rank_of

    tflite = sorted((a for a in exp.artifacts if a.ok and a.format == "tflite"), key=lambda a: rank_of(a.scheme, a.format))
    if not tflite:
        raise EdgeportError("no TFLite artifact passed its checks, so the camera loop has no model to run; "
                            f"see {exp.manifest_path}")
    model = Path(exp.out_dir) / tflite[0].file
    loop = _run_camera_loop(model, video, video_dir, threads=max(cfg.threads))
    truth = [label for _, label in picked for _ in range(cfg.frames_per_image)]  # frame i shows image i // fpi
    hits = sum(1 for f in loop["frames"] if f["index"] < len(truth) and f["top"][0]["label"] == truth[f["index"]])
    rs = loop["summary"]
    # a frame from the middle of the video: the FPS drawn on it is past the loop's warm-up
    middle = (len(picked) // 2) * cfg.frames_per_image + cfg.frames_per_image // 2
    _overlay_png(Path(loop["annotated"]), video_dir / "overlay.png", max(0, min(middle, len(loop["frames"]) - 1)))
    times["runtime"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t_all

    summary = {
        "out": str(out),
        "data": data,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()},
        "run_dir": str(run.run_dir),
        "val_top1_pct": run.metrics.get("val_top1_pct"),
        "export_dir": str(exp.out_dir),
        "artifacts": [{"file": a.file, "scheme": a.scheme, "status": a.status, "bytes": a.bytes,
                       "reason": a.reason} for a in exp.artifacts],
        "bench": {k: v for k, v in report.get("files", {}).items()},
        "runtime": {
            "model": str(model), "video": str(video), "annotated": loop["annotated"],
            "overlay_png": str(video_dir / "overlay.png"), "frames": len(loop["frames"]),
            "video_images": len(picked), "frames_correct": hits,
            "frame_top1": hits / max(1, len(loop["frames"])), "fps": rs.get("fps"),
            "fps_ratio": rs.get("fps_ratio"), "invoke_fps": rs.get("invoke_fps"),
            "bound_by": rs.get("bound_by"), "loop_ms": rs.get("loop_ms"), "source_live": rs.get("source_live"),
            "command": loop["command"],
        },
        "seconds": times,
    }
    write_json(out / "summary.json", summary, indent=1)
    atomic_write_text(out / "summary.md", format_summary(summary, report))
    return summary


def format_summary(summary: dict, report: dict | None = None) -> str:
    """The human summary: where everything is, the bench table, runtime FPS, next commands."""
    from edgeport.benchmarks.report import format_table

    out = Path(summary["out"])
    lines = [f"# edgeport pipeline — {out}", ""]
    val = summary.get("val_top1_pct")
    lines.append(f"model: {summary['run_dir']}/model.keras  (val top-1 {val:.1f} %)" if val is not None else
                 f"model: {summary['run_dir']}/model.keras")
    lines.append(f"artifacts in {summary['export_dir']}:")
    for a in summary["artifacts"]:
        size = f"{a['bytes'] / 1e6:7.2f} MB" if a.get("bytes") else "       -  "
        why = f"  ({a['reason']})" if a["status"] != "ok" and a.get("reason") else ""
        lines.append(f"  {a['file']:<22} {a['scheme']:<9} {size}  {a['status']}{why}")
    if report is not None:
        lines += ["", "benchmark (this machine):", format_table(report["rows"])]
    for name, path in summary.get("bench", {}).items():
        lines.append(f"  {name}: {path}")
    from edgeport.runtime.stats import describe_bound

    rt = summary["runtime"]
    correct = f" ({rt['frames_correct']}/{rt['frames']})" if "frames_correct" in rt else ""
    speed = f"{rt['fps']:.1f} FPS achieved"
    invoke_fps = rt.get("invoke_fps")
    if invoke_fps is not None and invoke_fps == invoke_fps:
        speed += f"; the engine alone could do {invoke_fps:,.0f}/s (1 / median invoke)"
    bound = describe_bound(rt)
    lines += [
        "",
        f"camera loop on {rt['video']} with {Path(rt['model']).name}: top-1 correct on "
        f"{100 * rt['frame_top1']:.0f} % of {rt['frames']} frames{correct}",
        f"  {speed}" + (f";\n  {bound}" if bound else ""),
        f"  annotated video: {rt['annotated']}",
        f"  overlay frame:   {rt['overlay_png']}",
        "",
        "time: " + ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds"].items()),
        "",
        "next, on your own data and device:",
        "  edgeport build --data PHOTOS/ --out runs/mine --image-size 224        # ImageNet weights need internet once",
        "  edgeport export runs/mine --out runs/mine/export",
        "  # copy runs/mine/export to the device, then there:",
        "  edgeport doctor",
        "  edgeport bench runs/mine/export --data VAL_PHOTOS/ --threads 1,2,4 --out bench",
        "  edgeport run runs/mine/export --source 0 --show                      # or picamera2, a GStreamer pipeline",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- CLI


#: Help of PipelineConfig's own options (the ones it shares with a stage take that stage's help).
HELP: dict[str, Any] = {
    "data": "the images to build, export, bench and run on",
    "out": "the folder of everything: OUT/run, OUT/export, OUT/bench, OUT/video, OUT/summary.md",
    "unfreeze": "backbone stages to fine-tune, counted from the top",
    "threads": "bench measures each; the camera loop uses the largest",
    "bench_runs": "timed runs per benchmarked variant",
    "bench_limit": "benchmark accuracy on at most N images",
    "video_images": "held-out images in the camera loop's video",
    "frames_per_image": "video frames showing each image",
    "per_class": "generated images per class (without --data)",
}
#: stage config fields that are no pipeline option: the pipeline sets them (where to read/write), or they
#: are PipelineConfig options under another name (bench_runs, bench_limit), or config-file keys only
_NOT_STAGE_OPTIONS = frozenset({"data", "out", "run_dir", "export_dir", "resume", "tolerance", "latency_images",
                                "runs", "limit"})


def _stages() -> list[tuple[str, type, dict]]:
    """(stage, its config class, its flags' help) for every stage the pipeline runs, in order."""
    from edgeport.benchmarks.cli import HELP as BENCH_HELP
    from edgeport.benchmarks.config import BenchConfig
    from edgeport.build.cli import HELP as BUILD_HELP
    from edgeport.build.config import BuildConfig
    from edgeport.export.cli import HELP as EXPORT_HELP
    from edgeport.export.config import ExportConfig

    return [("build", BuildConfig, BUILD_HELP), ("export", ExportConfig, EXPORT_HELP),
            ("bench", BenchConfig, BENCH_HELP)]


def stage_options() -> dict[str, list[str]]:
    """{option: the stages it goes to} for every stage option that is no PipelineConfig field."""
    own = {f.name for f in dataclasses.fields(PipelineConfig)}
    found: dict[str, list[str]] = {}
    for stage, cls, _ in _stages():
        for f in dataclasses.fields(cls):
            if f.name not in own and f.name not in _NOT_STAGE_OPTIONS:
                found.setdefault(f.name, []).append(stage)
    return found


def _add_common(p: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """Every option of PipelineConfig and of the stages, generated from their config dataclasses."""
    from edgeport.build.config import CHOICES
    from edgeport.flags import Flag, add_config_flags, add_shared

    stages = _stages()
    helps: dict[str, Any] = {}
    for _, _, stage_help in reversed(stages):  # the first stage that has an option gives its help
        helps.update(stage_help)
    helps.update(HELP)
    d = {f.name: f.default for f in dataclasses.fields(PipelineConfig)}
    d.update(defaults)
    shown = {**d, "unfreeze": "all" if d["unfreeze"] is None else d["unfreeze"],
             "fine_tune_lr": "--lr / 10" if d["fine_tune_lr"] is None else d["fine_tune_lr"],
             "schemes": "all" if d["schemes"] is None else d["schemes"],
             "bench_limit": "all" if d["bench_limit"] is None else d["bench_limit"]}
    if "out" in defaults:
        helps["out"] = Flag(HELP["out"], default=str(defaults["out"]))
    else:
        helps["out"] = Flag(HELP["out"], default="none, required")
    add_shared(p, "config", "PipelineConfig keys and any stage option below")
    own = [f.name for f in dataclasses.fields(PipelineConfig) if f.name not in ("data", "replace", "stage_options")]
    add_config_flags(p, PipelineConfig, helps, only=own, defaults=shown)
    extra = stage_options()
    group = p.add_argument_group("stage options", "passed to the stage that takes them (build, export, bench)")
    for stage, cls, _ in stages:
        names = [n for n, owners in extra.items() if owners[0] == stage]
        add_config_flags(group, cls, helps, only=names, choices=CHOICES)


def register(subparsers: Any) -> None:
    from edgeport.flags import Flag, add_config_flags

    demo = subparsers.add_parser(
        "demo", help="the whole toolkit on generated data, in minutes, offline",
        description="Draw a small labelled image set, then build, export every scheme, benchmark and run the "
                    "camera loop on a video of held-out images; prints a summary.",
    )
    add_config_flags(demo, PipelineConfig, {"data": Flag("use a real image set instead of the generated one "
                                                         "(as `edgeport build --data`)", default="generated shapes")},
                     only=["data"])
    _add_common(demo, {**DEMO_DEFAULTS, "out": "demo-out"})
    demo.set_defaults(func=main, replace=True, base=DEMO_DEFAULTS, default_out="demo-out")
    pipe = subparsers.add_parser(
        "pipeline", help="build, export, bench and run on your data, into one directory",
        description="The four stages on --data, writing OUT/run, OUT/export, OUT/bench and OUT/video.",
    )
    add_config_flags(pipe, PipelineConfig, {"data": Flag(HELP["data"], default="none, required")}, only=["data"])
    _add_common(pipe, {})
    pipe.set_defaults(func=main, replace=False, base={}, default_out=None)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """PipelineConfig from defaults < the demo's defaults < --config file < flags; stage options split off."""
    from edgeport.config import check_value, from_dict, read_config_file

    extra = stage_options()
    own = {f.name for f in dataclasses.fields(PipelineConfig)} - {"replace", "stage_options"}
    values: dict[str, Any] = dict(args.base)
    where = "flags"
    if args.config:
        where = str(args.config)
        values.update(read_config_file(args.config))
        unknown = sorted(set(values) - own - set(extra))
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {where}; expected keys: "
                              f"{', '.join(sorted(own | set(extra)))}")
    values.update({k: getattr(args, k) for k in own | set(extra) if getattr(args, k, None) is not None})
    if "progress" not in values and getattr(args, "quiet", False):
        values["progress"] = "off"
    if values.get("out") is None and args.default_out:
        values["out"] = args.default_out
    if values.get("out") is None:
        raise ConfigError("expected --out (the folder to write everything into), received nothing")
    if not args.base and not values.get("data"):
        raise ConfigError("expected --data (a folder, a CSV or tfds:NAME) for `edgeport pipeline`, received "
                          "nothing; `edgeport demo` runs on generated data")
    stages: dict[str, dict[str, Any]] = {}
    classes = {stage: cls for stage, cls, _ in _stages()}
    for key in sorted(set(values) & set(extra)):
        for stage in extra[key]:
            stages.setdefault(stage, {})[key] = check_value(classes[stage], key, values[key], where)
    mine = {k: v for k, v in values.items() if k in own}
    return from_dict(PipelineConfig, {**mine, "replace": args.replace, "stage_options": stages}, where)


def main(args: argparse.Namespace) -> int:
    cfg = pipeline_config(args)
    summary = run_pipeline(cfg)
    print((Path(cfg.out) / "summary.md").read_text())
    failed = [a["file"] for a in summary["artifacts"] if a["status"] == "failed"]  # unsupported is no failure
    return 1 if failed else 0
