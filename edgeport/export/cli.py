"""``edgeport export RUN_DIR``: convert, verify and describe every scheme (light import)."""

from __future__ import annotations

import argparse

from edgeport.export.config import CALIBRATION_METHODS, IO_DTYPES, ExportConfig
from edgeport.flags import Flag, add_config_flags, add_shared, one_value
from edgeport.schemes import ALL_SCHEMES, get_scheme
from edgeport.tables import text_table

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
    "verify_samples": Flag("validation images each artifact is checked on", default="all of them"),
    "verify_seconds": Flag("at most this long verifying one scheme (int16x8's reference kernels are slow): a "
                           "class-balanced prefix of the images counts, and the table says how many",
                           type=float, metavar="SECONDS"),
    "golden_images": "stratified validation images written into EXPORT/golden with the Keras model's "
                     "probabilities, for `edgeport check` on a device (0: none)",
    "max_drop": Flag("against the Keras model's top-1 on the held-aside verification images: part of the budget "
                     "every lossy scheme must meet", default="the default budget"),
    "min_agreement": Flag("fail schemes whose top-1 agrees with the Keras model's on fewer than this % of the "
                          "held-aside images (part of the budget)", default="the default budget"),
    "min_decided_agreement": Flag("the same, counted on the images where the Keras model is decided (its top-2 "
                                  "margin > 0.1); with no budget limit given, the budget is this at 98",
                                  default="98 when no limit is given"),
    "confidence": "the budget of every lossy scheme on the held-aside images",
    "undecided": "the table says how many images would decide it",
    "search": "int8/onnx-int8 that miss the budget: search for the cheapest ops to keep float (--no-search: "
              "fail them instead)",
    "max_evals": "candidate models the float-fallback search may evaluate per scheme",
    "max_slowdown": Flag("a float fallback's p50 may be at most this factor of full int8's (LiteRT: in "
                         "wall clock and in CPU time, timed alternating with full int8; onnxruntime: CPU time, timed "
                         "one after the other; at least 0.5 s); slower ones do not "
                         "count as meeting the budget",
                         type=float, metavar="FACTOR"),
    "selection_fraction": "share of the validation images that choose a float fallback (the rest report)",
    "calibration_method": Flag("how int8/onnx-int8 activation ranges are set from the calibration images: auto "
                               "(min/max; when full int8 misses the budget the search also tries the scheme's "
                               "percentile, mse, narrowest and entropy rules) or one rule (mse, narrowest: int8 "
                               "only)",
                               choices=CALIBRATION_METHODS),
    "diagnose": "write EXPORT/quantization/ (model-level sensitivity, per-layer SQNR, PNG) even when full int8 "
                "meets the budget",
    "qat": "when post-training int8/onnx-int8 needs ops kept float or misses the budget, also fine-tune the model "
           "under simulated int8 (quantization-aware training: per-channel int8 weights, BatchNorm folded, per-tensor "
           "int8 activations on the calibrated ranges, distilling the Keras model over the run's train split) and "
           "search again from there; the cheaper result that meets the budget is kept",
    "qat_epochs": "epochs of the QAT fine-tune",
    "qat_lr": Flag("learning rate of the QAT fine-tune (Adam)", type=float, metavar="LR"),
    "resume": "here the QAT fine-tune's (RUN_DIR/checkpoints/qat)",
    "threads": Flag("one value: the engine threads of the verification", default="all cores"),
    "progress": "",
}


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help=f"convert a build run to TFLite/ONNX ({', '.join(ALL_SCHEMES)})",
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


def _cells(f: dict) -> list[str]:
    def num(key: str, spec: str) -> str:
        return format(f[key], spec) if f.get(key) is not None else "-"

    def with_ci(key: str, spec: str) -> str:
        ci = f.get(f"{key}_ci")
        if f.get(key) is None or not ci:
            return num(key, spec)
        short = spec.replace(".2", ".1")
        return f"{format(f[key], spec)} [{format(ci[0], short)}, {format(ci[1], short)}]"

    outcome = (f.get("budget") or {}).get("outcome", "")
    return [str(f.get("images", "-")), num("p50_ms", ".2f"), with_ci("agreement_pct", ".2f"),
            num("decided_agreement_pct", ".2f"), num("top1_pct", ".2f"), with_ci("delta_top1_pts", "+.2f"),
            num("max_abs_prob_diff", ".2e"), {"undecided": "not decided"}.get(outcome, outcome)]


def format_table(result) -> str:
    """A plain-text table of each scheme's verification figures (a searched int8 shows its full-int8 model
    beside it, measured on the same images), then the notes."""
    v = result.manifest.get("verification") or {}
    head = ["scheme", "file", "status", "MB", "in dtype", "n", "p50 ms", "agree % [CI]", "decided %", "top-1 %",
            "Δtop-1 [CI]", "max|Δp|", "budget"]
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
    lines = text_table(head, rows).split("\n")
    if v:
        chosen = f"; {v['selection_images']} others chose int8 fallbacks" if v.get("selection_images") else ""
        lines.append(f"Keras top-1 on {v.get('images')} {v.get('split')} images: {v.get('keras_top1_pct') or 0:.2f} %"
                     f" (the figures above are on these{chosen})")
    b = result.manifest.get("budget") or {}
    if b:
        from edgeport.export.int8.budget import Budget

        budget = Budget(b.get("max_drop"), b.get("min_agreement"), b.get("min_decided_agreement"))
        level = 100 * float(b.get("confidence", 0.95))
        lines.append(f"budget: {budget.describe()}{' (the default)' if b.get('default') else ''}"
                     f"{'' if b.get('search', True) else '; no float-fallback search'}; decided on {level:g} % "
                     "intervals ([CI] above): met when the whole interval meets it, missed when none of it does, "
                     f"else not decided (which {'fails' if b.get('undecided') == 'fail' else 'passes'})")
    c = result.manifest.get("calibration") or {}
    if c:
        chosen = ", ".join(f"{a.scheme} {a.quantization['ranges']}" for a in result.artifacts
                           if a.quantization and a.quantization.get("ranges"))
        lines.append(f"calibration: {c.get('images')} images ({c.get('source')}), per class {c.get('per_class')}, "
                     f"activation ranges {c.get('method', 'minmax')}{f' ({chosen})' if chosen else ''}")
        lines += [f"calibration warning: {w}" for w in c.get("warnings", [])]
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
