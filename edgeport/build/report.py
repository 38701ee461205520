"""Run-directory reports: history.csv, history.png, confusion.png (the figures: :mod:`edgeport.metrics`)."""

from __future__ import annotations

import csv
import io
import logging
import os
from typing import Any, Sequence

import numpy as np

from edgeport.files import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

#: history.csv columns; lr is the learning rate at the start of the epoch.
HISTORY_COLUMNS = ("phase", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def write_history_csv(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in HISTORY_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Loss and accuracy per epoch (train and val), the phase change and the best val accuracy marked."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(1, len(rows) + 1)
    p1 = sum(1 for r in rows if int(r["phase"]) == 1)
    val_acc = np.array([float(r.get("val_accuracy", np.nan)) for r in rows], float)
    best = int(np.nanargmax(val_acc)) if np.isfinite(val_acc).any() else None
    for ax, key in zip(axes, ("loss", "accuracy")):
        scale = 100.0 if key == "accuracy" else 1.0
        ax.plot(x, [scale * float(r.get(key, np.nan)) for r in rows], "o-", label=f"train {key}")
        ax.plot(x, [scale * float(r.get(f"val_{key}", np.nan)) for r in rows], "s-", label=f"val {key}")
        if 0 < p1 < len(rows):
            ax.axvline(p1 + 0.5, color="gray", linestyle="--", label="fine-tuning starts")
        if best is not None:
            y = scale * float(rows[best].get(f"val_{key}", np.nan))
            ax.plot([x[best]], [y], marker="*", markersize=16, color="tab:red", linestyle="none",
                    label=f"best val accuracy (epoch {x[best]}: {val_acc[best] * 100:.1f} %)")
        ax.set_xlabel("epoch (phase 1: head on the frozen backbone, then phase 2: fine-tuning)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key == "accuracy":
            ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: object, path: str | os.PathLike[str]) -> None:
    """The figure as a PNG, written atomically (a kill never leaves half an image)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # type: ignore[attr-defined]
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_confusion(path: str | os.PathLike[str], matrix: list[list[int]], classes: Sequence[str]) -> None:
    """Row-normalised percentages (each true class sums to 100 %) with the image counts beside them."""
    plt = _pyplot()
    m = np.asarray(matrix, np.int64)
    k = len(classes)
    rows = m.sum(axis=1, keepdims=True)
    pct = np.divide(100.0 * m, rows, out=np.zeros(m.shape, float), where=rows > 0)
    side = max(4.5, 0.7 * k + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.5, side), layout="constrained")
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of the true class")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), [f"{c} (n={int(n)})" for c, n in zip(classes, rows[:, 0])])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if m[i, j] == 0 and i != j:
                    continue
                ax.text(j, i, f"{pct[i, j]:.0f} %\n{m[i, j]}", ha="center", va="center", fontsize=7 if k > 10 else 8,
                        color="white" if pct[i, j] > 50 else "black")
    total = int(m.sum())
    ax.set_title(f"validation: {100.0 * np.trace(m) / max(total, 1):.1f} % top-1 of {total} images\n"
                 "(rows: true class, normalised to 100 %; cells: % and count)", fontsize=9)
    _save(fig, path)
