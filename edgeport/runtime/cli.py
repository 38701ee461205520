"""`edgeport run` (classify a camera/video/images live) and `edgeport doctor`.

Light at import: argparse only; numpy, OpenCV and the engines load in the handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from contextlib import ExitStack

from edgeport.flags import Flag, help_text


#: Help of every LoopConfig flag. For a shared flag (edgeport.flags.SHARED) this is what it does here.
HELP: dict[str, str | Flag] = {
    "source": "camera index or /dev/videoN, video file, image folder or glob, rtsp://... or http://... URL, "
              "GStreamer pipeline (contains '!'), or picamera2[:N]",
    "engine": Flag("litert, tflite-runtime, onnxruntime or tensorflow", default="the best installed for the model"),
    "scheme": Flag("with an export directory: fp32, fp16, dynamic, int8, int16x8, onnx, onnx-fp16, onnx-int8 "
                   "(a bare int8/fp16 also matches ONNX with --engine onnxruntime)",
                   default="the best for this device"),
    "threads": Flag("one value: num_threads / intra_op_num_threads", default="the engine's own"),
    "providers": Flag("onnxruntime providers, e.g. tensorrt,cuda,cpu", default="the best available"),
    "top_k": "labels per frame",
    "show": "show a window with labels, FPS and latency (needs a GUI OpenCV and a display: see `edgeport doctor`)",
    "headless": "one JSON line per frame on stdout; the summary goes to stderr",
    "save": Flag("write the annotated video to this file (.mp4)", metavar="OUT.mp4"),
    "max_frames": Flag("stop after N frames", metavar="N", default="until the source ends"),
    "realtime": "pace a video file at its FPS and drop frames like a camera",
    "pipeline": "files/image folders: preprocess in the reader thread, overlapping the engine "
                "(pays when a core is free, e.g. --threads cores-1)",
    "width": Flag("requested camera width", default="the camera's"),
    "height": Flag("requested camera height", default="the camera's"),
    "retries": "reconnects of a live source that dies",
    "json_summary": Flag("also write the timing summary as JSON to this file", metavar="FILE"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from edgeport.flags import add_config_flags, add_shared
    from edgeport.runtime.config import LoopConfig

    run = subparsers.add_parser(
        "run",
        help="classify frames from a camera, video, image folder or stream with an exported model",
        description="Run an exported model (.tflite/.onnx or an export directory) on a live source. "
        "Without --show/--headless one line per frame is printed; a timing summary ends the run.",
    )
    run.add_argument("model", help="a .tflite/.onnx artifact or an export directory (best artifact picked)")
    add_shared(run, "config", "any of the options below")
    add_config_flags(run, LoopConfig, HELP, skip=("model",))
    run.epilog = ("exit status: 0 done; 1 no frame was classified, or a video file ended before the frame "
                  "count in its header (truncated); 2 bad input or a source that died. Ctrl-C or SIGTERM "
                  "ends the loop normally (summary, exit 0)")
    run.set_defaults(func=run_command)

    doc = subparsers.add_parser(
        "doctor", help="check this device: Python, numpy ABI, engines, CPU, OpenCV, cameras; advice",
        description="Report what this machine can run (each engine is imported in a child process, so one "
                    "that crashes is named instead of stopping the report) and what to do about what is "
                    "missing. -q prints only the advice.",
    )
    add_shared(doc, "json", "the report")
    doc.add_argument("--probe-timeout", type=float, default=30.0, metavar="SECONDS",
                     help=help_text("seconds each engine's import may take in its child process", 30))
    doc.set_defaults(func=doctor_command)


def run_command(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:  # e.g. `edgeport run ... --headless | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our errors name the source; keep OpenCV quiet
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass
    from edgeport.contract import printable
    from edgeport.files import write_json
    from edgeport.runtime.classifier import Classifier
    from edgeport.runtime.loop import VideoSaver, Window, run_loop
    from edgeport.runtime.overlay import draw_overlay
    from edgeport.runtime.sources import open_source
    from edgeport.runtime.stats import format_summary

    cfg = loop_config(args)
    if cfg.json_summary:  # checked now, not after the whole run
        _check_output_file(cfg.json_summary, "--json-summary")
    if cfg.show:  # before a camera is opened
        from edgeport.runtime.doctor import gui_problem

        problem = gui_problem()
        if problem:
            from edgeport.errors import ConfigError

            raise ConfigError(problem)
    out = sys.stdout
    info = sys.stderr if cfg.headless else sys.stdout
    stop = threading.Event()
    sources = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        for s in sources:
            s.interrupt()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ExitStack() as stack:
            opts = {"providers": cfg.providers} if cfg.providers else {}
            clf = stack.enter_context(Classifier.open(
                cfg.model, engine=cfg.engine, scheme=cfg.scheme, threads=cfg.threads, top_k=cfg.top_k, **opts))
            src = stack.enter_context(open_source(
                cfg.source, realtime=cfg.realtime, retries=cfg.retries, width=cfg.width, height=cfg.height))
            sources.append(src)
            providers = getattr(clf.engine, "providers", None)
            print(printable(f"edgeport run: {clf.engine.model_path.name} ({clf.info.scheme or '?'}) on "
                            f"{clf.engine.name}{' [' + ', '.join(providers) + ']' if providers else ''}, "
                            f"source {src.describe()}", limit=1000), file=info, flush=True)
            saver = stack.enter_context(VideoSaver(cfg.save, src.fps)) if cfg.save else None
            window = stack.enter_context(Window()) if cfg.show else None

            def on_result(frame, result) -> bool:
                if cfg.headless:
                    out.write(json.dumps(result.to_dict()) + "\n")
                    out.flush()
                elif not cfg.show:
                    labels = ", ".join(f"{printable(label, 60)} {p:.2f}" for label, p in result.top)
                    print(f"#{result.index} {labels} | {result.timings_ms['total']:.1f} ms {result.fps:.1f} FPS",
                          file=out, flush=True)
                if saver is not None or window is not None:
                    img = draw_overlay(frame.image, result.top, result.fps, result.timings_ms["total"])
                    if saver is not None:
                        saver.write(img)
                    if window is not None and not window.show(img):
                        return False
                return True

            summary = run_loop(clf, src, max_frames=cfg.max_frames, top_k=cfg.top_k, stop=stop,
                               on_result=on_result, pipeline=cfg.pipeline)
            if stop.is_set():
                summary["stopped_by_signal"] = True
            early = src.ended_early() if hasattr(src, "ended_early") else None
            if early and not summary.get("source_error"):
                summary["source_ended_early"] = early
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    summary.update(engine=clf.engine.name, model=str(clf.engine.model_path), scheme=clf.info.scheme)
    print(format_summary({k: v for k, v in summary.items() if k not in ("engine", "model", "scheme")}),
          file=info, flush=True)
    if cfg.json_summary:
        write_json(cfg.json_summary, summary, indent=1)  # atomic; NaN (no frames) becomes null
    if summary.get("source_error"):
        print(f"edgeport run: error: {printable(summary['source_error'], 1000)}", file=sys.stderr)
        return 2
    if summary.get("source_ended_early"):
        print(f"edgeport run: {summary['source_ended_early']} ({summary['frames']} classified)", file=sys.stderr)
        return 1
    if not summary.get("frames"):
        bad = summary.get("bad_frames") or 0
        print(f"edgeport run: no frame was classified ({bad} unreadable frame(s) skipped); "
              "check the source", file=sys.stderr)
        return 1
    return 0


def loop_config(args: argparse.Namespace):
    """LoopConfig from defaults < --config file < the flags given."""
    import dataclasses

    from edgeport.config import load_config
    from edgeport.flags import one_value
    from edgeport.runtime.config import LoopConfig

    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(LoopConfig)}
    overrides["threads"] = one_value(args.threads, "--threads", "run", "the camera loop runs the engine with one "
                                     "thread count (`edgeport bench` measures several)")
    return load_config(LoopConfig, args.config, overrides)


def _check_output_file(path: str, flag: str) -> None:
    """ConfigError unless ``path`` can be written: its folder exists and it is not a folder itself."""
    from pathlib import Path

    from edgeport.errors import ConfigError

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"expected {flag} to be a file name, received {path}, which is a folder")
    if not p.parent.is_dir():
        raise ConfigError(f"expected {flag} in an existing folder, received {path}: {p.parent} does not exist; "
                          "create it first")
    if not os.access(p.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"expected {flag} in a folder this user can write, received {path}")


def doctor_command(args: argparse.Namespace) -> int:
    from edgeport.contract import printable_lines
    from edgeport.runtime.doctor import doctor, format_advice, format_report

    if not args.probe_timeout > 0:
        from edgeport.errors import ConfigError

        raise ConfigError(f"expected --probe-timeout > 0 seconds, received {args.probe_timeout:g}")
    report = doctor(probe_timeout=args.probe_timeout)
    # JSON escapes control characters itself; the text report strips them (CPU and camera names come from the system)
    if args.json:
        print(json.dumps(report, indent=1))
    elif getattr(args, "quiet", False):  # -q: only what to do
        text = f"recommend    {report['recommendation']}\n{format_advice(report)}".rstrip()
        print(printable_lines(text))
    else:
        print(printable_lines(format_report(report)))
    return 0
