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
import time
from dataclasses import dataclass
from pathlib import Path

from edgeport.contract import InputContract
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

    result: SearchResult
    label: str  #: the honest precision label ("int8, 39 ops float (0.4 % of MACs)")
    entry: dict  #: the manifest's ``quantization`` entry
    report_files: dict


def improve(scheme: SchemeSpec, ctx, cfg: ExportConfig, selection: EvalSet,
            contract: InputContract, path: Path, report_dir: Path) -> Improved:
    """Search for the cheapest model of ``scheme`` meeting the budget on ``selection``; write it to ``path``
    (the full-integer one when that already meets it) and the report into ``report_dir``. With
    ``cfg.search`` off (``--no-search --diagnose``) ``path`` keeps the full-integer model and the report
    says what a search would keep float."""
    cands = ctx.candidates(scheme)
    budget = budget_of(cfg)
    t0 = time.perf_counter()
    result = search(cands, selection, contract, budget, max_evals=cfg.max_evals, threads=cfg.threads,
                    out=path if cfg.search else None, workdir=ctx.workdir / f"search-{scheme.name}", seed=cfg.seed,
                    progress=cfg.progress, rank_always=cfg.diagnose, max_slowdown=cfg.max_slowdown,
                    rules=ctx.range_rules(scheme.name), confidence=cfg.confidence)
    log.info("%s: %s (%.0f s)", scheme.name, result.message, time.perf_counter() - t0)
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
