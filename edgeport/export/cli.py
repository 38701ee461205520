"""``edgeport export RUN_DIR``: convert, verify and describe every scheme (light import)."""

from __future__ import annotations

import argparse

from edgeport.export.config import IO_DTYPES, ExportConfig
from edgeport.flags import Flag, add_config_flags, add_shared, one_value

#: ExportConfig fields that are no flag: RUN_DIR is the positional argument; tolerance is a config key
SKIP = ("run_dir", "tolerance")


#: Help of every ExportConfig flag (also used by ``edgeport pipeline``/``demo``). For a shared flag
#: (edgeport.flags.SHARED) this is what it does here, after the shared meaning.
HELP: dict[str, str | Flag] = {
    "out": Flag("the export directory", default="RUN_DIR/export"),
    "schemes": Flag("the schemes to convert", default="all"),
    "io_dtype": Flag("input/output tensor type of the int8 TFLite model (uint8: camera pixels as-is)",
                     choices=IO_DTYPES),
    "opset": "ONNX opset",
    "calibration_samples": "images for int8/int16x8/onnx-int8 calibration, stratified over classes",
    "calibration_data": Flag("a folder/CSV of images to calibrate with", default="the run's training split"),
    "seed": "of the calibration and verification picks",
    "verify_samples": Flag("validation images each artifact is checked on (all when fewer)"),
    "golden_images": "stratified validation images written into EXPORT/golden with the Keras model's "
                     "probabilities, for `edgeport check` on a device (0: none)",
    "int16x8_verify_samples": "validation images for int16x8, which runs on slow reference kernels",
    "max_drop": Flag("against the Keras model's top-1 on the verification images", default="no limit"),
    "threads": Flag("one value: the engine threads of the verification", default="all cores"),
    "progress": "",
}


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="convert a build run to TFLite/ONNX (fp32, fp16, dynamic, int8, int16x8, onnx, onnx-fp16, onnx-int8)",
        description=(
            "Convert RUN_DIR/model.keras to each scheme, load every artifact in its engine and compare it "
            "with the Keras model on the run's validation images, embed the labels and input contract in "
            "each file and write manifest.json. Exit status 1 when any requested scheme failed."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `edgeport build`")
    add_shared(p, "config", "any of the options below")
    add_config_flags(p, ExportConfig, HELP, skip=SKIP)
    add_shared(p, "json", "the manifest")
    p.set_defaults(func=run)
    return p


def format_table(result) -> str:
    """A plain-text table of each scheme's verification figures."""
    v = result.manifest.get("verification") or {}
    head = f"{'scheme':<10} {'file':<26} {'status':<6} {'MB':>7} {'conv s':>7} {'in dtype':>8} " \
           f"{'n':>4} {'agree %':>8} {'top-1 %':>8} {'Δtop-1':>7} {'max|Δp|':>9}"
    lines = [head, "-" * len(head)]
    notes = []
    for a in result.artifacts:
        f = a.verification or {}
        mb = f"{a.bytes / 1e6:.2f}" if a.bytes else "-"
        conv = f"{a.conversion_seconds:.1f}" if a.conversion_seconds is not None else "-"
        n = f.get("images", "-")
        agree = f"{f['agreement_pct']:.2f}" if f.get("agreement_pct") is not None else "-"
        acc = f"{f['top1_pct']:.2f}" if f.get("top1_pct") is not None else "-"
        delta = f"{f['delta_top1_pts']:+.2f}" if f.get("delta_top1_pts") is not None else "-"
        diff = f"{f['max_abs_prob_diff']:.2e}" if f.get("max_abs_prob_diff") is not None else "-"
        dtype = (a.input or {}).get("dtype", "-")
        lines.append(f"{a.scheme:<10} {a.file:<26} {a.status:<6} {mb:>7} {conv:>7} {dtype:>8} "
                     f"{n!s:>4} {agree:>8} {acc:>8} {delta:>7} {diff:>9}")
        if f.get("note"):
            notes.append(f"{a.scheme}: {f['note']}")
        if a.reason:
            notes.append(f"{a.scheme} FAILED: {a.reason}")
    if v:
        lines.append(f"Keras top-1 on {v.get('images')} {v.get('split')} images: {v.get('keras_top1_pct', 0):.2f} %")
    c = result.manifest.get("calibration") or {}
    if c:
        lines.append(f"calibration: {c.get('images')} images ({c.get('source')}), per class {c.get('per_class')}")
    lines += notes
    lines.append(f"wrote {result.manifest_path}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from edgeport.config import load_config
    from edgeport.export.exporter import export

    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(ExportConfig) if f.name not in SKIP}
    overrides["run_dir"] = args.run_dir
    overrides["threads"] = one_value(args.threads, "--threads", "export",
                                     "verification runs each artifact with one thread count")
    if overrides["progress"] is None and getattr(args, "quiet", False):
        overrides["progress"] = "off"
    cfg = load_config(ExportConfig, args.config, overrides)
    result = export(cfg)
    from edgeport.contract import printable_lines

    print(json.dumps(result.manifest, indent=2) if args.json else printable_lines(format_table(result)))
    return 0 if result.ok else 1
