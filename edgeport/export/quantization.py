"""int8 that keeps its accuracy: the budget, the float-fallback search per scheme, the quantization report.

The export calls :func:`improve` for each calibrated integer scheme (``int8``,
``onnx-int8``) after converting the full-integer model: the search
(:mod:`edgeport.export.search`) scores it, and when needed cheaper-to-costlier
float fallbacks, on the *selection* half of the validation images; the export
then verifies the chosen file on the other half, so no figure it reports was
used to choose. :func:`write_report` writes ``EXPORT/quantization/<scheme>.json``,
``.md`` and ``.png``: the per-layer table (TFLite NumericVerify / ONNX SQNR, with
Keras layer names), the model-level sensitivity ranking, the search trace.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.contract import InputContract
from edgeport.export.config import Budget, ExportConfig
from edgeport.export.search import EvalSet, SearchResult, search
from edgeport.files import atomic_write_text, write_json

log = logging.getLogger(__name__)

#: schemes whose full-integer model the search can repair by keeping ops float
SEARCHABLE = ("int8", "onnx-int8")
#: what a user who sets no limit gets: no int8 file that flips the float model's clear decisions
DEFAULT_BUDGET = Budget(max_drop=None, min_agreement=None, min_decided_agreement=98.0)
#: the quantization report's folder inside an export
REPORT_DIR = "quantization"
#: images the per-layer statistics run on (enough for stable SQNR; they take ~12 s per 25 at ResNet50V2 96 px)
LAYER_STAT_IMAGES = 24


def budget_of(cfg: ExportConfig) -> Budget:
    """The user's limits, or :data:`DEFAULT_BUDGET` when none is set."""
    if cfg.max_drop is None and cfg.min_agreement is None and cfg.min_decided_agreement is None:
        return DEFAULT_BUDGET
    return Budget(cfg.max_drop, cfg.min_agreement, cfg.min_decided_agreement)


@dataclass
class Improved:
    """What :func:`improve` did for one scheme."""

    result: SearchResult
    label: str  #: the honest precision label ("int8, 39 ops float (0.4 % of MACs)")
    entry: dict  #: the manifest's ``quantization`` entry
    report_files: dict


def candidates(scheme: str, ctx):  # noqa: ANN001 - a ConversionContext
    """The scheme's :class:`~edgeport.export.fallback.Candidates` from the context's one calibration."""
    return ctx.tflite_candidates() if scheme == "int8" else ctx.onnx_candidates()


def improve(scheme: str, ctx, cfg: ExportConfig, selection: EvalSet, contract: InputContract,  # noqa: ANN001
            path: Path, report_dir: Path) -> Improved:
    """Search for the cheapest model of ``scheme`` meeting the budget on ``selection``; write it to ``path``
    (the full-integer one when that already meets it) and the report into ``report_dir``. With
    ``cfg.search`` off (``--no-search --diagnose``) ``path`` keeps the full-integer model and the report
    says what a search would keep float."""
    cands = candidates(scheme, ctx)
    budget = budget_of(cfg)
    t0 = time.perf_counter()
    result = search(cands, selection, contract, budget, max_evals=cfg.max_evals, threads=cfg.threads,
                    out=path if cfg.search else None, workdir=ctx.workdir / f"search-{scheme}", seed=cfg.seed,
                    progress=cfg.progress, rank_always=cfg.diagnose, max_slowdown=cfg.max_slowdown,
                    rules=ctx.range_rules(scheme))
    log.info("%s: %s (%.0f s)", scheme, result.message, time.perf_counter() - t0)
    float_set = dict(result.float_set)
    float_set.pop("nodes", None)  # every node is in the report; the manifest keeps the names people read
    entry = {
        "ranges": result.chosen.ranges,
        "float_fallback": float_set,
        "budget": budget.to_dict(),
        "search": {k: v for k, v in result.to_dict().items() if k not in ("float_set", "model", "groups", "ranking")},
    }
    files = {}
    if cfg.diagnose or result.chosen.step != result.full_int8.step or not result.met:
        files = write_report(scheme, ctx, cands, result, selection, report_dir, cfg.progress)
        entry["report"] = {k: f"{REPORT_DIR}/{Path(v).name}" for k, v in files.items()}
    return Improved(result, result.summary, entry, files)


def layer_stats(scheme: str, ctx, cands, result: SearchResult, images: np.ndarray) -> list[dict]:  # noqa: ANN001
    """Per-layer SQNR of the full-integer model (TFLite NumericVerify on the chosen activation ranges /
    ONNX QDQ debug of the first calibration's full int8), Keras names added."""
    from edgeport.export.quantreport import onnx_layer_stats, tflite_layer_stats

    layers = ctx.layer_names()
    if scheme == "int8":
        return tflite_layer_stats(cands.ranged(result.chosen.ranges), images, layers)
    return onnx_layer_stats(cands.preprocessed, result.full_int8_path, images, layers)


