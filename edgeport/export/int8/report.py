"""The quantization report: per-layer int8 error (TFLite, ONNX), the search trace, the picture.

    write_report(scheme, ctx, cands, result, selection, EXPORT / REPORT_DIR)  # <scheme>.json, .md, .png
    tflite_layer_stats(calibrated, images, layer_names)   # NumericVerify, whole-model
    onnx_layer_stats(float_onnx, int8_onnx, images, layer_names)
    plot_report(layers, search_result.to_dict(), "quantization/report.png")

Both per-layer tables hold, for each quantized activation tensor in graph
order: the op that writes it, the Keras layers it comes from, its scale and
``sqnr_db``, the signal-to-quantization-noise ratio of the int8 model's
tensor against the float model's, with errors accumulated from the input
(``whole_model``). The TFLite table also has ``rmse_over_scale``, the RMS
error in steps of the tensor's scale (about 0.29 is plain rounding; with
``whole_model=False`` it is the QuantizationDebugger's per-op figure,
given the op's own quantized inputs). ``op_index`` is the op's index in the
graph the search's candidates use. Rows are plain dicts, for a JSON/CSV
report.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Sequence

import numpy as np

from edgeport._lazy import require
from edgeport.evalset import EvalSet
from edgeport.export.int8.graph import layers_in, tflite_ops
from edgeport.files import atomic_write_text, write_json
from edgeport.progress import Progress
from edgeport.schemes import SchemeSpec

if TYPE_CHECKING:
    from edgeport.export.int8.search import SearchResult

log = logging.getLogger(__name__)

#: the quantization report's folder inside an export
REPORT_DIR = "quantization"
#: images the per-layer statistics run on (enough for stable SQNR; they take ~12 s per 25 at ResNet50V2 96 px)
LAYER_STAT_IMAGES = 24


def _sqnr(signal: float, noise: float) -> float | None:
    if signal <= 0:
        return None
    if noise <= 0:
        return math.inf
    return round(10.0 * math.log10(signal / noise), 4)


def tflite_layer_stats(
    calibrated: bytes,
    images: np.ndarray,
    layer_names: Collection[str] = (),
    float_nodes: Sequence[str] = (),
    whole_model: bool = True,
    progress: bool = False,
) -> list[dict]:
    """Per-op int8 error of the model :func:`~edgeport.export.tflite.quantize_calibrated` makes.

    Runs TF's NumericVerify debug model (``mlir_quantize(...,
    enable_numeric_verify=True)``, float I/O) through the QuantizationDebugger
    on ``images`` (raw 0..255 RGB). ``whole_model``: the float reference of
    each tensor comes from the float path of the whole model (errors
    accumulate), else from the op's own quantized input. ``float_nodes``: ops
    kept float (they get no row).
    """
    tf = require("tensorflow", "TFLite quantization statistics")
    from tensorflow.lite.python import convert as tf_convert

    debug_model = bytes(tf_convert.mlir_quantize(
        calibrated, enable_numeric_verify=True, enable_whole_model_verify=whole_model,
        denylisted_nodes=list(float_nodes) or None))

    def energy(f, q, scale, zp):
        return float(np.mean(np.square(f.astype(np.float64))))

    def noise(f, q, scale, zp):
        dq = (q.astype(np.float64) - zp) * scale
        return float(np.mean(np.square(f.astype(np.float64) - dq)))

    bar = Progress(len(images), "int8 layer statistics", enabled=progress)

    def dataset():
        for img in images:
            bar.update()
            yield [img.astype(np.float32)[None]]

    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"signal": energy, "noise": noise})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation and preserve-all-tensors notes
        debugger = tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=debug_model, debug_dataset=dataset, debug_options=options)
        debugger.run()
    bar.close()
    known = set(layer_names)
    op_index = {op.name: op.index for op in tflite_ops(calibrated)}
    rows = []
    interp = debugger._quant_interpreter  # noqa: SLF001 - the debugger's own op/tensor lookup
    for verify_name, metrics in debugger.layer_statistics.items():
        # QuantizationDebugger keeps its op/tensor lookups private: they are the only map from its statistics
        # back to the graph's tensors and ops (TF 2.21)
        tensor_name, _ = debugger._get_operand_name_and_index(verify_name)  # noqa: SLF001 - see above
        op_info = debugger._numeric_verify_op_details[verify_name]  # noqa: SLF001 - see above
        q_idx = op_info["inputs"][0]
        op_idx = debugger._defining_op.get(q_idx)  # noqa: SLF001 - see above
        op_name = interp._get_op_details(op_idx)["op_name"] if op_idx is not None else ""  # noqa: SLF001 - see above
        details = interp._get_tensor_details(q_idx, subgraph_index=0)  # noqa: SLF001 - see above
        q = details["quantization_parameters"]
        scale = float(q["scales"][0]) if len(q["scales"]) else 0.0
        sig, nse = float(metrics["signal"]), float(metrics["noise"])
        rows.append({
            "position": int(op_idx) if op_idx is not None else -1,
            "op_index": op_index.get(tensor_name, -1),
            "op": op_name,
            "tensor": tensor_name,
            "layers": list(layers_in(tensor_name, known)),
            "scale": scale,
            "sqnr_db": _sqnr(sig, nse),
            "rmse_over_scale": round(math.sqrt(nse) / scale, 6) if scale else None,
            "elements": int(metrics.get("num_elements", 0)),
        })
    rows.sort(key=lambda r: r["position"])
    for i, r in enumerate(rows):
        r["depth"] = i
    return rows


def onnx_layer_stats(
    float_model: str | Path,
    int8_model: str | Path,
    images: np.ndarray,
    layer_names: Collection[str] = (),
    progress: bool = False,
) -> list[dict]:
    """Whole-model SQNR of every quantized activation of a QDQ ``int8_model`` against ``float_model``.

    Both graphs get every float tensor as an extra output
    (``onnxruntime.quantization.qdq_loss_debug.modify_model_output_intermediate_tensors``)
    and run image by image with graph optimizations off (so QDQ pairs stay
    visible); energies are summed over images, nothing is kept in memory. A
    tensor's int8 value is its ``_DequantizeLinear_Output`` in the QDQ graph.
    ``float_model`` should be the graph that was quantized (pre-processed).
    """
    ort = require("onnxruntime", "ONNX quantization statistics")
    onnx = require("onnx", "ONNX quantization statistics")
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors
    from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX

    postfix = "_ReshapedSavedOutput"
    proto = onnx.load(str(float_model))
    producer = {o: (k, n) for k, n in enumerate(proto.graph.node) for o in n.output}
    inits = {t.name for t in proto.graph.initializer}
    known = set(layer_names)
    signal: dict[str, float] = {}
    noise: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edgeport-qdq-debug-") as tmp:
        paths = []
        for src, name in ((float_model, "float.onnx"), (int8_model, "int8.onnx")):
            dst = str(Path(tmp) / name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                modify_model_output_intermediate_tensors(str(src), dst)
            paths.append(dst)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sessions = [ort.InferenceSession(p, sess_options=opts, providers=["CPUExecutionProvider"]) for p in paths]
        feed_name = sessions[0].get_inputs()[0].name
        outs = [[o.name for o in s.get_outputs()] for s in sessions]
        with Progress(len(images), "onnx-int8 layer statistics", enabled=progress) as bar:
            for img in images:
                x = {feed_name: img.astype(np.float32)[None]}
                fl = dict(zip(outs[0], sessions[0].run(None, x)))
                q = dict(zip(outs[1], sessions[1].run(None, x)))
                for key, fv in fl.items():
                    if not key.endswith(postfix):
                        continue
                    t = key[: -len(postfix)]
                    qv = q.get(t + DEQUANT_OUTPUT_SUFFIX + postfix)
                    if qv is None or qv.shape != fv.shape:
                        continue
                    f64 = fv.astype(np.float64)
                    signal[t] = signal.get(t, 0.0) + float(np.mean(np.square(f64)))
                    noise[t] = noise.get(t, 0.0) + float(np.mean(np.square(f64 - qv.astype(np.float64))))
                bar.update()
    rows = []
    for t in signal:
        if t in inits:
            continue
        k, node = producer.get(t, (-1, None))
        names = [node.name] if node is not None else [t]
        if node is not None:
            names += [i for i in node.input if i in inits]
        layers: list[str] = []
        for nm in names:
            layers.extend(x for x in layers_in(nm, known) if x not in layers)
        rows.append({"position": k, "op_index": k, "op": node.op_type if node is not None else "", "tensor": t,
                     "layers": layers, "sqnr_db": _sqnr(signal[t], noise[t])})
    rows.sort(key=lambda r: r["position"])
    for i, r in enumerate(rows):
        r["depth"] = i
    return rows


def plot_report(layers: Sequence[dict], search: dict | None, path: str | Path, title: str = "") -> Path:
    """The report PNG: per-layer SQNR along the network's depth (with the model-level ranking and the
    ops kept float), and agreement vs p50 latency of each scored search step.

    ``layers``: rows of :func:`tflite_layer_stats` / :func:`onnx_layer_stats`;
    ``search``: :meth:`SearchResult.to_dict` (or None: the first panel only).
    """
    matplotlib = require("matplotlib", "drawing the quantization report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_search = bool(search and search.get("trace"))
    fig, axes = plt.subplots(1, 2 if has_search else 1, figsize=(13 if has_search else 7.5, 4.6), squeeze=False)
    _plot_sensitivity(axes[0][0], layers, search or {})
    if has_search:
        _plot_search(axes[0][1], search)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_sensitivity(ax, layers: Sequence[dict], search: dict) -> None:
    """SQNR per tensor along the depth, the biggest falls named, the ops kept float shaded, and the
    model-level ranking (agreement lost when each unit alone is quantized) as bars."""
    finite = [(r["depth"], r["sqnr_db"]) for r in layers if r.get("sqnr_db") not in (None, math.inf)]
    if finite:
        xs, ys = zip(*finite)
        ax.plot(xs, ys, "-", color="#1f77b4", lw=1.2, marker=".", ms=4, label="SQNR of int8 tensor (dB)")
        qat = [(r["depth"], r["sqnr_db_qat"]) for r in layers if r.get("sqnr_db_qat") not in (None, math.inf)]
        if qat:
            ax.plot(*zip(*qat), "-", color="#2ca02c", lw=1.2, marker=".", ms=4, label="after QAT (dB)")
        # where the error enters: the largest falls of SQNR from one tensor to the next
        falls = sorted(range(1, len(finite)), key=lambda i: finite[i][1] - finite[i - 1][1])[:2]
        for k, i in enumerate(falls):
            d, v = finite[i]
            if finite[i - 1][1] - v < 3.0:
                continue
            row = next(r for r in layers if r["depth"] == d)
            name = (row["layers"][-1] if row["layers"] else row["op"])[:30]
            left = d > 0.4 * max(xs)
            ax.annotate(f"{name} ({v - finite[i - 1][1]:+.0f} dB)", (d, v), textcoords="offset points",
                        xytext=(-150 if left else 20, 14 + 12 * k), fontsize=7, color="#1f77b4",
                        arrowprops={"arrowstyle": "-", "color": "#1f77b4", "lw": 0.6})
    float_layers = set(search.get("float_set", {}).get("layers", []))
    if float_layers:
        for r in layers:
            if set(r["layers"]) & float_layers:
                ax.axvspan(r["depth"] - 0.5, r["depth"] + 0.5, color="#ff7f0e", alpha=0.15, lw=0)
        ax.plot([], [], color="#ff7f0e", alpha=0.4, lw=6, label="kept float by the search")
    ax.set_xlabel("quantized tensor, input -> output")
    ax.set_ylabel("SQNR vs float (dB, higher is better)")
    groups = {g["name"]: g for g in search.get("groups", [])}
    spans, types = [], []
    for r in search.get("ranking", []):
        g = groups.get(r["group"], {})
        if not r.get("evaluated"):
            continue
        if g.get("kind") == "type":
            types.append(f"{r['group'][4:] if r['group'].startswith('all ') else r['group']} "
                         f"{100.0 - float(r['agreement_pct']):.1f}")
            continue
        depths = [x["depth"] for x in layers if x.get("op_index", -1) in set(g.get("ops", ()))]
        if depths:
            spans.append((min(depths) - 0.45, max(depths) + 0.45, 100.0 - float(r["agreement_pct"])))
    if types:
        ax.text(0.99, 0.98, "agreement lost, op type quantized alone (%):\n" + ", ".join(types[:8]),
                transform=ax.transAxes, ha="right", va="top", fontsize=7, color="#d62728", wrap=True)
    if spans:
        ax2 = ax.twinx()
        ax2.bar([a for a, _, _ in spans], [v for _, _, v in spans], width=[b - a for a, b, _ in spans],
                align="edge", color="#d62728", alpha=0.3, label="agreement lost, group quantized alone (%)")
        ax2.set_ylabel("model-level: agreement lost, group quantized alone (%)", color="#d62728", fontsize=8)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower left")
    else:
        ax.legend(fontsize=7, loc="lower left")
    ax.set_title("int8 sensitivity along the network", fontsize=10)


def _plot_search(ax, search: dict) -> None:
    """Agreement against p50 (over full int8's) of each scored step, by phase; the chosen one ringed."""
    steps = [s for s in search["trace"] if s["phase"] != "rank" and s.get("slowdown") is not None]
    colors = {"full": "#d62728", "calibrate": "#ff7f0e", "greedy": "#1f77b4", "prune": "#2ca02c"}
    chosen = search.get("chosen") or {}
    for s in steps:
        ax.scatter(s["slowdown"], s["agreement_pct"], color=colors.get(s["phase"], "gray"), s=28, zorder=3,
                   marker="o" if s["met"] else "x")
        if s["phase"] in ("full", "calibrate", "greedy") or s["step"] == chosen.get("step"):
            what = s.get("ranges", "minmax") if s["phase"] in ("full", "calibrate") else f"{s['float_ops']} float"
            ax.annotate(f"{s['step']}: {what}", (s["slowdown"], s["agreement_pct"]),
                        textcoords="offset points", xytext=(4, 3), fontsize=6)
    if chosen and chosen.get("slowdown") is not None:
        ax.scatter(chosen["slowdown"], chosen["agreement_pct"], s=160, facecolors="none", edgecolors="black",
                   zorder=4, label="chosen")
    budget = search.get("budget") or {}
    if budget.get("min_agreement") is not None:
        ax.axhline(budget["min_agreement"], color="gray", ls="--", lw=1, label=f"budget {budget['min_agreement']:g} %")
    for ph, c in colors.items():
        ax.scatter([], [], color=c, s=28, label=ph)
    ax.set_xlabel("p50 / full int8's (timed with it)")
    ax.set_ylabel("top-1 agreement with Keras (%, selection images)")
    ax.text(0.01, 0.01, "o met  x not met", transform=ax.transAxes, fontsize=7, va="bottom")
    ax.set_title(f"search: {search.get('summary', '')} ({'met' if search.get('met') else 'not met'})", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)


def layer_stats(scheme: SchemeSpec, ctx, cands, result: SearchResult,
                images: np.ndarray) -> list[dict]:
    """Per-layer SQNR of the full-integer model (TFLite NumericVerify on the chosen activation ranges /
    ONNX QDQ debug of the first calibration's full int8), Keras names added."""
    layers = ctx.layer_names()
    if scheme.format == "tflite":
        return tflite_layer_stats(cands.ranged(result.chosen.ranges), images, layers)
    return onnx_layer_stats(cands.preprocessed, result.full_int8_path, images, layers)


def write_report(scheme: SchemeSpec, ctx, cands, result: SearchResult, selection: EvalSet,
                 report_dir: Path, progress: bool = False, qat: tuple | None = None) -> dict[str, str]:
    """``<scheme>.json`` (everything), ``<scheme>.md`` (the tables people read) and ``<scheme>.png``.

    ``qat``: (the QAT model's candidates, its search result, whether that result was kept) when a QAT fine-tune
    ran: its full int8's per-layer SQNR goes beside post-training's (``sqnr_db_qat``), and its search is in the
    report (``qat_search`` with ``chosen``, and a section of the .md) whichever result was kept."""
    report_dir.mkdir(parents=True, exist_ok=True)
    images = ctx.calibration[:LAYER_STAT_IMAGES] if ctx.calibration is not None else selection.images[:LAYER_STAT_IMAGES]
    try:
        rows = layer_stats(scheme, ctx, cands, result, images)
        if qat is not None and scheme.format == "tflite":
            qcands, qresult = qat[0], qat[1]
            rule = (qresult or result).chosen.ranges
            after = tflite_layer_stats(qcands.ranged(rule), images, ctx.layer_names())
            for row, other in zip(rows, after):
                row["sqnr_db_qat"] = other.get("sqnr_db") if other.get("op") == row.get("op") else None
    except Exception as exc:  # noqa: BLE001 - the report is extra: a debugger failure must not fail the scheme
        log.warning("%s: per-layer statistics failed (%s); the report has the search only", scheme.name, exc)
        rows = []
    data = {"scheme": scheme.name, "layers": rows, **result.to_dict()}
    qresult = qat[1] if qat is not None else None
    qat_kept = bool(qat is not None and len(qat) > 2 and qat[2])
    if qresult is not None:
        data["qat_search"] = {**{k: v for k, v in qresult.to_dict().items() if k not in ("model", "groups")},
                              "chosen": qat_kept}
    data.pop("model", None)
    files = {"json": report_dir / f"{scheme.name}.json", "md": report_dir / f"{scheme.name}.md",
             "png": report_dir / f"{scheme.name}.png"}
    write_json(files["json"], data)
    atomic_write_text(files["md"], to_markdown(scheme, result, rows, qresult, qat_kept))
    plot_report(rows, result.to_dict(), files["png"], f"{scheme.name}: {headline(result)}")
    return {k: str(v) for k, v in files.items()}


def headline(result: SearchResult) -> str:
    """'int8, 2 ops float (0.1 % of MACs): budget met' / 'full integer: budget met' / '...: budget missed'."""
    what = result.summary if result.float_ops else "full integer"
    return f"{what}: budget {'met' if result.met else 'missed'} on the selection images"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _ci(ci: list[float] | None, spec: str) -> str:
    return f" [{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci else ""


def _trace_table(trace: list) -> list[str]:
    lines = ["| step | phase | action | ranges | float ops | float MACs % | images | agree % [CI] | decided agree % | "
             "Δtop-1 [CI] | mean KL | p50 ms | p50 / full int8 [CI] | met |",
             "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in trace:
        lines.append(f"| {s.step} | {s.phase} | {s.action} | {s.ranges} | {s.float_ops} | {100 * s.float_macs_share:.1f} | "
                     f"{s.images} | {_pct(s.agreement_pct)}{_ci(s.agreement_pct_ci, '.1f')} | "
                     f"{_pct(s.decided_agreement_pct)} | {s.delta_top1_pts:+.2f}{_ci(s.delta_top1_pts_ci, '+.1f')} | "
                     f"{s.mean_kl:.4f} | {'-' if s.p50_ms is None else f'{s.p50_ms:.2f}'} | "
                     f"{'-' if s.slowdown is None else f'{s.slowdown:.2f}x'}{_ci(s.slowdown_ci, '.2f')} | "
                     f"{'yes' if s.met else ''} |")
    return lines


def to_markdown(scheme: SchemeSpec, result: SearchResult, rows: list[dict],
                qat_result: SearchResult | None = None, qat_kept: bool = False) -> str:
    """The report for people: the outcome, the search trace (and the one from the QAT model when it ran), the
    ranking, the worst layers."""
    r = result
    kept = "" if qat_result is None else (" (not kept: the QAT model's result below was)" if qat_kept
                                           else " (kept over the QAT model's result below)")
    lines = [f"# {scheme.name}: {headline(r)}{kept}", "", r.message, "",
             f"Budget: {r.budget.describe()}; on the {r.selection_images} selection images the search required "
             f"{r.target.describe()} of the point estimates (agreement limits raised by one standard error, so "
             "that the candidate it picks is not merely the luckiest on these images). The export decides the "
             f"budget on the other validation images, on {100 * r.confidence:g} % intervals ([CI]: Clopper-Pearson for "
             "shares, Tango's paired score interval for Δtop-1, a bootstrap for the p50 ratio).", "",
             "## Search trace", "", *_trace_table(r.trace)]
    if qat_result is not None:
        lines += ["", f"## After QAT: {headline(qat_result)}{' (kept)' if qat_kept else ' (not kept)'}", "",
                  qat_result.message, "",
                  "The same search from the quantization-aware fine-tuned model (scored against the original Keras "
                  "model, on the same images).", "", *_trace_table(qat_result.trace)]
    if r.ranking:
        lines += ["", "## Model-level sensitivity (each unit quantized alone, everything else float)", "",
                  "| unit (most answers flipped first) | ops | MACs % | agree % | Δtop-1 | mean KL |",
                  "|---|---:|---:|---:|---:|---:|"]
        for row in sorted(r.ranking, key=lambda x: (float(x.get("agreement_pct", 100)), -float(x.get("mean_kl", 0)))):
            if row.get("evaluated"):
                lines.append(f"| {row['group']} | {row['ops']} | {100 * float(row.get('macs_share', 0)):.1f} | "
                             f"{_pct(row['agreement_pct'])} | {row['delta_top1_pts']:+.2f} | {row['mean_kl']:.4f} |")
    if rows:
        finite = [x for x in rows if x.get("sqnr_db") is not None and np.isfinite(x["sqnr_db"])]
        worst = sorted(finite, key=lambda x: x["sqnr_db"])[:15]
        # TFLite's table is measured on the chosen ranges; onnxruntime's debugger on the first calibration's
        ranges = r.chosen.ranges if scheme.format == "tflite" else r.full_int8.ranges
        has_qat = any(x.get("sqnr_db_qat") is not None for x in rows)
        lines += ["", f"## Per-layer SQNR of full int8 on {ranges} ranges (the {len(worst)} lowest of {len(rows)} "
                  "tensors)" + (", before and after QAT" if has_qat else ""), "",
                  "| depth | op | Keras layers | SQNR dB |" + (" after QAT dB |" if has_qat else ""),
                  "|---:|---|---|---:|" + ("---:|" if has_qat else "")]
        for x in worst:
            after = x.get("sqnr_db_qat")
            lines.append(f"| {x['depth']} | {x['op']} | {', '.join(x.get('layers') or []) or '-'} | {x['sqnr_db']:.1f} |"
                         + ((f" {after:.1f} |" if after is not None else " - |") if has_qat else ""))
    lines += ["", f"![{scheme.name} quantization report]({scheme.name}.png)", ""]
    return "\n".join(lines)
