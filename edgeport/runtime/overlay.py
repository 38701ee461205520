"""Drawing results onto frames (pure: returns a new image)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def draw_overlay(
    frame_bgr: np.ndarray,
    top: Sequence[tuple[str, float]],
    fps: float | None = None,
    latency_ms: float | None = None,
) -> np.ndarray:
    """A copy of ``frame_bgr`` with the top-k labels, FPS and latency drawn top-left."""
    out = frame_bgr.copy()
    h = out.shape[0]
    scale = max(0.4, min(1.2, h / 600))
    line = int(28 * scale)
    texts = [f"{label} {prob * 100:.1f}%" for label, prob in top]
    status = []
    if fps is not None:
        status.append(f"{fps:.1f} FPS")
    if latency_ms is not None:
        status.append(f"{latency_ms:.1f} ms")
    if status:
        texts.append("  ".join(status))
    if not texts:
        return out
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in texts)
    box_h = min(h, line * len(texts) + line // 2)
    roi = out[:box_h, : min(out.shape[1], width + 16)]
    roi[:] = (roi * 0.4).astype(out.dtype)  # darken for legibility
    for i, text in enumerate(texts):
        color = (80, 255, 80) if i == 0 and top else (255, 255, 255)
        cv2.putText(out, text, (8, line * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1 + (i == 0), cv2.LINE_AA)
    return out
