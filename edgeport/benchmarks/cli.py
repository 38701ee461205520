"""``edgeport bench`` (light at import: argparse only)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from edgeport.benchmarks.config import SPLITS
from edgeport.flags import Flag, add_config_flags, add_shared, help_text, name_list, one_value
from edgeport.intervals import CONFIDENCE, check_confidence

DESCRIPTION = """\
Benchmark every artifact of an export on this device: latency (warm-up, then timed
engine.invoke runs on real preprocessed images, each variant in a fresh process),
file size, peak memory, and accuracy on labelled images vs the fp32 artifact.

  edgeport bench EXPORT_DIR --data DATA [--threads 1,2,4] [--engines auto|all|litert,onnxruntime] [--out DIR]
  edgeport bench compare A.json B.json ... [--out DIR]     (merge reports of several devices)
"""


#: Help of every BenchConfig flag (also used by ``edgeport pipeline``/``demo``). For a shared flag
#: (edgeport.flags.SHARED) this is what it does here, after the shared meaning.
HELP: dict[str, str | Flag] = {
    "data": Flag("the images whose accuracy is scored",
                 default="the training run's data_split.csv; random images with --no-accuracy"),
    "split": Flag("which split of --data to score", choices=SPLITS),
    "limit": Flag("use at most N images (a seeded random subset) for a quick pass", metavar="N", default="all"),
    "engines": "",
    "threads": "each count is measured",
    "warmup": "untimed runs before timing",
    "runs": "timed runs per variant",
    "max_seconds": "cap on each variant's timed loop; fewer runs are reported",
    "accuracy_max_seconds": "cap on each artifact x engine's accuracy pass; a capped pass scores a random "
                            "subset and says how many images",
    "accuracy": "score accuracy on labelled images (--no-accuracy: latency and size only, no --data needed)",
    "schemes": Flag("only these (manifest names; a plain int8 also matches onnx-int8 when nothing is named "
                    "exactly that)", default="all"),
    "out": Flag("write bench.json/.csv/.md/.png (compare.* for compare) into this folder", default="none: print only"),
    "timeout": "seconds before a variant's worker is stopped",
    "device_name": Flag("name of this device in reports and compare (the hostname is never recorded)",
                        default="the board, else the CPU model"),
    "confidence": "the accuracy and latency figures and the --max-drop gate (also for compare)",
    "undecided": "the --max-drop gate (also for compare)",
    "progress": "",
}
#: BenchConfig fields that are no flag: the positional EXPORT_DIR, and a key for config files only
BENCH_SKIP = ("export_dir", "latency_images")

#: Help of every CheckConfig flag.
CHECK_HELP: dict[str, str | Flag] = {
    "golden": Flag("another golden set to check against", metavar="DIR", default="EXPORT_DIR/golden"),
    "engines": "",
    "schemes": Flag("only these", default="every deployable artifact"),
    "threads": Flag("one value", default="the engine's own"),
    "tolerance_pts": "agreement with Keras may be this many points below export's before it fails, decided on "
                     "the interval of the difference (a one-image difference in 32 is no evidence)",
    "confidence": "the agreement difference",
    "undecided": "",
    "prob_tolerance": "max |Δp| may exceed export's by this much",
    "progress": "",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from edgeport.benchmarks.config import BenchConfig, CheckConfig

    p = subparsers.add_parser("bench", help="benchmark latency, size, memory and accuracy of each scheme",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                              usage="edgeport bench EXPORT_DIR [--data DATA] [options]\n"
                                    "       edgeport bench compare REPORT.json [REPORT.json ...] [--out DIR] [--max-drop POINTS]")
    p.add_argument("target", nargs="+", metavar="EXPORT_DIR",
                   help="an export directory (or folder of .tflite/.onnx), or 'compare' then bench.json files")
    add_shared(p, "config", "BenchConfig keys")
    add_config_flags(p, BenchConfig, HELP, skip=BENCH_SKIP)
    p.add_argument("--names", type=name_list, metavar="NAMES",
                   help=help_text("compare: device names, one per report", "each report's device"))
    add_shared(p, "max_drop", "against fp32 (a CI gate; also for compare)", shown_default="no limit")
    p.set_defaults(func=handle)

    c = subparsers.add_parser(
        "check", help="check this device against the export's golden set (no dataset needed)",
        description="Run every artifact of EXPORT_DIR on its golden set (EXPORT_DIR/golden: validation images "
                    "with the Keras model's probabilities) in this device's engine, through the runtime's own "
                    "preprocessing, and compare agreement and max |Δp| with what export measured on the same "
                    "images. Exit 1 when any artifact does worse than that by more than the tolerance.")
    c.add_argument("export_dir", metavar="EXPORT_DIR", help="an export directory from `edgeport export`")
    add_shared(c, "config", "CheckConfig keys")
    add_config_flags(c, CheckConfig, CHECK_HELP, skip=("export_dir",))
    add_shared(c, "json", "the report")
    c.set_defaults(func=check_command)


def _overrides(args: argparse.Namespace, cls: type, skip: tuple[str, ...]) -> dict[str, Any]:
    values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls) if f.name not in skip}
    if values.get("progress") is None and getattr(args, "quiet", False):
        values["progress"] = "off"
    return values


def check_command(args: argparse.Namespace) -> int:
    import json

    from edgeport.benchmarks.check import CheckConfig, format_check, run_check
    from edgeport.config import load_config

    overrides = _overrides(args, CheckConfig, ("export_dir",))
    overrides["export_dir"] = args.export_dir
    overrides["threads"] = one_value(args.threads, "--threads", "check", "check runs each artifact with one "
                                     "thread count (`edgeport bench` measures several)")
    report = run_check(load_config(CheckConfig, args.config, overrides))
    print(json.dumps(report, indent=1) if args.json else format_check(report))
    return 0 if report["ok"] else 1


def handle(args: argparse.Namespace) -> int:
    if args.target[0] == "compare":
        return _compare(args)
    if len(args.target) != 1:
        print(f"edgeport bench: error: expected one EXPORT_DIR (or 'compare' and reports), received "
              f"{' '.join(args.target)}", file=sys.stderr)
        return 2
    from edgeport.benchmarks.config import BenchConfig
    from edgeport.benchmarks.report import environment_lines, format_table, precision_legend
    from edgeport.benchmarks.runner import run
    from edgeport.config import load_config
    from edgeport.contract import printable_lines

    overrides = _overrides(args, BenchConfig, BENCH_SKIP)
    overrides["export_dir"] = args.target[0]
    cfg = load_config(BenchConfig, args.config, overrides)
    report = run(cfg)
    print(format_table(report["rows"]))
    print()
    print(printable_lines("schemes:\n" + "\n".join(f"  {line}" for line in precision_legend(report["rows"]))))
    print("\n".join(environment_lines(report["environment"])))
    for path in (report.get("files") or {}).values():
        print(f"wrote {path}")
    gated = _gate(report, args.max_drop, cfg.confidence, cfg.undecided)
    if not any(r["status"] == "ok" for r in report["rows"]):
        print(f"edgeport bench: no variant could be measured: all {len(report['rows'])} failed or have no engine "
              "here (the note column says why)", file=sys.stderr)
        return 1
    return gated


def _compare(args: argparse.Namespace) -> int:
    from edgeport.benchmarks.comparison import compare, format_side_by_side

    merged = compare(args.target[1:], args.out, args.names)
    print(format_side_by_side(merged))
    for path in (merged.get("files") or {}).values():
        print(f"wrote {path}")
    level = args.confidence if args.confidence is not None else CONFIDENCE
    return _gate(merged, args.max_drop, check_confidence(level), args.undecided or "pass")


def _gate(report: dict, max_drop: float | None, confidence: float, undecided: str) -> int:
    if max_drop is None:
        return 0
    from edgeport.benchmarks.runner import gate

    bad, open_ = gate(report, max_drop, confidence, undecided)
    checked = any((r.get("accuracy") or {}).get("delta_top1_pts") is not None for r in report["rows"])
    if not checked:
        print(f"FAIL --max-drop {max_drop:g}: no variant has a top-1 change vs fp32 to check "
              "(accuracy off, or no fp32 artifact ran)", file=sys.stderr)
        return 1
    for line in bad:
        print(f"FAIL --max-drop {max_drop:g}: {line}", file=sys.stderr)
    for line in open_:
        print(f"not decided --max-drop {max_drop:g}: {line}; passes (--undecided fail would fail it)")
    if not bad:
        print(f"max-drop gate passed: no scheme is shown to lose more than {max_drop:g} top-1 points vs fp32"
              + (f" ({len(open_)} not decided at these images)" if open_ else ""))
    return 1 if bad else 0
