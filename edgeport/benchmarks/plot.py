"""bench.png: top-1 accuracy vs p50 latency, Pareto front marked, point size by file size, and each
point's intervals (top-1: Clopper-Pearson; p50: order statistics) as error bars.

Drawn with matplotlib when it is installed, else with OpenCV (always there,
so a Raspberry Pi gets a plot too).
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edgeport.benchmarks.pareto import pareto_front
from edgeport.files import atomic_write_bytes

log = logging.getLogger(__name__)

_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # RGB


@dataclass(frozen=True)
class Point:
    label: str
    group: str
    latency_ms: float
    top1_pct: float
    mb: float
    front: bool
    reference: bool = False  #: the fp32 point the others are compared with
    latency_ci: tuple[float, float] | None = None
    top1_ci: tuple[float, float] | None = None


def points_from_rows(rows: Sequence[dict], group_key: str = "engine") -> list[Point]:
    """The plottable rows (ok, with p50 and top-1); the front is computed within each group of ``device``."""
    usable = [r for r in rows if r.get("status") == "ok" and (r.get("latency_ms") or {}).get("p50") is not None
              and (r.get("accuracy") or {}).get("top1_pct") is not None]
    devices = sorted({str(r.get("device") or "") for r in usable})
    front: dict[int, bool] = {}
    for d in devices:
        idx = [i for i, r in enumerate(usable) if str(r.get("device") or "") == d]
        flags = pareto_front([usable[i]["latency_ms"]["p50"] for i in idx], [usable[i]["accuracy"]["top1_pct"] for i in idx])
        front.update(zip(idx, flags))
    pts = []
    for i, r in enumerate(usable):
        label = f"{r['scheme']} {r['engine']} t{r['threads']}"
        acc = r["accuracy"]
        if acc.get("images_total") and acc.get("images") and acc["images"] < acc["images_total"]:
            label += f" ({acc['images']}/{acc['images_total']} imgs)"  # a time-capped accuracy pass
        lat_ci, acc_ci = r["latency_ms"].get("p50_ci"), acc.get("top1_pct_ci")
        pts.append(Point(label, str(r.get(group_key) or ""), float(r["latency_ms"]["p50"]),
                         float(r["accuracy"]["top1_pct"]), (r.get("bytes") or 0) / 1048576.0, front[i],
                         reference=acc.get("reference") == f"{r['artifact']}@{r['engine']}",
                         latency_ci=tuple(lat_ci) if lat_ci else None, top1_ci=tuple(acc_ci) if acc_ci else None))
    return pts


def place_labels(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]],
                 bounds: tuple[float, float, float, float], gap: float = 6.0) -> list[tuple[float, float]]:
    """Top-left pixel corners for labels near their points (y down), avoiding overlaps greedily.

    Each label tries right/left of its point, then shifted up and down by a
    line at a time; the first spot inside ``bounds`` that overlaps no placed
    label wins (else the first candidate). ``bounds`` = (left, top, right, bottom).
    """
    left, top, right, bottom = bounds
    placed: list[tuple[float, float, float, float]] = []
    out = []
    for (x, y), (w, h) in zip(anchors, sizes):
        cands = []
        for k in range(0, 12):
            for dy in ((-h - 2, 2) if k == 0 else (-h - 2 - k * (h + 1), 2 + k * (h + 1))):
                cands += [(x + gap, y + dy), (x - gap - w, y + dy)]
        best = None
        for cx, cy in cands:
            inside = left <= cx and cx + w <= right and top <= cy and cy + h <= bottom
            free = all(cx + w <= a or a + c <= cx or cy + h <= b or b + d <= cy for a, b, c, d in placed)
            if inside and free:
                best = (cx, cy)
                break
        if best is None:
            best = next(((cx, cy) for cx, cy in cands if left <= cx and cx + w <= right), cands[0])
        placed.append((best[0], best[1], w, h))
        out.append(best)
    return out


def _size(mb: float, max_mb: float) -> float:
    return 4.0 + 14.0 * math.sqrt(mb / max_mb) if max_mb > 0 else 6.0


#: the accuracy axis spans at least this many points: a 0.7-point difference is not drawn as a cliff
MIN_ACCURACY_SPAN = 5.0


def merge_labels(pts: list[Point], anchors: list[tuple[float, float]], radius: float = 14.0) -> list[str | None]:
    """One label per cluster of points drawn within ``radius`` pixels of each other in the same group
    ("fp32, fp16, dynamic litert t1"); the other members of a cluster get None (no label of their own)."""
    labels: list[str | None] = [p.label for p in pts]
    done: set[int] = set()
    for i, (p, (x, y)) in enumerate(zip(pts, anchors)):
        if i in done:
            continue
        near = [j for j, (q, (u, v)) in enumerate(zip(pts, anchors))
                if j not in done and q.group == p.group and math.hypot(u - x, v - y) <= radius]
        done.update(near)
        if len(near) > 1:
            heads = [pts[j].label.split(" ")[0] for j in near]
            rest = " ".join(p.label.split(" ")[1:])
            labels[i] = f"{', '.join(heads)} {rest}".strip()
            for j in near:
                if j != i:
                    labels[j] = None
    return labels


def _nice_sizes(min_mb: float, max_mb: float) -> list[float]:
    """Two or three round file sizes spanning the points' sizes, for the size legend."""
    nice = [v * 10 ** e for e in range(-3, 5) for v in (1, 2, 5)]
    inside = [v for v in nice if min_mb * 0.7 <= v <= max_mb * 1.3]
    if len(inside) > 3:
        inside = [inside[0], inside[len(inside) // 2], inside[-1]]
    return inside or [max_mb]


def _with_matplotlib(pts: list[Point], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups = sorted({p.group for p in pts})
    max_mb = max(p.mb for p in pts)
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for gi, g in enumerate(groups):
        gp = [p for p in pts if p.group == g]
        color = [c / 255 for c in _PALETTE[gi % len(_PALETTE)]]
        for p in gp:  # the intervals: a figure is not read finer than its images and runs
            if p.top1_ci or p.latency_ci:
                yerr = [[p.top1_pct - p.top1_ci[0]], [p.top1_ci[1] - p.top1_pct]] if p.top1_ci else None
                xerr = ([[max(0.0, p.latency_ms - p.latency_ci[0])], [max(0.0, p.latency_ci[1] - p.latency_ms)]]
                        if p.latency_ci else None)
                ax.errorbar([p.latency_ms], [p.top1_pct], xerr=xerr, yerr=yerr, fmt="none", ecolor=color,
                            elinewidth=0.8, capsize=2, alpha=0.7, zorder=1)
        ax.scatter([p.latency_ms for p in gp], [p.top1_pct for p in gp], s=[_size(p.mb, max_mb) ** 2 for p in gp],
                   color=color, alpha=0.6, label=g, edgecolors="none")
    fr = sorted((p for p in pts if p.front), key=lambda p: p.latency_ms)
    if fr:
        ax.plot([p.latency_ms for p in fr], [p.top1_pct for p in fr], "k--", lw=1, label="Pareto front")
        ax.scatter([p.latency_ms for p in fr], [p.top1_pct for p in fr], s=[(_size(p.mb, max_mb) + 4) ** 2 for p in fr],
                   facecolors="none", edgecolors="k", linewidths=1.2)
    lat = [p.latency_ms for p in pts]
    log_x = min(lat) > 0 and max(lat) / min(lat) > 20
    if log_x:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
    ax.margins(x=0.08, y=0.15)
    lo, hi = ax.get_ylim()
    if hi - lo < MIN_ACCURACY_SPAN:
        mid = (hi + lo) / 2
        lo, hi = mid - MIN_ACCURACY_SPAN / 2, mid + MIN_ACCURACY_SPAN / 2
        if hi > 100.0:
            lo, hi = lo - (hi - 100.0), 100.0
        ax.set_ylim(lo, hi)
    ref = [p for p in pts if p.reference]
    if ref:
        ax.axhline(ref[0].top1_pct, color="0.6", lw=0.8, ls=":", zorder=0)
        ax.annotate(f"fp32 {ref[0].top1_pct:.1f} %", (1.0, ref[0].top1_pct), xycoords=("axes fraction", "data"),
                    xytext=(-4, -3), textcoords="offset points", ha="right", va="top", fontsize=7, color="0.4")
    ax.set_xlabel("p50 latency of one inference (ms)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title + "\n(ringed = Pareto front: nothing else is both faster and more accurate)", fontsize=10)
    ax.grid(True, alpha=0.3)
    for mb in _nice_sizes(min(p.mb for p in pts), max_mb):  # the size legend
        ax.scatter([], [], s=_size(mb, max_mb) ** 2, color="0.75", edgecolors="none", label=f"{mb:g} MB file")
    leg = ax.legend(fontsize=8, loc="best", labelspacing=1.2, borderpad=0.9)
    for handle, text in zip(getattr(leg, "legend_handles", getattr(leg, "legendHandles", [])), leg.get_texts()):
        if hasattr(handle, "set_sizes") and not text.get_text().endswith("MB file"):
            handle.set_sizes([40])
    fig.tight_layout()
    fig.canvas.draw()  # final axes limits and position, so labels can be placed in pixels
    width_px, height_px = fig.canvas.get_width_height()
    font_px = 7 * fig.dpi / 72
    anchors = [tuple(ax.transData.transform((p.latency_ms, p.top1_pct))) for p in pts]
    anchors_down = [(x, height_px - y) for x, y in anchors]
    texts = merge_labels(pts, anchors_down)
    shown = [i for i, t in enumerate(texts) if t]
    sizes = [(0.6 * font_px * len(texts[i]), 1.25 * font_px) for i in shown]
    box = ax.get_window_extent()
    bounds = (box.x0 + 2, height_px - box.y1 + 2, box.x1 - 2, height_px - box.y0 - 2)  # inside the axes
    where = place_labels([anchors_down[i] for i in shown], sizes, bounds)
    for i, (lx, ly) in zip(shown, where):
        p, (x, y) = pts[i], anchors_down[i]
        ax.annotate(texts[i], (p.latency_ms, p.top1_pct), xytext=(lx - x, -(ly - y)), textcoords="offset pixels",
                    fontsize=7, ha="left", va="top", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"})
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())  # never a half-drawn bench.png after a kill
    return True


def _with_opencv(pts: list[Point], path: Path, title: str) -> None:
    import cv2
    import numpy as np

    w, h, ml, mr, mt, mb = 1000, 680, 80, 30, 60, 60
    img = np.full((h, w, 3), 255, np.uint8)
    lat = [p.latency_ms for p in pts]
    acc = [p.top1_pct for p in pts]
    log_x = min(lat) > 0 and max(lat) / min(lat) > 20
    fx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    x0, x1 = fx(min(lat)), fx(max(lat))
    pad = (x1 - x0) * 0.08 or 0.5
    x0, x1 = x0 - pad, x1 + pad
    y0, y1 = min(acc), max(acc)
    ypad = (y1 - y0) * 0.1 or 1.0
    y0, y1 = y0 - ypad, min(100.0 + ypad, y1 + ypad)

    def px(lx: float, ly: float) -> tuple[int, int]:
        return (int(ml + (fx(lx) - x0) / (x1 - x0) * (w - ml - mr)), int(h - mb - (ly - y0) / (y1 - y0) * (h - mt - mb)))

    def bgr(c: tuple) -> tuple:
        return c[2], c[1], c[0]

    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.rectangle(img, (ml, mt), (w - mr, h - mb), (0, 0, 0), 1)
    for i in range(6):  # ticks
        vy = y0 + (y1 - y0) * i / 5
        y = int(h - mb - i / 5 * (h - mt - mb))
        cv2.line(img, (ml, y), (w - mr, y), (230, 230, 230), 1)
        cv2.putText(img, f"{vy:.1f}", (8, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        vx = x0 + (x1 - x0) * i / 5
        x = int(ml + i / 5 * (w - ml - mr))
        cv2.putText(img, f"{10 ** vx if log_x else vx:.3g}", (x - 15, h - mb + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "p50 latency (ms)" + (", log scale" if log_x else ""), (w // 2 - 90, h - 15), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "top-1 %", (8, mt - 12), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title + "  (size ~ file size, ringed = Pareto front)", (ml, 25), font, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    groups = sorted({p.group for p in pts})
    max_mb = max(p.mb for p in pts)
    fr = sorted((p for p in pts if p.front), key=lambda p: p.latency_ms)
    for a, b in zip(fr, fr[1:]):
        cv2.line(img, px(a.latency_ms, a.top1_pct), px(b.latency_ms, b.top1_pct), (0, 0, 0), 1, cv2.LINE_AA)
    for p in pts:
        c = bgr(_PALETTE[groups.index(p.group) % len(_PALETTE)])
        r = int(_size(p.mb, max_mb))
        if p.top1_ci:  # error bars: the intervals
            cv2.line(img, px(p.latency_ms, max(y0, p.top1_ci[0])), px(p.latency_ms, min(y1, p.top1_ci[1])), c, 1,
                     cv2.LINE_AA)
        if p.latency_ci and p.latency_ci[0] > 0:
            cv2.line(img, px(p.latency_ci[0], p.top1_pct), px(p.latency_ci[1], p.top1_pct), c, 1, cv2.LINE_AA)
        cv2.circle(img, px(p.latency_ms, p.top1_pct), r, c, -1, cv2.LINE_AA)
        if p.front:
            cv2.circle(img, px(p.latency_ms, p.top1_pct), r + 4, (0, 0, 0), 1, cv2.LINE_AA)
    anchors = [px(p.latency_ms, p.top1_pct) for p in pts]
    sizes = []
    for p in pts:
        (tw, th), base = cv2.getTextSize(p.label, font, 0.35, 1)
        sizes.append((tw, th + base))
    labels_at = place_labels(anchors, sizes, (ml + 2, mt + 2, w - mr - 2, h - mb - 2))
    for p, (x, y), (lx, ly), (tw, th) in zip(pts, anchors, labels_at, sizes):
        cv2.line(img, (x, y), (int(lx if lx > x else lx + tw), int(ly + th / 2)), (170, 170, 170), 1, cv2.LINE_AA)
        cv2.putText(img, p.label, (int(lx), int(ly + th - 2)), font, 0.35, (40, 40, 40), 1, cv2.LINE_AA)
    for gi, g in enumerate(groups):  # legend
        c = bgr(_PALETTE[gi % len(_PALETTE)])
        cv2.circle(img, (w - mr - 180, mt + 15 + 18 * gi), 5, c, -1, cv2.LINE_AA)
        cv2.putText(img, g, (w - mr - 170, mt + 19 + 18 * gi), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", img)
    if not ok:
        raise OSError(f"OpenCV could not encode {path}")
    atomic_write_bytes(path, png.tobytes())


def plot_points(pts: list[Point], path: str | os.PathLike[str], title: str = "edgeport bench",
                backend: str = "auto") -> Path | None:
    """Draw ``pts`` to ``path``; ``backend`` "auto" | "matplotlib" | "opencv". None when nothing to plot."""
    out = Path(path)
    if not pts:
        log.info("no variant has both a latency and an accuracy; %s not drawn", out.name)
        return None
    if backend in ("auto", "matplotlib") and _with_matplotlib(pts, out, title):
        return out
    if backend == "matplotlib":
        log.info("matplotlib is not installed; %s not drawn", out.name)
        return None
    _with_opencv(pts, out, title)
    return out


def plot_report(report: dict, path: str | os.PathLike[str], backend: str = "auto") -> Path | None:
    """The accuracy/latency plot of a bench or compare report."""
    rows = report["rows"]
    multi = len({str(r.get("device") or "") for r in rows}) > 1
    pts = points_from_rows(rows, "device" if multi else "engine")
    title = "edgeport compare" if multi else f"edgeport bench: {(report.get('environment') or {}).get('device', '')}"
    level = 100 * float((report.get("config") or {}).get("confidence") or 0.95)
    title += f" (bars: {level:g} % intervals)"
    return plot_points(pts, path, title, backend)
