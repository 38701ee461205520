"""Where a model's int8 error comes from, by the QAT simulation of int8 TFLite.

    python benchmarks/bench_int8_noise.py RUN_DIR                      # groups by layer kind, mse ranges
    python benchmarks/bench_int8_noise.py RUN_DIR --group block --rule percentile --images 300 --plot noise.png
    python benchmarks/bench_int8_noise.py RUN_DIR --rule percentile --qat-epochs 2   # and after QAT

The simulation (``edgeport.export.int8.qat.simulated``) rounds what LiteRT's
int8 rounds, as the converter sets it (BN folded, fused activations, the
logits' floor; within 5 % of the converter's ranges on 175 of 178
EfficientNet-B0 tensors). Its ranges are calibrated like the export's (200
train-split images, stratified, seed 0, ``--rule``). Rows, on the run's
validation images:

  all int8           weights and every activation rounded
  weights only       per-channel int8 weights, float activations
  activations only   float weights, every activation rounded
  GROUP (n)          only the n activations of one group rounded

With ``--qat-epochs N`` the model is then fine-tuned as ``edgeport export
--qat`` does (``edgeport.export.int8.qat.fine_tune``: the run's train split
and augmentation, distilling the original, ranges set again by ``--rule``
after each epoch) and four rows more compare it with the *original* Keras
model: ``QAT: float`` (the fine-tuned weights unrounded: how far the float
model moved), ``QAT: all int8``, ``QAT: weights only``, ``QAT: activations
only``, on ranges calibrated again on the fine-tuned model, as the export's
converter calibrates it.

With ``--litert`` the real thing is measured beside its simulation: the
model (and, with ``--qat-epochs``, the fine-tuned one) converted by the
export's own path (SavedModel, the converter's calibration on the same
images, ``--rule`` ranges, nothing float, uint8 I/O) and run by LiteRT on
the same validation images: rows ``LiteRT int8 file`` and ``QAT: LiteRT int8
file``, and the correlation of the file's errors in p with the simulation's.
The simulation rounds at the same tensors on nearly the same ranges, but
each rounding moves every later one, so per image the two make different
errors; the statistics (squared error, agreement) are what it stands in for.

Each row: agreement with Keras (top-1 the same) on all images and where Keras
is decided (top-2 margin > 0.02), mean |Δp| and mean squared Δp over the
probabilities. Groups are layer names without their block prefix
(``block3b_se_excite`` -> ``se_excite``: what every block's same tensor
costs) or, with ``--group block``, the block (what one block costs); the
sigmoid outputs on LOGISTIC's fixed range are the group ``fixed range``.
Squared errors of groups add up (roughly) to the all-activations row;
agreement does not (it is decided by the near-ties). No goal: a diagnostic
that says which tensors a fix must reach (float fallback, ranges, QAT).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: a block prefix: EfficientNet ``block3b_``, MobileNetV2 ``block_13_``, ResNet ``conv4_block2_``, ``stage2_``
BLOCK = re.compile(r"^((?:conv\d+_)?(?:block|stage)_?\d+[a-z]?)_")
FIXED = "fixed range"
DECIDED_MARGIN = 0.02


class _Names:
    """Records every tensor name the simulation would round, and rounds none (``simulated(tensors=...)``)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __contains__(self, name: object) -> bool:
        self.seen.add(str(name))
        return False


