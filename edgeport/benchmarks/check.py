"""``edgeport check EXPORT``: does this device give what export verified? No dataset needed.

Every deployable artifact runs, in this device's engine and through the
runtime's own preprocessing, on the export's golden set (``EXPORT/golden``: a
few validation images with the Keras model's probabilities, see
:mod:`edgeport.golden`). Its agreement with Keras and its largest probability
difference are compared with what the same artifact gave on the same images
at export time. That catches what breaks after deployment: another
preprocessing (a resize method, colour order), another engine build, a file
from another export.

The agreement is decided like every budget (:mod:`edgeport.intervals`): the
device's answers are paired with the export's on each image, and the check
fails when the interval of (agreement here - agreement at export) lies wholly
below ``-tolerance_pts``: on 32 images a one-image difference is no evidence
(its interval spans about -18 to +11 points), five images lost are. A
different label order or input contract fails outright, and so does a largest
probability difference above export's by more than ``prob_tolerance``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeport.benchmarks.config import CheckConfig
from edgeport.contract import printable
from edgeport.errors import DataError, EdgeportError
from edgeport.golden import GOLDEN_DIR, GoldenSet, read_golden
from edgeport.intervals import (
    MISSED,
    UNDECIDED,
    Decision,
    decide_difference,
    independent_difference_interval,
    outcome_of,
    paired_counts,
)
from edgeport.metrics import compare
from edgeport.progress import Progress
from edgeport.tables import text_table

PASS, FAIL, NOT_AVAILABLE = "pass", "FAIL", "n/a"


def _aligned(probs: np.ndarray, labels: tuple[str, ...], golden: GoldenSet) -> np.ndarray:
    """The artifact's probabilities in the golden set's class order (matched by label name)."""
    index = {name: i for i, name in enumerate(labels)}
    return probs[:, [index[name] for name in golden.labels]]


def check_artifact(path: Path, engine: str, golden: GoldenSet, cfg: CheckConfig) -> dict:
    """One artifact x engine on the golden images: figures, the export's figures, pass/FAIL and why."""
    from edgeport.runtime.classifier import Classifier

    with Classifier.open(path, engine=engine, threads=cfg.threads) as clf:
        scheme = clf.info.scheme
        problems = []
        if set(clf.labels) != set(golden.labels):
            raise DataError(f"expected the labels of {path.name} ({', '.join(clf.labels)}) to be the golden set's "
                            f"({', '.join(golden.labels)}); check it against its own export's golden set")
        if clf.labels != golden.labels:
            problems.append(f"labels in another order than the golden set's ({', '.join(clf.labels)} vs "
                            f"{', '.join(golden.labels)}): a swapped labels.txt?")
        for key in ("height", "width", "resize", "color", "range", "layout"):
            mine, theirs = getattr(clf.contract, key), getattr(golden.contract, key)
            if mine != theirs:
                problems.append(f"input {key} {mine} here, but the golden set was made with {theirs}")
        probs = np.stack([clf.predict(clf.prepare(img)) for img in golden.images()])
        version = clf.engine.version()
    aligned = _aligned(probs, clf.labels, golden)
    got = compare(aligned, golden.reference, golden.targets, golden.labels, confidence=cfg.confidence)
    recorded = golden.figures.get(scheme) or {}
    row = {"artifact": path.name, "scheme": scheme, "engine": engine, "engine_version": version,
           "images": got["images"], "agreement_pct": got["agreement_pct"], "agreement_pct_ci": got["agreement_pct_ci"],
           "max_abs_prob_diff": got["max_abs_prob_diff"],
           "export_agreement_pct": recorded.get("agreement_pct"),
           "export_max_abs_prob_diff": recorded.get("max_abs_prob_diff"),
           "export_engine": f"{recorded.get('engine')} {recorded.get('engine_version')}" if recorded else None}
    notes = []
    if not recorded:
        problems.append("the golden set has no export figures for this scheme (re-export to record them)")
    else:
        decision = agreement_decision(aligned.argmax(1), golden, recorded, cfg)
        row["agreement"] = decision.to_dict()
        what = (f"agreement with Keras {got['agreement_pct']:.1f} % here vs {recorded['agreement_pct']:.1f} % at "
                f"export: the difference {decision.describe()} (tolerance {cfg.tolerance_pts:g} points)")
        if decision.outcome == MISSED or (decision.outcome == UNDECIDED and cfg.undecided == "fail"):
            problems.append(what)
        elif decision.outcome == UNDECIDED and decision.value < 0:
            notes.append(what)
        limit = recorded["max_abs_prob_diff"] + cfg.prob_tolerance
        if not got["max_abs_prob_diff"] <= limit:  # NaN here fails too
            problems.append(f"max |Δp| {got['max_abs_prob_diff']:.3f} here vs {recorded['max_abs_prob_diff']:.3f} "
                            f"at export (tolerance +{cfg.prob_tolerance:g})")
    row["status"] = FAIL if problems else PASS
    row["reason"] = "; ".join(problems + notes)
    return row


