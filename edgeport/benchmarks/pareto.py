"""The accuracy/latency Pareto front: the variants nothing else beats on both."""

from __future__ import annotations

from typing import Sequence


def pareto_front(latency: Sequence[float], accuracy: Sequence[float]) -> list[bool]:
    """For each point, True when no other point is at least as fast and as accurate
    and strictly better in one of the two (lower latency, higher accuracy).

    Points with a missing value (None/NaN) are never on the front.
    """
    pts = [(float(t), float(a)) if t is not None and a is not None else None for t, a in zip(latency, accuracy)]
    ok = [p is not None and p[0] == p[0] and p[1] == p[1] for p in pts]
    out = []
    for i, p in enumerate(pts):
        if not ok[i]:
            out.append(False)
            continue
        dominated = any(
            ok[j] and q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1])
            for j, q in enumerate(pts)
            if j != i
        )
        out.append(not dominated)
    return out
