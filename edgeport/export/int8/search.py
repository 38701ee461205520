"""Model-level float-fallback search: the cheapest int8 model that meets an accuracy budget.

    cands = TFLiteCandidates(calibrated_bytes, "uint8", keras_layer_names(model))
    result = search(cands, selection, contract, Budget(max_drop=1, min_agreement=97))
    result.met, result.summary, result.model_path, result.float_set, result.trace

Every candidate is scored as a whole model in its real engine, through the
runtime's own code (:mod:`edgeport.export.verify`), on ``selection`` images
only: the caller reports figures on other images.

What the search does (measured on ResNet50V2 and MobileNetV2 flowers models;
see the int8 section of the README):

1. full int8; done if it meets the budget;
   **calibrate** (with ``rules``): full int8 on each other activation-range
   rule (:mod:`edgeport.export.int8.ranges`: percentile, mse, entropy clip the
   outliers that min/max keeps); the search goes on with the one closest to
   Keras (met first, then the least damage in what the budget judges, then
   the lowest mean KL divergence). It costs no
   latency: on the ResNet50V2 flowers model min/max full int8 agreed on
   79 % of the selection images, percentile on 96 %;
2. **ranking**: each unit (:func:`~edgeport.export.int8.graph.search_groups`:
   every op type, and the network's blocks) is quantized *alone*, all else
   float, and scored on a ranking subset of the selection images: the
   damage it does to the whole model's answers (agreement with Keras lost;
   mean KL divergence breaks ties). Keeping one unit float alone ranks
   nothing: int8 noise is spread over the network and no single block or
   type repairs it;
3. **greedy**: units are kept float in order of damage per MAC share they
   would keep float (plus a 2 % floor; units with over half of the MACs
   last), until the budget, made stricter by
   one standard error (``margin``), is met on the whole selection set (each
   step measured, latency too);
4. **prune**: units kept float earlier are quantized back one at a time,
   least important first, while the budget still holds;
5. the met candidate keeping the fewest MACs float wins (each step's p50 is
   in the trace; on a shared machine it is too noisy to choose by); none met
   -> the one closest to the budget, with ``met=False``.

The number of candidate evaluations is bounded by ``max_evals``; the
ranking takes at most about half of it (blocks are merged to fit).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeport.contract import InputContract
from edgeport.errors import ConfigError, ModelError
from edgeport.evalset import EvalSet
from edgeport.export.int8.budget import Budget, selection_margin, tightened
from edgeport.export.int8.candidates import Candidates
from edgeport.export.int8.graph import Group, search_groups
from edgeport.export.verify import evaluate
from edgeport.intervals import CONFIDENCE
from edgeport.progress import Progress
from edgeport.sampling import stratified_indices

log = logging.getLogger(__name__)


@dataclass
class Step:
    """One candidate evaluation of the search (a manifest ``search.trace`` row)."""

    step: int
    phase: str  # full, calibrate, rank, greedy, prune
    action: str
    float_groups: list[str]
    float_ops: int
    float_macs_share: float
    images: int
    agreement_pct: float
    delta_top1_pts: float
    decided_agreement_pct: float | None
    mean_kl: float
    p50_ms: float | None = None
    cpu_p50_ms: float | None = None
    slowdown: float | None = None  #: its p50 over full int8's (verify._slowdown: the larger of wall clock and CPU)
    met: bool = False
    agreement_pct_ci: list[float] | None = None  #: interval of agreement_pct on these images
    delta_top1_pts_ci: list[float] | None = None
    slowdown_ci: list[float] | None = None  #: bootstrap interval of the slowdown
    cpu_slowdown: float | None = None  #: the same ratio in process CPU time (which sums threads)
    shortfall: float = 0.0
    seconds: float = 0.0
    ranges: str = "minmax"  #: the activation-range rule it was quantized on

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    """The search's outcome.

    ``model_path``: the chosen model (full int8 when it met the budget or
    nothing better was found); ``met``: whether it meets ``target`` (the
    budget made stricter by ``margin`` points) on the selection images (when
    not, it is the closest reached); ``float_set``:
    :meth:`Candidates.describe` of its float ops (ops, op types, Keras layers,
    MAC share); ``ranking``: the model-level sensitivity of each group
    (quantized alone); ``trace``: every evaluation in order.
    """

    scheme: str
    budget: Budget
    target: Budget
    margin: float
    met: bool
    model_path: Path
    full_int8_path: Path
    float_set: dict
    chosen: Step
    full_int8: Step
    trace: list[Step]
    ranking: list[dict]
    groups: list[Group]
    evaluations: int
    max_evals: int
    seconds: float
    selection_images: int
    rank_images: int
    message: str = ""
    confidence: float = CONFIDENCE  #: level of the intervals in the trace

    @property
    def float_ops(self) -> int:
        return int(self.float_set.get("ops", 0))

    @property
    def summary(self) -> str:
        """'int8, 39 ops float (0.4 % of MACs)', 'int8 (percentile ranges)' or 'int8' (min/max ranges,
        nothing float)."""
        name = self.scheme if self.chosen.ranges == "minmax" else f"{self.scheme} ({self.chosen.ranges} ranges)"
        if not self.float_ops:
            return name
        return (f"{name}, {self.float_ops} ops float "
                f"({100.0 * float(self.float_set.get('macs_share', 0.0)):.1f} % of MACs)")

    def to_dict(self) -> dict:
        """JSON-ready (a manifest ``search`` entry)."""
        return {
            "scheme": self.scheme, "budget": self.budget.to_dict(), "target": self.target.to_dict(),
            "margin": self.margin, "met": self.met, "summary": self.summary,
            "message": self.message, "model": str(self.model_path), "float_set": self.float_set,
            "chosen": self.chosen.to_dict(), "full_int8": self.full_int8.to_dict(),
            "ranking": self.ranking, "trace": [s.to_dict() for s in self.trace],
            "groups": [g.to_dict() for g in self.groups], "evaluations": self.evaluations,
            "max_evals": self.max_evals, "seconds": round(self.seconds, 3),
            "selection_images": self.selection_images, "rank_images": self.rank_images,
            "confidence": self.confidence,
        }


#: a slowdown of fewer milliseconds than this is timing noise, not a cost
LATENCY_NOISE_MS = 0.05


class _Runner:
    """Writes, evaluates and records candidates (shared state of one search)."""

    def __init__(self, cands: Candidates, selection: EvalSet, rank_set: EvalSet, contract: InputContract,
                 budget: Budget, threads: int | None, latency_runs: int, workdir: Path, bar: Progress,
                 max_evals: int, max_slowdown: float | None = None, confidence: float = CONFIDENCE) -> None:
        self.cands, self.selection, self.rank_set, self.contract = cands, selection, rank_set, contract
        self.confidence = confidence
        self.budget, self.threads, self.latency_runs = budget, threads, latency_runs
        self.max_slowdown = max_slowdown
        self.full_cost: float | None = None  # full int8's p50 (wall): what slowdowns divide by
        self.workdir, self.bar, self.max_evals = workdir, bar, max_evals
        self.trace: list[Step] = []
        self.kept: dict[int, Path] = {}  # step -> file of a candidate scored on the whole selection
        self.float_ops: dict[int, set[int]] = {}  # step -> its float op indices

    def too_slow(self, s: Step) -> bool:
        """Over ``max_slowdown``, by more than :data:`LATENCY_NOISE_MS` (a tiny model's microseconds are noise)."""
        if self.max_slowdown is None or s.slowdown is None or not self.full_cost:
            return False
        return s.slowdown > self.max_slowdown and (s.slowdown - 1.0) * self.full_cost > LATENCY_NOISE_MS

    def _slowdown(self, fig: dict) -> float | None:
        cost = fig.get("p50_ms")
        if cost is None:
            return None
        if self.full_cost is None:
            self.full_cost = float(cost)  # the first scored candidate is full int8
        if fig.get("slowdown") is not None:  # over full int8's p50, timed with it (verify._slowdown)
            return float(fig["slowdown"])
        return round(float(cost) / self.full_cost, 4) if self.full_cost > 0 else None

    @property
    def left(self) -> int:
        return self.max_evals - len(self.trace)

    def run(self, phase: str, action: str, float_ops: set[int], groups: list[str], rank: bool = False) -> Step:
        if self.left <= 0:
            raise ModelError("internal: the search ran past its evaluation bound")  # guarded by callers
        t0 = time.perf_counter()
        step = len(self.trace)
        path = self.workdir / f"candidate_{step:03d}{self.cands.suffix}"
        self.cands.write(float_ops, path)
        data = self.rank_set if rank else self.selection
        reference = self.kept.get(0) if step > 0 else None  # full int8, the first candidate
        fig = evaluate(path, data, self.contract, self.threads, 0 if rank else self.latency_runs,
                       reference=reference, confidence=self.confidence)
        desc = self.cands.describe(float_ops)
        s = Step(step=step, phase=phase, action=action, float_groups=list(groups), float_ops=desc["ops"],
                 float_macs_share=desc["macs_share"], images=len(data), agreement_pct=fig["agreement_pct"],
                 delta_top1_pts=fig["delta_top1_pts"], decided_agreement_pct=fig["decided_agreement_pct"],
                 mean_kl=fig["mean_kl"],
                 p50_ms=fig.get("p50_ms"), cpu_p50_ms=fig.get("cpu_p50_ms"),
                 slowdown=None if rank else self._slowdown(fig),
                 met=(not rank) and self.budget.met(fig), shortfall=self.budget.shortfall(fig),
                 seconds=round(time.perf_counter() - t0, 3), ranges=self.cands.rule,
                 agreement_pct_ci=fig.get("agreement_pct_ci"), delta_top1_pts_ci=fig.get("delta_top1_pts_ci"),
                 slowdown_ci=None if rank or step == 0 else fig.get("slowdown_ci"),
                 cpu_slowdown=None if rank else fig.get("cpu_slowdown"))
        if s.met and self.too_slow(s):
            s.met = False  # accurate enough, but slower than a fallback may be
        self.trace.append(s)
        if rank:
            path.unlink(missing_ok=True)
        else:
            self.kept[step] = path
        self.float_ops[step] = set(float_ops)
        log.debug("%s search %s: %s -> agreement %.2f %%, Δtop-1 %+.2f, p50 %s ms%s", self.cands.scheme, phase, action,
                  s.agreement_pct, s.delta_top1_pts, s.p50_ms, " (budget met)" if s.met else "")
        self.bar.update(note=f"{phase}: {action[:40]} agree {s.agreement_pct:.1f} %")
        return s


def _choose(steps: Sequence[Step], max_slowdown: float | None = None) -> Step:
    """The met step keeping the fewest MACs float (then fewest ops, then lowest p50); none met -> the
    smallest accuracy shortfall among those within ``max_slowdown`` (else among all). MACs, not the
    measured p50, order the met ones: on a loaded machine a 20-run wall-clock p50 varies by 2x between
    identical models timed apart; the slowdown limit holds ``Step.slowdown`` (the larger of the wall-clock and
    CPU-time ratios to full int8, timed alternating), which holds."""
    met = [s for s in steps if s.met]
    if met:
        return min(met, key=lambda s: (s.float_macs_share, s.float_ops,
                                       s.p50_ms if s.p50_ms is not None else float("inf"), s.step))
    fast = [s for s in steps if max_slowdown is None or s.slowdown is None or s.slowdown <= max_slowdown]
    return min(fast or list(steps), key=lambda s: (s.shortfall, s.float_macs_share, s.step))


def search(
    cands: Candidates,
    selection: EvalSet,
    contract: InputContract,
    budget: Budget = Budget(),
    *,
    groups: Sequence[Group] | None = None,
    max_evals: int = 32,
    rank_images: int = 128,
    threads: int | None = None,
    latency_runs: int = 20,
    margin: float | None = None,
    out: str | Path | None = None,
    workdir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    rank_always: bool = False,
    max_slowdown: float | None = None,
    rules: Sequence[str] = (),
    confidence: float = CONFIDENCE,
) -> SearchResult:
    """Find the cheapest float fallback of ``cands`` that meets ``budget`` on ``selection``.

    ``groups``: the search units (default :func:`search_groups`, blocks merged so
    the ranking takes about half of ``max_evals``); ``rank_images``: selection
    images the ranking scores on (a stratified subset); ``margin``: points by
    which candidates must beat the agreement limits on the selection images (None:
    one standard error, :func:`selection_margin`, on all images for ``min_agreement``
    and on the decided ones for ``min_decided_agreement``; 0: the budget as it is;
    the Δtop-1 limit is never raised, see :func:`tightened`); ``rank_always``: rank
    the groups even when full int8 meets the budget (``--diagnose``); ``max_slowdown``: a
    candidate whose p50 exceeds full int8's by more than this factor does not count as meeting
    the budget (timed with full int8: :func:`edgeport.export.verify.evaluate`); ``rules``: activation-range rules of
    ``cands`` to try on full int8 when its current one misses the budget (the calibrate phase);
    ``out``: where the
    chosen model is copied; ``workdir``: where candidates are written (by
    default a new temporary folder, which the caller removes); the full int8
    model stays there as ``full_int8.<suffix>``, and the chosen one too when
    ``out`` is None. Raises ConfigError for a bound too small to evaluate
    anything.
    """
    if max_evals < 1:
        raise ConfigError(f"expected --max-evals >= 1 candidate evaluations, received {max_evals}")
    if len(selection) == 0:
        raise ConfigError("expected selection images for the float-fallback search, received none")
    t_start = time.perf_counter()
    if margin is None:
        margin = selection_margin(budget.min_agreement, len(selection))
        decided_margin = selection_margin(budget.min_decided_agreement, selection.decided())
    else:
        margin = decided_margin = float(margin)
    target = tightened(budget, margin, decided_margin)
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="edgeport-search-"))
    workdir.mkdir(parents=True, exist_ok=True)
    all_ops = {op.index for op in cands.ops}
    rank_budget = max(0, (max_evals - 1) // 2)
    if groups is None:
        groups = search_groups(cands.ops, max_groups=max(1, rank_budget))
    groups = list(groups)
    rank_set = selection.take(stratified_indices(selection.labels, rank_images, seed))
    with Progress(max_evals, f"{cands.scheme} float-fallback search", enabled=progress) as bar:
        r = _Runner(cands, selection, rank_set, contract, target, threads, latency_runs, workdir, bar, max_evals,
                    max_slowdown, confidence)
        full = r.run("full", "full int8" if cands.rule == "minmax" else f"full int8, {cands.rule} ranges", set(), [])
        full_path = workdir / f"full_int8{cands.suffix}"
        shutil.copyfile(r.kept[full.step], full_path)
        best = _calibrate(r, full, [x for x in rules if x != cands.rule])
        ranking: list[dict] = []
        if rank_always and best.met and r.left > 1 and groups:  # a diagnosis: the ranking, nothing kept float
            ranking = _rank(r, groups, all_ops)
        elif not best.met and r.left > 1 and groups:
            ranking = _rank(r, groups, all_ops)
            order = _order(groups, ranking, budget)
            added = _greedy(r, order)
            if added is not None and r.left > 0:
                _prune(r, added, order)
        chosen = _choose([s for s in r.trace if s.phase != "rank"], max_slowdown)
    model_path = r.kept[chosen.step]
    if out is not None:
        shutil.copyfile(model_path, out)
        model_path = Path(out)
    float_set = cands.describe(r.float_ops[chosen.step])
    float_set["groups"] = list(chosen.float_groups)
    float_set["ranges"] = chosen.ranges
    message = _message(chosen, full, _target_text(budget, target, len(selection)), len(r.trace), max_evals,
                       max_slowdown, r.trace, selection)
    result = SearchResult(
        scheme=cands.scheme, budget=budget, target=target, margin=margin, met=chosen.met, model_path=model_path, full_int8_path=full_path,
        float_set=float_set, chosen=chosen, full_int8=full, trace=list(r.trace), ranking=ranking, groups=groups,
        evaluations=len(r.trace), max_evals=max_evals, seconds=time.perf_counter() - t_start,
        selection_images=len(selection), rank_images=len(rank_set), message=message, confidence=confidence,
    )
    for step, path in r.kept.items():  # candidates other than the chosen one are not needed any more
        if path != model_path and (out is not None or step != chosen.step):
            path.unlink(missing_ok=True)
    return result


#: MAC share added to every group's cost when ordering (so near-free groups do not win on tiny damage)
COST_FLOOR = 0.02
#: groups holding more than this share of the MACs (all convolutions, say) are kept float only after
#: every smaller group: keeping them float is keeping the model float
HEAVY = 0.5


def _calibrate(r: _Runner, full: Step, rules: Sequence[str]) -> Step:
    """Full int8 on each of ``rules`` while none meets the budget (bounded by half the evaluations);
    the candidates then use the best rule: one that met, else the least damage in the figures the budget
    judges (:func:`_damage`), then the lowest mean KL. The best step. (By KL first, the QAT EfficientNet-B0
    went on with narrowest ranges at 85.9 % agreement where entropy ranges gave 90.8 %.)"""
    tried = [full]
    for rule in rules:
        if tried[-1].met or r.left <= r.max_evals // 2:
            break
        r.cands.use(rule)
        tried.append(r.run("calibrate", f"full int8, {rule} ranges", set(), []))
    best = min(tried, key=lambda s: (not s.met, _damage(asdict(s), r.budget), s.mean_kl, s.step))
    r.cands.use(best.ranges)
    if len(tried) > 1:
        log.info("%s: activation ranges by %s (full int8 agreement %.2f %% on the selection images; %s)",
                 r.cands.scheme, best.ranges, best.agreement_pct,
                 ", ".join(f"{s.ranges} {s.agreement_pct:.2f} %" for s in tried if s is not best))
    return best


def _damage(row: dict, budget: Budget | None) -> float:
    """:meth:`Budget.damage`; all of agreement's points lost when there is no budget."""
    return 100.0 - float(row["agreement_pct"]) if budget is None else budget.damage(row)


def _order(groups: list[Group], ranking: list[dict], budget: Budget | None = None) -> list[Group]:
    """Groups to keep float, first first, by their damage when quantized alone per MAC share they would
    keep float (plus :data:`COST_FLOOR`). Damage: what the unit cost in the figures the budget judges
    (:func:`_damage`); mean KL divergence above the smallest of the ranking decides between units of equal
    damage (none lost, mostly). KL alone misleads: rounding the logits (EfficientNet-B0's classifier, flowers)
    moved the probabilities less than the squeeze-excitation MULs did (KL 0.002 vs 0.012) but flipped twice as
    many answers (agreement 86.7 vs 93.0 %), near-ties; a budget on decided images is not moved by those."""
    evaluated = [r for r in ranking if r.get("evaluated")]
    floor = min((float(r["mean_kl"]) for r in evaluated), default=0.0)

    def key(pair: tuple[Group, dict]) -> tuple:
        g, row = pair
        if not row.get("evaluated"):
            return (2, 0.0, 0.0)
        share = float(row.get("macs_share", 0.0))
        cost = share + COST_FLOOR
        return (int(share > HEAVY), -_damage(row, budget) / cost, -(float(row["mean_kl"]) - floor) / cost)

    return [g for g, _ in sorted(zip(groups, ranking), key=key)]


def _rank(r: _Runner, groups: list[Group], all_ops: set[int]) -> list[dict]:
    rows = []
    for g in groups:
        if r.left <= 1:  # keep one evaluation for the greedy phase
            rows.append({"group": g.name, "ops": len(g.ops), "agreement_pct": 100.0, "delta_top1_pts": 0.0,
                         "mean_kl": 0.0, "evaluated": False})
            continue
        s = r.run("rank", f"quantize only {g.name}", all_ops - set(g.ops), [x.name for x in groups if x is not g],
                  rank=True)
        rows.append({"group": g.name, "ops": len(g.ops), "macs_share": round(g.macs / max(r.cands.total_macs, 1), 6),
                     "agreement_pct": s.agreement_pct, "delta_top1_pts": s.delta_top1_pts, "mean_kl": s.mean_kl,
                     "decided_agreement_pct": s.decided_agreement_pct, "evaluated": True})
    return rows


def _greedy(r: _Runner, order: list[Group]) -> list[Group] | None:
    """Keep groups float in ``order`` until the budget is met; the groups added (None: never met)."""
    floated: list[Group] = []
    ops: set[int] = set()
    for g in order:
        if r.left <= 0:
            return None
        floated.append(g)
        ops |= set(g.ops)
        s = r.run("greedy", f"keep {g.name} float", set(ops), [x.name for x in floated])
        if s.met:
            return floated
    return None


def _prune(r: _Runner, added: list[Group], order: list[Group]) -> None:
    """Quantize back groups of ``added`` (least damaging first, the last added excepted) while the budget holds."""
    keep = list(added)
    for g in sorted(added[:-1], key=order.index, reverse=True):
        if r.left <= 0:
            return
        trial = [x for x in keep if x is not g]
        ops = set().union(*(set(x.ops) for x in trial)) if trial else set()
        s = r.run("prune", f"quantize {g.name} again", ops, [x.name for x in trial])
        if s.met:
            keep = trial


#: Keras top-2 margin below which an image is a near-tie: any rounding flips about half of them
NEAR_TIE = 0.02


def _target_text(budget: Budget, target: Budget, images: int) -> str:
    """The budget as the user set it and, when one standard error on the selection images raised it, the
    limits the candidates were held to."""
    if target == budget:
        return budget.describe()
    return f"{budget.describe()}; held to {target.describe()} with one standard error on {images} images"


def _message(chosen: Step, full: Step, budget: str, evals: int, max_evals: int, max_slowdown: float | None,
             trace: Sequence[Step], selection: EvalSet) -> str:
    slow = f" and a p50 within {max_slowdown:g}x full int8's" if max_slowdown is not None else ""
    if chosen.step == full.step and chosen.met:
        return f"full int8 meets the budget ({budget}) on the selection images"
    on = "" if chosen.ranges == "minmax" else f" on {chosen.ranges} activation ranges"
    if chosen.met and not chosen.float_ops:
        return (f"full int8{on} meets the budget ({budget}): agreement {chosen.agreement_pct:.2f} %, Δtop-1 "
                f"{chosen.delta_top1_pts:+.2f} on {chosen.images} selection images (on {full.ranges} ranges: "
                f"{full.agreement_pct:.2f} %, {full.delta_top1_pts:+.2f}), after {evals} evaluations")
    if chosen.met:
        return (f"{chosen.float_ops} ops kept float ({100 * chosen.float_macs_share:.1f} % of MACs){on} meet the budget "
                f"({budget}{slow}): agreement {chosen.agreement_pct:.2f} %, Δtop-1 "
                f"{chosen.delta_top1_pts:+.2f} on {chosen.images} selection images, p50 "
                f"{chosen.slowdown or 1:.2f}x full int8's, after {evals} evaluations")
    scored = [s for s in trace if s.phase != "rank"]
    accurate = [s for s in scored if s.shortfall == 0]
    if accurate and max_slowdown is not None:
        quickest = min(accurate, key=lambda s: s.slowdown or float("inf"))
        why = (f"the candidates accurate enough are slower than {max_slowdown:g}x full int8 (the quickest: "
               f"{quickest.float_ops} ops float, {quickest.slowdown:.2f}x; raise --max-slowdown to accept it)")
    elif evals >= max_evals:
        why = "the evaluation bound was reached (raise --max-evals)"
    else:
        why = ("even keeping every group float did not meet it (the int8 input/output or the remaining "
               "quantized ops lose too much)")
    from edgeport.metrics import margins

    m = margins(selection.reference) if len(selection) else np.zeros(0)
    ties = 100.0 * float((m < NEAR_TIE).mean()) if m.size else 0.0
    floor = (f"; {ties:.1f} % of the selection images are near-ties for the Keras model (top-2 margin < "
             f"{NEAR_TIE:g}), which any rounding may flip either way, so agreement and Δtop-1 on them are partly "
             f"chance; where Keras is decided the best candidate agrees on "
             f"{chosen.decided_agreement_pct:.1f} %" if ties >= 1.0 and chosen.decided_agreement_pct is not None
             else "")
    full_int8 = "full int8" if full.ranges == chosen.ranges else f"full int8 on {full.ranges} ranges"
    return (f"no candidate met the budget ({budget}{slow}) within {evals} of {max_evals} evaluations: "
            f"{why}; best reached: agreement {chosen.agreement_pct:.2f} %, Δtop-1 {chosen.delta_top1_pts:+.2f} with "
            f"{chosen.float_ops} ops float{on} ({full_int8}: {full.agreement_pct:.2f} %, {full.delta_top1_pts:+.2f})"
            f"{floor}")
