"""One searchable scheme's int8 made to keep its accuracy: search, then report.

The export calls :func:`improve` for each searchable scheme
(:attr:`~edgeport.schemes.SchemeSpec.searchable`) after converting its
full-integer model: the search (:mod:`edgeport.export.int8.search`) scores it,
and when needed other activation ranges and cheaper-to-costlier float
fallbacks, on the *selection* half of the validation images; the export then
verifies the chosen file on the other half, so no figure it reports was used
to choose. :func:`~edgeport.export.int8.report.write_report` writes
``EXPORT/quantization/<scheme>.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edgeport.contract import InputContract
from edgeport.errors import short_message
from edgeport.evalset import EvalSet
from edgeport.export.config import ExportConfig
from edgeport.export.int8.budget import budget_of
from edgeport.export.int8.report import REPORT_DIR, write_report
from edgeport.export.int8.search import SearchResult, search
from edgeport.schemes import SchemeSpec

log = logging.getLogger(__name__)


@dataclass
class Improved:
    """What :func:`improve` did for one scheme."""

    result: SearchResult  #: the search result that was kept (post-training, or after QAT)
    label: str  #: the honest precision label ("int8, 39 ops float (0.4 % of MACs)")
    entry: dict  #: the manifest's ``quantization`` entry
    report_files: dict
    baseline: SearchResult | None = None  #: the post-training search (whose full int8 the table shows beside)

    @property
    def applied(self) -> bool:
        """The file kept is not post-training full int8 on its first range rule."""
        b = self.baseline or self.result
        return (self.result is not b or self.result.float_ops > 0
                or self.result.chosen.ranges != self.result.full_int8.ranges)


def improve(scheme: SchemeSpec, ctx, cfg: ExportConfig, selection: EvalSet,
            contract: InputContract, path: Path, report_dir: Path) -> Improved:
    """Search for the cheapest model of ``scheme`` meeting the budget on ``selection``; write it to ``path``
    (the full-integer one when that already meets it) and the report into ``report_dir``. With
    ``cfg.search`` off (``--no-search --diagnose``) ``path`` keeps the full-integer model and the report
    says what a search would keep float.

    With ``cfg.qat``, when post-training int8 needs ops kept float or misses the budget, the model is also
    fine-tuned under simulated int8 (:mod:`edgeport.export.int8.qat`) and searched the same way from there;
    the better of the two results wins (:func:`_cost`: met first, then the fewest MACs kept float; of two that
    miss, the closer; post-training on a tie)."""
    cands = ctx.candidates(scheme)
    budget = budget_of(cfg)
    t0 = time.perf_counter()
    result = _search(scheme, cands, ctx, cfg, selection, contract, budget, "ptq", ctx.range_rules(scheme.name))
    log.info("%s: %s (%.0f s)", scheme.name, result.message, time.perf_counter() - t0)
    qat_entry: dict = {}
    winner, qat, qcands = result, None, None
    needed = not (result.met and result.float_ops == 0)
    if cfg.qat and cfg.search and needed:
        try:
            qat, qctx = ctx.qat(result.chosen.ranges)
            qcands = qctx.candidates(scheme)
            rules = (result.chosen.ranges,) + tuple(r for r in ctx.range_rules(scheme.name)
                                                    if r != result.chosen.ranges)
            qresult = _search(scheme, qcands, qctx, cfg, selection, contract, budget, "qat", rules)
        except Exception as exc:  # noqa: BLE001 - QAT is one more starting point: never lose post-training's result
            why = short_message(exc, 300)
            log.warning("%s: QAT failed (%s); keeping the post-training result", scheme.name, why)
            result.message += f"; QAT failed ({why}), this is the post-training result"
            qat, qcands, qat_entry = None, None, {"ran": False, "why": f"failed: {why}", "ptq": _brief(result)}
        else:
            log.info("%s after QAT: %s", scheme.name, qresult.message)
            if _cost(qresult) < _cost(result):
                winner = qresult
            qat_entry = {**qat.to_dict(), "chosen": winner is qresult, "search": _brief(qresult),
                         "ptq": _brief(result)}
    elif cfg.qat:
        qat_entry = {"ran": False, "why": ("post-training full int8 meets the budget: nothing for QAT to repair"
                                           if not needed else "--no-search")}
    if cfg.search:
        shutil.copyfile(winner.model_path, path)
    float_set = dict(winner.float_set)
    float_set.pop("nodes", None)  # every node is in the report; the manifest keeps the names people read
    entry = {
        "ranges": winner.chosen.ranges,
        "float_fallback": float_set,
        "budget": budget.to_dict(),
        "search": {k: v for k, v in winner.to_dict().items() if k not in ("float_set", "model", "groups", "ranking")},
    }
    label = winner.summary
    if qat_entry:
        entry["qat"] = qat_entry
    if winner is not result:
        label = qat_label(winner, qat)
        entry["full_int8_ptq"] = _brief(result)
    elif not result.met and not cfg.qat:
        result.message += "; " + qat_hint(ctx.qat_options, cfg.qat_epochs)
    files = {}
    if cfg.diagnose or winner.chosen.step != winner.full_int8.step or not winner.met or qat is not None:
        files = write_report(scheme, ctx, cands, result, selection, report_dir, cfg.progress,
                             qat=(qcands, qresult, winner is qresult) if qat is not None else None)
        entry["report"] = {k: f"{REPORT_DIR}/{Path(v).name}" for k, v in files.items()}
    return Improved(winner, label, entry, files, baseline=result)


def _search(scheme: SchemeSpec, cands, ctx, cfg: ExportConfig, selection: EvalSet,
            contract: InputContract, budget, tag: str, rules) -> SearchResult:
    return search(cands, selection, contract, budget, max_evals=cfg.max_evals, threads=cfg.threads, out=None,
                  workdir=ctx.workdir / f"search-{scheme.name}-{tag}", seed=cfg.seed, progress=cfg.progress,
                  rank_always=cfg.diagnose, max_slowdown=cfg.max_slowdown, rules=rules, confidence=cfg.confidence)


def _cost(r: SearchResult) -> tuple:
    """What makes one search result better than another (lower first): meeting the budget; among the met, fewer
    MACs and ops kept float; among the unmet, the smaller shortfall from the budget (the closer), then fewer
    MACs float, as the search itself chooses. An unmet candidate is not better for being cheap: one that keeps
    nothing float but misses by 10 points would otherwise ship over one that misses by 3 with 9 ops float."""
    if r.met:
        return (0, r.chosen.float_macs_share, r.float_ops, 0.0)
    return (1, r.chosen.shortfall, r.chosen.float_macs_share, r.float_ops)


def _brief(r: SearchResult) -> dict:
    c = r.chosen
    return {"met": r.met, "summary": r.summary, "float_ops": r.float_ops, "ranges": c.ranges,
            "agreement_pct": c.agreement_pct, "agreement_pct_ci": c.agreement_pct_ci,
            "delta_top1_pts": c.delta_top1_pts, "slowdown": c.slowdown, "images": c.images,
            "full_int8_agreement_pct": r.full_int8.agreement_pct}


def qat_label(r: SearchResult, qat) -> str:
    """'int8 (QAT 2 epochs; percentile ranges), 3 ops float (0.1 % of MACs)': what a QAT artifact computes in."""
    how = [f"QAT {qat.epochs} epoch{'s' if qat.epochs != 1 else ''}"]
    if r.chosen.ranges != "minmax":
        how.append(f"{r.chosen.ranges} ranges")
    name = f"{r.scheme} ({'; '.join(how)})"
    if not r.float_ops:
        return name
    return f"{name}, {r.float_ops} ops float ({100.0 * float(r.float_set.get('macs_share', 0.0)):.1f} % of MACs)"


def qat_hint(options: dict, epochs: int) -> str:
    """What the message says when post-training int8 misses the budget: --qat, and about what it costs."""
    per = options.get("epoch_seconds")
    cost = (f", about {max(1, round(epochs * per * QAT_SLOWER / 60))} min for {epochs} epochs at this run's "
            f"fine-tune speed" if per else "")
    return (f"post-training int8 cannot meet it here: --qat fine-tunes the model under simulated int8 on its train "
            f"split ({options.get('train_images', 0)} images{cost}) and searches again from there")


#: a QAT epoch against one of the build's fine-tune epochs (the teacher's forward pass, the fake quantization;
#: measured on MobileNetV2 and EfficientNet-B0 at 96 px, 2 cores)
QAT_SLOWER = 1.6
