"""Run-directory reports: metrics from predictions, history.csv, history.png, confusion.png."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

#: history.csv columns; lr is the learning rate at the start of the epoch.
HISTORY_COLUMNS = ("phase", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Top-1, top-5, per-class accuracy and the confusion matrix (rows: true, columns: predicted)."""
    k = len(classes)
    pred = probs.argmax(axis=1)
    top = min(5, k)
    topk = np.argsort(-probs, axis=1)[:, :top]
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (labels, pred), 1)
    per_class = {}
    for i, c in enumerate(classes):
        total = int(conf[i].sum())
        per_class[c] = float(conf[i, i] / total) if total else None
    n = len(labels)
    return {
        "num_images": int(n),
        "top1": float((pred == labels).mean()) if n else 0.0,
        "top5": float((topk == labels[:, None]).any(axis=1).mean()) if n else 0.0,
        "top5_k": int(top),
        "per_class_accuracy": per_class,
        "confusion_matrix": conf.tolist(),
    }


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to a temp file and rename it over ``path`` (survives a kill mid-write)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_history_csv(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    tmp = Path(path).with_name(".history.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in HISTORY_COLUMNS})
    os.replace(tmp, path)


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
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    fig.savefig(path, dpi=100)
    plt.close(fig)
