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
from contextlib import contextmanager
from typing import Callable, Iterator

from edgeport.flags import Flag, help_text


def _engine_help() -> str:
    from edgeport.runtime.engines import ENGINES, by_preference

    names = by_preference()
    only_named = [n for n in names if ENGINES.get(n).preference is None]
    return (", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]) + (
        f" ({', '.join(only_named)} only when named)" if only_named else "")


def _sink_help(name: str) -> str:
    from edgeport.runtime.sinks import SINKS

    cls = SINKS.get(name)
    extra = f"; needs {cls.install}" if cls.install else ""
    return f"also publish each result to {cls.target_help}{extra}"


def run_help() -> dict[str, str | Flag]:
    """Help of every LoopConfig flag, the registries' entries read where they name engines and sinks.
    For a shared flag (edgeport.flags.SHARED) this is what it does here."""
    from edgeport.runtime.sources import source_help
    from edgeport.schemes import ALL_SCHEMES

    return {
        "source": source_help(),
        "engine": Flag(_engine_help(), default="the best installed for the model"),
        "scheme": Flag(f"with an export directory: {', '.join(ALL_SCHEMES)} "
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
        "retries": Flag("reconnects of a live source that dies (-1: forever)", metavar="N",
                        default="5; forever with --serve or a sink"),
        "json_summary": Flag("also write the timing summary as JSON to this file", metavar="FILE"),
        "loop": "a video file starts again at its end (a camera stand-in that never ends)",
        "serve": Flag("serve the live view and API (page, /stream.mjpg, /api/latest, /api/classify, /metrics, "
                      "/healthz) on [HOST:]PORT; a HOST other than 127.0.0.1 needs a token",
                      metavar="[HOST:]PORT"),
        "token": Flag("the token --serve requires on every endpoint but /healthz (Bearer header or ?token=)",
                      metavar="TOKEN", default="none on 127.0.0.1, generated and printed otherwise"),
        "stream_fps": Flag("most frames a second the MJPEG stream is encoded at (it never slows the loop)",
                           metavar="FPS"),
        "max_upload_mb": Flag("largest image POST /api/classify takes", metavar="MB"),
        "mqtt": Flag(_sink_help("mqtt"), metavar="URL"),
        "mqtt_ca": Flag("CA certificates (PEM) that sign the broker's certificate, for mqtts://", metavar="FILE",
                        default="the system's"),
        "webhook": Flag(_sink_help("webhook"), metavar="URL"),
        "jsonl": Flag(_sink_help("jsonl"), metavar="FILE"),
        "jsonl_max_mb": Flag("size at which --jsonl rotates", metavar="MB"),
        "jsonl_keep": Flag("rotated --jsonl files kept", metavar="N"),
        "publish": Flag("which results the sinks get: every frame, or on a change of the top label",
                        metavar="every|change"),
        "publish_interval": Flag("at most one published result per this many seconds (0: no limit)",
                                 metavar="SECONDS"),
        "queue_size": Flag("messages each network sink keeps in memory while its destination is down",
                           metavar="N"),
        "spool_dir": Flag("then on disk in this folder (kept across restarts, up to --spool-mb per sink)",
                          metavar="DIR", default="memory only"),
        "spool_mb": Flag("disk each sink's spool may use; beyond it new results are dropped and counted",
                         metavar="MB"),
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
    add_config_flags(run, LoopConfig, run_help(), skip=("model",), choices={"publish": ("every", "change")})
    run.epilog = ("exit status: 0 done; 1 no frame was classified, or a video file ended before the frame "
                  "count in its header (truncated); 2 bad input or a source that died. Ctrl-C or SIGTERM "
                  "ends the loop normally (summary, exit 0)")
    run.set_defaults(func=run_command)

    from edgeport.runtime.config import ServeConfig

    serve = subparsers.add_parser(
        "serve", help="serve the page and API for uploaded images (no camera): /api/classify, /metrics, /healthz",
        description="Classify images POSTed to /api/classify with an exported model; the page has an upload "
                    "form. Binds 127.0.0.1:8080 unless told otherwise; a non-local bind needs a token.")
    serve.add_argument("model", help="a .tflite/.onnx artifact or an export directory (best artifact picked)")
    add_shared(serve, "config", "any of the options below")
    helps = run_help()
    add_config_flags(serve, ServeConfig, {k: helps[k] for k in helps if k in ServeConfig.__dataclass_fields__},
                     skip=("model",), defaults={"serve": "127.0.0.1:8080"})
    serve.set_defaults(func=serve_command)

    service = subparsers.add_parser(
        "service", help="install or remove a systemd unit that runs `edgeport run` at boot (restart on failure, "
                        "watchdog)",
        description="`edgeport service install EXPORT [run options]` writes /etc/systemd/system/NAME.service "
                    "(Restart=on-failure, WatchdogSec with sd_notify, User=), checks it with systemd-analyze "
                    "verify where it exists, and enables and starts it where systemd runs. "
                    "`edgeport service uninstall` stops and removes it.")
    actions = service.add_subparsers(dest="action", metavar="ACTION")
    inst = actions.add_parser("install", help="write, verify, enable and start the unit")
    inst.add_argument("model", help="the export directory or artifact the service runs")
    add_shared(inst, "config", "any of `edgeport run`'s options, written into the unit")
    add_config_flags(inst, LoopConfig, run_help(), skip=("model",), choices={"publish": ("every", "change")})
    _unit_flags(inst)
    inst.add_argument("--user", default=None, metavar="USER",
                      help=help_text("the user the service runs as (in the video group for a camera)",
                                     "the user who runs this command ($SUDO_USER under sudo)"))
    inst.add_argument("--watchdog", type=int, default=30, metavar="SECONDS",
                      help=help_text("WatchdogSec: systemd restarts a loop that stops making progress this long", 30))
    inst.add_argument("--no-start", action="store_true", help=help_text("only write and verify the unit", "off"))
    inst.set_defaults(func=service_command)
    uninst = actions.add_parser("uninstall", help="stop, disable and remove the unit")
    _unit_flags(uninst)
    uninst.set_defaults(func=service_command)
    service.set_defaults(func=lambda args: service.print_help() or 2)

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


def _unit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="edgeport", metavar="NAME", help=help_text("the unit's name", "edgeport"))
    p.add_argument("--unit-dir", default="/etc/systemd/system", metavar="DIR",
                   help=help_text("where the unit file goes", "/etc/systemd/system"))


def run_command(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:  # e.g. `edgeport run ... --headless | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    from edgeport.contract import printable
    from edgeport.files import write_json
    from edgeport.runtime.session import Session
    from edgeport.runtime.stats import format_summary

    session = Session(loop_config(args))
    with _signals_to(session.interrupt):
        result = session.run()
    summary = result.summary
    print(format_summary({k: v for k, v in summary.items() if k not in ("engine", "model", "scheme")}),
          file=session.info, flush=True)
    if session.cfg.json_summary:
        write_json(session.cfg.json_summary, summary, indent=1)  # atomic; NaN (no frames) becomes null
    if result.exit_code:
        print(f"edgeport run: {printable(result.message, 1000)}", file=sys.stderr)
    return result.exit_code


@contextmanager
def _signals_to(handler: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``handler`` (a run ends normally, with its summary) while the block runs."""
    def on_signal(signum: int, _frame: object) -> None:
        handler()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def serve_command(args: argparse.Namespace) -> int:
    import dataclasses

    from edgeport.config import load_config
    from edgeport.flags import one_value
    from edgeport.runtime.config import ServeConfig
    from edgeport.runtime.session import serve_api

    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(ServeConfig)}
    overrides["threads"] = one_value(args.threads, "--threads", "serve")
    cfg = load_config(ServeConfig, args.config, overrides)
    stop = threading.Event()
    with _signals_to(stop.set):
        counts = serve_api(cfg, stop)
    print(f"edgeport serve: stopped after {counts['requests']} requests ({counts['uploads']} images classified)",
          file=sys.stderr)
    return 0


def service_command(args: argparse.Namespace) -> int:
    from edgeport.runtime import systemd

    if args.action == "uninstall":
        path, existed, todo = systemd.uninstall(args.name, args.unit_dir)
        print(f"{'removed' if existed else 'no unit at'} {path}" + "".join(f"\nthen run: {c}" for c in todo))
        return 0
    cfg = loop_config(args)
    argv = [sys.executable, "-m", "edgeport", "run", *run_argv(cfg)]
    user = args.user or os.environ.get("SUDO_USER") or _current_user()
    path, todo = systemd.install(args.name, argv, user, args.unit_dir, workdir=os.getcwd(),
                                 watchdog_s=args.watchdog, start=not args.no_start)
    print(f"wrote {path} (runs as {user}; restart on failure, watchdog {args.watchdog} s)"
          + "".join(f"\nthen run: {c}" for c in todo))
    return 0


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def run_argv(cfg) -> list[str]:
    """`edgeport run`'s arguments that give ``cfg`` (paths made absolute, defaults left out)."""
    import dataclasses
    from pathlib import Path

    from edgeport.runtime.config import LoopConfig
    from edgeport.runtime.sources import source_kind

    argv = [str(Path(cfg.model).resolve())]
    defaults = LoopConfig(model=cfg.model)
    paths = {"save", "json_summary", "jsonl", "spool_dir", "mqtt_ca"}
    for f in dataclasses.fields(LoopConfig):
        value = getattr(cfg, f.name)
        if f.name == "model" or value == getattr(defaults, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name in paths or (f.name == "source" and source_kind(value) in ("video", "images")
                               and Path(value).exists()):
            value = str(Path(value).resolve())
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv


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
