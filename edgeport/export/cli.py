"""``edgeport export RUN_DIR``: convert, verify and describe every scheme (light import)."""

from __future__ import annotations

import argparse
import os

from edgeport.export.config import IO_DTYPES
from edgeport.schemes import ALL_SCHEMES


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
    p.add_argument("--schemes", default=None,
                   help=f"comma-separated subset of: {','.join(ALL_SCHEMES)} (default: all)")
    p.add_argument("--out", default=None, help="export directory (default: RUN_DIR/export)")
    p.add_argument("--config", default=None, help="YAML/JSON file of export options (flags win)")
    p.add_argument("--io-dtype", choices=IO_DTYPES, default=None,
                   help="input/output tensor type of the int8 TFLite model (default: uint8, camera pixels as-is)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    p.add_argument("--calibration-samples", type=int, default=None,
                   help="images for int8/int16x8/onnx-int8 calibration, stratified over classes (default: 200)")
    p.add_argument("--calibration-data", default=None,
                   help="a folder/CSV of images to calibrate with instead of the run's training split")
    p.add_argument("--seed", type=int, default=None, help="seed of the calibration/verification picks (default: 0)")
    p.add_argument("--verify-samples", type=int, default=None,
                   help="validation images each artifact is checked on (default: 200; all when fewer)")
    p.add_argument("--golden-images", type=int, default=None,
                   help="stratified validation images written into EXPORT/golden with the Keras model's "
                        "probabilities, for `edgeport check` on a device (default: 32; 0: none)")
    p.add_argument("--int16x8-verify-samples", type=int, default=None,
                   help="validation images for int16x8, which runs on slow reference kernels (default: 20)")
    p.add_argument("--max-drop", type=float, default=None,
                   help="fail schemes whose top-1 accuracy is more than POINTS below the Keras model's")
    p.add_argument("--threads", type=int, default=None, help="engine threads during verification (default: all cores)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON instead of a table")
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import json

    from edgeport.config import load_config
    from edgeport.export.config import ExportConfig
    from edgeport.export.exporter import export

    overrides = {
        "run_dir": args.run_dir, "out": args.out, "schemes": args.schemes, "io_dtype": args.io_dtype,
        "opset": args.opset, "calibration_samples": args.calibration_samples,
        "calibration_data": args.calibration_data, "seed": args.seed, "verify_samples": args.verify_samples,
        "golden_images": args.golden_images,
        "int16x8_verify_samples": args.int16x8_verify_samples, "max_drop": args.max_drop, "threads": args.threads,
        "progress": False if getattr(args, "quiet", False) else None,
    }
    cfg = load_config(ExportConfig, args.config, overrides)
    result = export(cfg)
    from edgeport.contract import printable_lines

    print(json.dumps(result.manifest, indent=2) if args.json else printable_lines(format_table(result)))
    return 0 if result.ok else 1