def agreement_decision(here_top1: np.ndarray, golden: GoldenSet, recorded: dict, cfg: CheckConfig) -> Decision:
    """(agreement with Keras here - at export) decided against ``-tolerance_pts``: paired image by image when
    the export recorded its answers (``top1``), else as two unrelated shares (an export made before it did)."""
    keras = np.asarray(golden.reference).argmax(1)
    here = np.asarray(here_top1) == keras
    there = recorded.get("top1")
    limit = -cfg.tolerance_pts
    if isinstance(there, list) and len(there) == len(here):
        return decide_difference("agreement_drop", paired_counts(here, np.asarray(there) == keras), limit,
                                 cfg.confidence)
    n = len(here)
    k_there = round(float(recorded["agreement_pct"]) * n / 100.0)
    interval = independent_difference_interval(int(here.sum()), n, k_there, n, cfg.confidence)
    value = 100.0 * (int(here.sum()) - k_there) / n
    return Decision("agreement_drop", outcome_of(interval, limit), round(value, 4), interval, limit, n,
                    unit="points")


def run_check(cfg: CheckConfig) -> dict:
    """Check every ok artifact of the export (x engine) against the golden set; the report."""
    from edgeport.benchmarks.artifacts import find_artifacts
    from edgeport.benchmarks.runner import check_engines_option, plan_engines

    check_engines_option(cfg.engines)
    golden_dir = Path(cfg.golden) if cfg.golden else Path(cfg.export_dir) / GOLDEN_DIR
    golden = read_golden(golden_dir)
    if golden is None:
        raise DataError(f"expected a golden set (golden.json and its images) in {golden_dir}, found none; "
                        "exports made by this edgeport version carry one (re-run `edgeport export`), "
                        "or pass --golden DIR")
    bad = int(np.size(golden.reference) - np.isfinite(golden.reference).sum())
    if bad:  # a NaN compares false with every tolerance: it would pass everything
        raise DataError(f"expected finite reference probabilities in {golden_dir}, received {bad} NaN or infinite "
                        "value(s); the golden set is damaged: re-run `edgeport export`")
    artifacts, _ = find_artifacts(cfg.export_dir, cfg.schemes)
    rows = []
    plans = [(art, plan_engines(art, cfg.engines)) for art in artifacts if art.ok]  # failed ones: export said why
    with Progress(sum(ok for _, plan in plans for _, ok, _ in plan), "checking artifacts", cfg.progress) as bar:
        for art, plan in plans:
            base = {"artifact": art.file, "scheme": art.scheme}
            for engine, available, reason in plan:
                if not available:
                    rows.append({**base, "engine": engine, "status": NOT_AVAILABLE, "reason": reason})
                    continue
                try:
                    rows.append(check_artifact(art.path, engine, golden, cfg))
                except EdgeportError as exc:
                    rows.append({**base, "engine": engine, "status": FAIL, "reason": str(exc)})
                bar.update(note=f"{art.file} {engine}")
    return {"golden": str(golden_dir), "images": len(golden.files), "labels": list(golden.labels),
            "tolerance_pts": cfg.tolerance_pts, "prob_tolerance": cfg.prob_tolerance, "confidence": cfg.confidence,
            "undecided": cfg.undecided, "rows": rows,
            "ok": bool(rows) and all(r["status"] != FAIL for r in rows) and any(r["status"] == PASS for r in rows)}


def format_check(report: dict) -> str:
    """A terminal table of the check, then the reasons of the failures."""
    def num(v: object, spec: str) -> str:
        return "-" if v is None else format(float(v), spec)  # type: ignore[arg-type]

    head = ["artifact", "engine", "status", "agree % here", "at export", "max|Δp| here", "at export"]
    body = [[printable(r["artifact"]), r["engine"], r["status"], num(r.get("agreement_pct"), ".1f"),
             num(r.get("export_agreement_pct"), ".1f"), num(r.get("max_abs_prob_diff"), ".3f"),
             num(r.get("export_max_abs_prob_diff"), ".3f")] for r in report["rows"]]
    lines = text_table(head, body).split("\n")
    lines.append(f"golden set: {report['images']} images in {report['golden']}; agreement may be lower than at export "
                 f"by {report['tolerance_pts']:g} points before it fails, decided on "
                 f"{100 * report.get('confidence', 0.95):g} % intervals (a few images' difference is not evidence); "
                 f"+{report['prob_tolerance']:g} in max |Δp|")
    lines += [f"{r['artifact']} on {r['engine']}: {printable(r['reason'], 400)}" for r in report["rows"] if r.get("reason")]
    passed = sum(r["status"] == PASS for r in report["rows"])
    lines.append(f"{'OK' if report['ok'] else 'FAILED'}: {passed} of {len(report['rows'])} checks passed")
    return "\n".join(lines)