def write_report(scheme: str, ctx, cands, result: SearchResult, selection: EvalSet,  # noqa: ANN001
                 report_dir: Path, progress: bool = False) -> dict[str, str]:
    """``<scheme>.json`` (everything), ``<scheme>.md`` (the tables people read) and ``<scheme>.png``."""
    from edgeport.export.quantreport import plot_report

    report_dir.mkdir(parents=True, exist_ok=True)
    images = ctx.calibration[:LAYER_STAT_IMAGES] if ctx.calibration is not None else selection.images[:LAYER_STAT_IMAGES]
    try:
        rows = layer_stats(scheme, ctx, cands, result, images)
    except Exception as exc:  # noqa: BLE001 - the report is extra: a debugger failure must not fail the scheme
        log.warning("%s: per-layer statistics failed (%s); the report has the search only", scheme, exc)
        rows = []
    data = {"scheme": scheme, "layers": rows, **result.to_dict()}
    data.pop("model", None)
    files = {"json": report_dir / f"{scheme}.json", "md": report_dir / f"{scheme}.md",
             "png": report_dir / f"{scheme}.png"}
    write_json(files["json"], data)
    atomic_write_text(files["md"], to_markdown(scheme, result, rows))
    plot_report(rows, result.to_dict(), files["png"], f"{scheme}: {headline(result)}")
    return {k: str(v) for k, v in files.items()}


def headline(result: SearchResult) -> str:
    """'int8, 2 ops float (0.1 % of MACs): budget met' / 'full integer: budget met' / '...: budget missed'."""
    what = result.summary if result.float_ops else "full integer"
    return f"{what}: budget {'met' if result.met else 'missed'} on the selection images"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def to_markdown(scheme: str, result: SearchResult, rows: list[dict]) -> str:
    """The report for people: the outcome, the search trace, the ranking, the worst layers."""
    r = result
    lines = [f"# {scheme}: {headline(r)}", "", r.message, "",
             f"Budget: {r.budget.describe()}; on the {r.selection_images} selection images the search required "
             f"{r.target.describe()} (agreement limits raised by one standard error). The export's verification "
             "figures come from the other validation images.", "",
             "## Search trace", "",
             "| step | phase | action | ranges | float ops | float MACs % | images | agree % | decided agree % | "
             "Δtop-1 | mean KL | p50 ms | p50 / full int8 (CPU) | met |",
             "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in r.trace:
        lines.append(f"| {s.step} | {s.phase} | {s.action} | {s.ranges} | {s.float_ops} | {100 * s.float_macs_share:.1f} | "
                     f"{s.images} | {_pct(s.agreement_pct)} | {_pct(s.decided_agreement_pct)} | "
                     f"{s.delta_top1_pts:+.2f} | {s.mean_kl:.4f} | {'-' if s.p50_ms is None else f'{s.p50_ms:.2f}'} | "
                     f"{'-' if s.slowdown is None else f'{s.slowdown:.2f}x'} | {'yes' if s.met else ''} |")
    if r.ranking:
        lines += ["", "## Model-level sensitivity (each unit quantized alone, everything else float)", "",
                  "| unit | ops | MACs % | agree % | Δtop-1 | mean KL |", "|---|---:|---:|---:|---:|---:|"]
        for row in sorted(r.ranking, key=lambda x: -float(x.get("mean_kl", 0))):
            if row.get("evaluated"):
                lines.append(f"| {row['group']} | {row['ops']} | {100 * float(row.get('macs_share', 0)):.1f} | "
                             f"{_pct(row['agreement_pct'])} | {row['delta_top1_pts']:+.2f} | {row['mean_kl']:.4f} |")
    if rows:
        finite = [x for x in rows if x.get("sqnr_db") is not None and np.isfinite(x["sqnr_db"])]
        worst = sorted(finite, key=lambda x: x["sqnr_db"])[:15]
        ranges = r.chosen.ranges if scheme == "int8" else r.full_int8.ranges
        lines += ["", f"## Per-layer SQNR of full int8 on {ranges} ranges (the {len(worst)} lowest of {len(rows)} "
                  "tensors)", "",
                  "| depth | op | Keras layers | SQNR dB |", "|---:|---|---|---:|"]
        lines += [f"| {x['depth']} | {x['op']} | {', '.join(x.get('layers') or []) or '-'} | {x['sqnr_db']:.1f} |"
                  for x in worst]
    lines += ["", f"![{scheme} quantization report]({scheme}.png)", ""]
    return "\n".join(lines)
