"""Run-directory reports: history.csv, history.png, confusion.png (the figures: :mod:`edgeport.metrics`)."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
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
    """Loss and accuracy per epoch (train and val), the phase change marked."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, len(rows) + 1)
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(x, [float(r.get(key, np.nan)) for r in rows], "o-", label=f"train {key}")
        ax.plot(x, [float(r.get(f"val_{key}", np.nan)) for r in rows], "s-", label=f"val {key}")
        p1 = sum(1 for r in rows if int(r["phase"]) == 1)
        if 0 < p1 < len(rows):
            ax.axvline(p1 + 0.5, color="gray", linestyle="--", label="fine-tune starts")
        ax.set_xlabel("epoch (phase 1, then phase 2)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)


def _save(fig: object, path: str | os.PathLike[str]) -> None:
    """The figure as a PNG, written atomically (a kill never leaves half an image)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # type: ignore[attr-defined]
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_confusion(path: str | os.PathLike[str], matrix: list[list[int]], classes: Sequence[str]) -> None:
    plt = _pyplot()
    m = np.asarray(matrix)
    k = len(classes)
    side = max(4.0, 0.5 * k + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(m[i, j]), ha="center", va="center",
                        color="white" if m[i, j] > m.max() / 2 else "black", fontsize=8)
    ax.set_title("validation confusion matrix")
    fig.tight_layout()
    _save(fig, path)