def group_of(name: str, by: str) -> str:
    m = BLOCK.match(name)
    if by == "block":
        return m.group(1) if m else name.split("_")[0].split("/")[0]
    return name[m.end():] if m else name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--rule", default="mse", help="activation range rule (minmax, percentile, entropy, mse, narrowest)")
    ap.add_argument("--group", choices=("kind", "block"), default="kind")
    ap.add_argument("--images", type=int, default=0, help="validation images (0: all)")
    ap.add_argument("--plot", type=Path, help="also a PNG bar chart of each group's mean squared Δp")
    ap.add_argument("--qat-epochs", type=int, default=0, help="also rows after a QAT fine-tune of N epochs (0: none)")
    ap.add_argument("--qat-lr", type=float, default=None, help="the QAT fine-tune's learning rate (default: export's)")
    ap.add_argument("--litert", action="store_true",
                    help="also convert the model (and the QAT one) to a real int8 TFLite and run it with LiteRT")
    args = ap.parse_args(argv)

    import keras
    import numpy as np

    from edgeport.export.datasets import load_images, stratified_pick
    from edgeport.export.exporter import load_keras_model
    from edgeport.export.int8 import qat as Q
    from edgeport.export.int8.ranges import RANGE_RULES
    from edgeport.rundir import read_run
    from edgeport.tables import text_table

    if args.rule not in RANGE_RULES:
        ap.error(f"--rule: expected one of {', '.join(RANGE_RULES)}, received {args.rule!r}")
    if args.qat_epochs < 0:
        ap.error(f"--qat-epochs: expected 0 (no QAT rows) or more, received {args.qat_epochs}")
    qat = None
    if args.qat_epochs:
        from edgeport.errors import EdgeportError

        lr = {} if args.qat_lr is None else {"lr": args.qat_lr}
        try:
            qat = Q.QATSettings(epochs=args.qat_epochs, rule=args.rule, **lr)
        except EdgeportError as e:
            ap.error(str(e))
    run = read_run(args.run_dir)
    contract = run.contract
    cal, _, _ = load_images(stratified_pick(run.samples("train"), 200, 0), contract, "calibration", True)
    val_samples = run.samples("val")
    if args.images:
        val_samples = stratified_pick(val_samples, args.images, 0)
    val, _, _ = load_images(val_samples, contract, "validation", True)
    model = load_keras_model(run.model_path)
    p = Q.plan(model)
    ranges = Q.ActivationRanges(keras)
    measured = Q.measure_ranges(Q.probe(model, p), cal, args.rule, p)

    def predict(m) -> np.ndarray:
        return np.concatenate([np.asarray(m(val[i:i + 64].astype(np.float32), training=False))
                               for i in range(0, len(val), 64)])

    ref = predict(model)
    top2 = np.sort(ref, axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > DECIDED_MARGIN
    names = _Names()
    Q.simulated(model, p, ranges, tensors=names)
    groups: dict[str, set[str]] = {}
    for name in sorted(names.seen):
        groups.setdefault(group_of(name, args.group) if name in measured else FIXED, set()).add(name)

    rows, plotted = [], []
    t0 = time.perf_counter()
    cases = [("all int8", None, True), ("weights only", set(), True), ("activations only", None, False)]
    cases += [(f"{g} ({len(n)})", n, False) for g, n in sorted(groups.items())]

    def score(label: str, pred: np.ndarray) -> float:
        agree = pred.argmax(1) == ref.argmax(1)
        msq = float(np.mean((pred - ref) ** 2))
        rows.append([label, f"{100 * agree.mean():.2f}",
                     f"{100 * agree[decided].mean():.2f}" if decided.any() else "-",
                     f"{np.abs(pred - ref).mean():.4f}", f"{1e4 * msq:.2f}"])
        return msq

    def row(label: str, m, plan, got: dict, tensors, weights: bool) -> tuple[float, np.ndarray]:
        sim = Q.simulated(m, plan, ranges, tensors=tensors, round_weights=weights)
        ranges.assign(got)
        pred = predict(sim)
        return score(label, pred), pred

    def litert(label: str, m, simulation: np.ndarray) -> None:
        """``m`` through the export's converter and LiteRT: a row, and its errors' correlation with the simulation's."""
        import tempfile

        from edgeport.export.int8.candidates import TFLiteCandidates
        from edgeport.export.tflite import calibrate, export_saved_model
        from edgeport.export.verify import open_engine
        from edgeport.export.verify import predict as run

        with tempfile.TemporaryDirectory(prefix="bench-int8-noise-") as tmp:
            candidates = TFLiteCandidates(calibrate(export_saved_model(m, Path(tmp) / "saved_model"), cal, False),
                                          images=cal)
            candidates.use(args.rule)
            path = candidates.write((), Path(tmp) / "int8.tflite")
            pred = run(open_engine(path), val, contract, progress=False)
        score(label, pred)
        corr = float(np.corrcoef((pred - ref).ravel(), (simulation - ref).ravel())[0, 1])
        notes.append(f"{label}: its errors in p correlate with the simulation's at {corr:.2f}; top-1 the same as the "
                     f"simulation's on {100 * np.mean(pred.argmax(1) == simulation.argmax(1)):.2f} % of the images")

    notes: list[str] = []
    for i, (label, tensors, weights) in enumerate(cases):
        msq, pred = row(label, model, p, measured, tensors, weights)
        if i == 0 and args.litert:
            litert("LiteRT int8 file", model, pred)
        if i >= 3:
            plotted.append((label, msq))
        print(f"{i + 1}/{len(cases)} {label} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    if qat is not None:
        student = load_keras_model(run.model_path)
        done = Q.fine_tune(model, student, run.samples("train"), run.labels, contract, cal, qat, progress=True)
        ps = Q.plan(student)
        again = Q.measure_ranges(Q.probe(student, ps), cal, args.rule, ps)
        for label, tensors, weights in [("float", set(), False), ("all int8", None, True),
                                        ("weights only", set(), True), ("activations only", None, False)]:
            _, pred = row(f"QAT: {label}", student, ps, again, tensors, weights)
            if label == "all int8" and args.litert:
                litert("QAT: LiteRT int8 file", student, pred)
        print(f"QAT {qat.epochs} epochs (lr {qat.lr:g}) in {done.seconds:.0f} s, {done.images} train images per "
              f"epoch", file=sys.stderr, flush=True)
    print(f"{args.run_dir}: {len(val)} validation images, Keras decided (top-2 margin > {DECIDED_MARGIN}) on "
          f"{int(decided.sum())}; {args.rule} ranges from {len(cal)} train images")
    print(text_table(["rounded", "agree %", "decided %", "mean|Δp|", "msq Δp e-4"], rows, left=1))
    for line in notes:
        print(line)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plotted.sort(key=lambda r: r[1])
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(plotted) + 1.2))
        ax.barh([r[0] for r in plotted], [1e4 * r[1] for r in plotted])
        ax.set_xlabel("mean squared Δp (e-4), only this group's activations rounded")
        ax.set_title(f"{args.run_dir.name}: int8 error by tensor group ({args.rule} ranges)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        plt.close(fig)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
