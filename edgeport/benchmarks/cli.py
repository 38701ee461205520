"""``edgeport bench`` (light at import: argparse only)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Benchmark every artifact of an export on this device: latency (warm-up, then timed
engine.invoke runs on real preprocessed images, each variant in a fresh process),
file size, peak memory, and accuracy on labelled images vs the fp32 artifact.

  edgeport bench EXPORT_DIR --data DATA [--threads 1,2,4] [--engines auto|all|litert,onnxruntime] [--out DIR]
  edgeport bench compare A.json B.json ... [--out DIR]     (merge reports of several devices)
"""


def _threads(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2,4, received '{text}'") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive thread counts like 1,2,4, received '{text}'")
    return vals


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="benchmark latency, size, memory and accuracy of each scheme",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                              usage="edgeport bench EXPORT_DIR [--data DATA] [options]\n"
                                    "       edgeport bench compare REPORT.json [REPORT.json ...] [--out DIR] [--max-drop POINTS]")
    p.add_argument("target", nargs="+", metavar="EXPORT_DIR",
                   help="an export directory (or folder of .tflite/.onnx), or 'compare' then bench.json files")
    p.add_argument("--data", help="labelled images (class folders, split folders or CSV); "
                                  "default: the training run's data_split.csv")
    p.add_argument("--split", choices=("val", "test", "train", "all"), help="which split to score (default val)")
    p.add_argument("--limit", type=int, help="use at most N images (a seeded random subset) for a quick pass")
    p.add_argument("--engines", help="auto (default: best installed engine per artifact), all, or e.g. litert,onnxruntime")
    p.add_argument("--threads", type=_threads, help="thread counts to measure, e.g. 1,2,4 (default 1)")
    p.add_argument("--schemes", type=lambda s: tuple(v.strip() for v in s.split(",") if v.strip()),
                   help="only these schemes (manifest names, e.g. fp32,int8,onnx-int8; "
                        "a plain int8 also matches onnx-int8 when nothing is named exactly that)")
    p.add_argument("--warmup", type=int, help="untimed runs before timing (default 10)")
    p.add_argument("--runs", type=int, help="timed runs per variant (default 100)")
    p.add_argument("--max-seconds", type=float, help="cap on each variant's timed loop; fewer runs are reported (default 20)")
    p.add_argument("--accuracy-max-seconds", type=float,
                   help="cap on each artifact x engine's accuracy pass; a capped pass scores a random subset "
                        "and says how many images (default 300)")
    p.add_argument("--no-accuracy", dest="accuracy", action="store_false", default=None, help="latency and size only")
    p.add_argument("--timeout", type=float, help="seconds before a variant's worker is stopped (default 1800)")
    p.add_argument("--device-name", help="name of this device in reports and compare (default: the board, else the CPU model; the hostname is never recorded)")
    p.add_argument("--names", type=lambda s: [v.strip() for v in s.split(",")], help="compare: device names, one per report")
    p.add_argument("--out", help="write bench.json/.csv/.md/.png (compare.* for compare) into this folder")
    p.add_argument("--config", help="a YAML/JSON file of BenchConfig keys (flags override it)")
    p.add_argument("--max-drop", type=float, metavar="POINTS",
                   help="exit 1 when any scheme's top-1 is more than POINTS below fp32 (a CI gate)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    p.set_defaults(func=handle)

    c = subparsers.add_parser(
        "check", help="check this device against the export's golden set (no dataset needed)",
        description="Run every artifact of EXPORT_DIR on its golden set (EXPORT_DIR/golden: validation images "
                    "with the Keras model's probabilities) in this device's engine, through the runtime's own "
                    "preprocessing, and compare agreement and max |Δp| with what export measured on the same "
                    "images. Exit 1 when any artifact does worse than that by more than the tolerance.")
    c.add_argument("export_dir", metavar="EXPORT_DIR", help="an export directory from `edgeport export`")
    c.add_argument("--golden", metavar="DIR", help="another golden set to check against (default EXPORT_DIR/golden)")
    c.add_argument("--engines", default="auto", help="auto (default: best installed engine per artifact), all, "
                                                     "or e.g. litert,tflite-runtime")
    c.add_argument("--schemes", type=lambda s: tuple(v.strip() for v in s.split(",") if v.strip()), default=(),
                   help="only these schemes (default: every deployable artifact)")
    c.add_argument("--threads", type=int, default=None, help="engine threads (default: the engine's own)")
    c.add_argument("--tolerance-pts", type=float, default=5.0,
                   help="agreement with Keras may be this many points below export's (default 5: 1 image of 32)")
    c.add_argument("--prob-tolerance", type=float, default=0.1,
                   help="max |Δp| may exceed export's by this much (default 0.1)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(func=check_command)


def check_command(args: argparse.Namespace) -> int:
    import json

    from edgeport.benchmarks.check import CheckConfig, format_check, run_check

    report = run_check(CheckConfig(export_dir=args.export_dir, golden=args.golden, engines=args.engines,
                                   schemes=args.schemes, threads=args.threads, tolerance_pts=args.tolerance_pts,
                                   prob_tolerance=args.prob_tolerance))
    print(json.dumps(report, indent=1) if args.json else format_check(report))
    return 0 if report["ok"] else 1


def handle(args: argparse.Namespace) -> int:
    if args.max_drop is not None and args.max_drop < 0:
        from edgeport.errors import ConfigError

        raise ConfigError(f"expected --max-drop >= 0 top-1 points, received {args.max_drop:g}")
    if args.target[0] == "compare":
        return _compare(args)
    if len(args.target) != 1:
        print(f"edgeport bench: error: expected one EXPORT_DIR (or 'compare' and reports), received "
              f"{' '.join(args.target)}", file=sys.stderr)
        return 2
    from edgeport.benchmarks.bench import gate, run
    from edgeport.benchmarks.config import BenchConfig
    from edgeport.benchmarks.report import environment_lines, format_table, precision_legend
    from edgeport.config import load_config
    from edgeport.contract import printable_lines

    overrides = {k: getattr(args, k) for k in ("data", "split", "limit", "engines", "threads", "schemes", "warmup",
                                               "runs", "max_seconds", "accuracy_max_seconds", "accuracy", "timeout", "device_name", "out",
                                               "progress")}
    overrides["export_dir"] = args.target[0]
    cfg = load_config(BenchConfig, args.config, overrides)
    report = run(cfg)
    print(format_table(report["rows"]))
    print()
    print(printable_lines("schemes:\n" + "\n".join(f"  {line}" for line in precision_legend(report["rows"]))))
    print("\n".join(environment_lines(report["environment"])))
    for path in (report.get("files") or {}).values():
        print(f"wrote {path}")
    gated = _gate(report, args.max_drop)
    if not any(r["status"] == "ok" for r in report["rows"]):
        print(f"edgeport bench: no variant could be measured: all {len(report['rows'])} failed or have no engine "
              "here (the note column says why)", file=sys.stderr)
        return 1
    return gated


def _compare(args: argparse.Namespace) -> int:
    from edgeport.benchmarks.compare import compare
    from edgeport.benchmarks.report import format_table

    merged = compare(args.target[1:], args.out, args.names)
    print(format_table(merged["rows"], with_device=True))
    for path in (merged.get("files") or {}).values():
        print(f"wrote {path}")
    return _gate(merged, args.max_drop)


def _gate(report: dict, max_drop: float | None) -> int:
    if max_drop is None:
        return 0
    from edgeport.benchmarks.bench import gate

    bad = gate(report, max_drop)
    checked = any((r.get("accuracy") or {}).get("delta_top1_pts") is not None for r in report["rows"])
    if not checked:
        print(f"FAIL --max-drop {max_drop:g}: no variant has a top-1 change vs fp32 to check "
              "(accuracy off, or no fp32 artifact ran)", file=sys.stderr)
        return 1
    for line in bad:
        print(f"FAIL --max-drop {max_drop:g}: {line}", file=sys.stderr)
    if not bad:
        print(f"max-drop gate passed: no scheme lost more than {max_drop:g} top-1 points vs fp32")
    return 1 if bad else 0
