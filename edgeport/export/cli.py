"""``edgeport export RUN_DIR``: convert, verify and describe every scheme (light import)."""

from __future__ import annotations

import argparse
import os

from edgeport.export.config import CALIBRATION_METHODS, IO_DTYPES
from edgeport.schemes import ALL_SCHEMES, get_scheme


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
    p.add_argument("--min-agreement", type=float, default=None, metavar="PCT",
                   help="fail schemes whose top-1 agrees with the Keras model on fewer than PCT %% of images")
    p.add_argument("--min-decided-agreement", type=float, default=None, metavar="PCT",
                   help="the same, counted where the Keras model is decided (top-2 margin > 0.1). With none of "
                        "--max-drop/--min-agreement/--min-decided-agreement the budget is this at 98 %%")
    p.add_argument("--no-search", dest="search", action="store_false", default=None,
                   help="int8/onnx-int8 that miss the budget fail instead of searching for the cheapest ops to "
                        "keep in float (default: search)")
    p.add_argument("--max-evals", type=int, default=None,
                   help="candidate models the float-fallback search may evaluate per scheme (default: 32)")
    p.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default=None,
                   help="onnx-int8 calibrator: minmax (default), entropy or percentile")
    p.add_argument("--diagnose", action="store_true", default=None,
                   help="write EXPORT/quantization/ (model-level sensitivity, per-layer SQNR, PNG) even when "
                        "full int8 meets the budget")
    p.add_argument("--threads", type=int, default=None, help="engine threads during verification (default: all cores)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON instead of a table")
    p.set_defaults(func=run)
    return p


def _cells(f: dict) -> list[str]:
    def num(key: str, spec: str) -> str:
        return format(f[key], spec) if f.get(key) is not None else "-"

    return [str(f.get("images", "-")), num("p50_ms", ".2f"), num("agreement_pct", ".2f"),
            num("decided_agreement_pct", ".2f"), num("top1_pct", ".2f"), num("delta_top1_pts", "+.2f"),
            num("max_abs_prob_diff", ".2e")]


def format_table(result) -> str:
    """A plain-text table of each scheme's verification figures (a searched int8 shows its full-int8 model
    beside it, measured on the same images), then the notes."""
    v = result.manifest.get("verification") or {}
    head = ["scheme", "file", "status", "MB", "in dtype", "n", "p50 ms", "agree %", "decided %", "top-1 %",
            "Δtop-1", "max|Δp|"]
    rows, notes = [], []
    for a in result.artifacts:
        f = a.verification or {}
        mb = f"{a.bytes / 1e6:.2f}" if a.bytes else "-"
        rows.append([a.scheme, a.file, a.status, mb, (a.input or {}).get("dtype", "-"), *_cells(f)])
        full = (a.quantization or {}).get("full_int8")
        if full:
            rows.append(["", "(full int8, not kept)", "", "", "", *_cells(full)])
        if a.precision and a.precision != get_scheme(a.scheme).label:
            notes.append(f"{a.scheme}: {a.precision}")
        if f.get("note"):
            notes.append(f"{a.scheme}: {f['note']}")
        notes += [f"{a.scheme}: {n}" for n in a.notes if "search" in n or "budget" in n]
        if a.reason:
            notes.append(f"{a.scheme} {a.status.upper()}: {a.reason}")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    right = [False, False, False] + [True] * (len(head) - 3)

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    lines = [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
    if v:
        chosen = f"; {v['selection_images']} others chose int8 fallbacks" if v.get("selection_images") else ""
        lines.append(f"Keras top-1 on {v.get('images')} {v.get('split')} images: {v.get('keras_top1_pct') or 0:.2f} %"
                     f" (the figures above are on these{chosen})")
    b = result.manifest.get("budget") or {}
    if b:
        from edgeport.export.search import Budget

        budget = Budget(b.get("max_drop"), b.get("min_agreement"), b.get("min_decided_agreement"))
        lines.append(f"budget: {budget.describe()}{' (the default)' if b.get('default') else ''}"
                     f"{'' if b.get('search', True) else '; no float-fallback search'}")
    c = result.manifest.get("calibration") or {}
    if c:
        lines.append(f"calibration: {c.get('images')} images ({c.get('source')}), per class {c.get('per_class')}, "
                     f"onnx-int8 {c.get('onnx_method', 'minmax')}")
        lines += [f"calibration warning: {w}" for w in c.get("warnings", [])]
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
        "min_agreement": args.min_agreement, "min_decided_agreement": args.min_decided_agreement,
        "search": args.search, "max_evals": args.max_evals, "calibration_method": args.calibration_method,
        "diagnose": args.diagnose,
        "progress": False if getattr(args, "quiet", False) else None,
    }
    cfg = load_config(ExportConfig, args.config, overrides)
    result = export(cfg)
    from edgeport.contract import printable_lines

    print(json.dumps(result.manifest, indent=2) if args.json else printable_lines(format_table(result)))
    return 0 if result.ok else 1
