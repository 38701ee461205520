"""``edgeport bench compare A.json B.json ...``: several devices' reports in one table and plot.

Each device after the first is set against the first on every artifact x engine x threads both measured:
its p50 as a ratio with a bootstrap interval from both devices' timed runs, and its top-1 as a difference
in points with an interval, paired image by image (Tango's score interval) when both scored the same images
in the same order, else as two unrelated shares (Newcombe's). A difference whose interval excludes no
change (1x, 0 points) is *beyond noise*, marked with ``*`` in the table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from edgeport.benchmarks import report as rep
from edgeport.contract import printable
from edgeport.errors import ConfigError
from edgeport.files import atomic_write_text, write_json
from edgeport.intervals import (
    CONFIDENCE,
    independent_difference_interval,
    paired_counts,
    paired_difference_interval,
    ratio_interval,
)
from edgeport.tables import markdown_table, text_table

COMPARE_KIND = "edgeport-compare"


def merge(reports: Sequence[dict], names: Sequence[str] | None = None) -> dict:
    """One report whose rows carry a ``device`` column (made unique when two reports share a name)."""
    if not reports:
        raise ConfigError("expected at least one bench.json to compare, received none")
    names = list(names) if names else [str((r.get("environment") or {}).get("device") or f"report {i + 1}")
                                       for i, r in enumerate(reports)]
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    rows = []
    sources = []
    for name, r in zip(unique, reports):
        for row in r["rows"]:
            rows.append({**row, "device": name})
        sources.append({"device": name, "environment": r.get("environment"), "config": r.get("config"),
                        "export": r.get("export"), "data": r.get("data")})
    classes = []
    for r in reports:
        for c in (r.get("data") or {}).get("classes") or []:
            if c not in classes:
                classes.append(c)
    merged = {"schema_version": rep.SCHEMA_VERSION, "kind": COMPARE_KIND, "reports": sources,
              "data": {"classes": classes}, "rows": rows}
    merged["differences"] = differences(merged)
    return merged


def _key(r: dict) -> tuple:
    return (r["artifact"], r["scheme"], r["engine"], r["threads"])


def differences(merged: dict, confidence: float = CONFIDENCE) -> list[dict]:
    """Each later device against the first, per artifact x engine x threads measured on both (module doc)."""
    sources = merged["reports"]
    if len(sources) < 2:
        return []
    base = sources[0]
    by = {(r["device"], _key(r)): r for r in merged["rows"] if r["status"] == rep.OK}
    out = []
    for src in sources[1:]:
        same_images = (bool((base.get("data") or {}).get("order_sha256"))
                       and (base.get("data") or {}).get("order_sha256") == (src.get("data") or {}).get("order_sha256")
                       and (base.get("data") or {}).get("labels") == (src.get("data") or {}).get("labels"))
        for (device, key), a in by.items():
            if device != base["device"] or (src["device"], key) not in by:
                continue
            b = by[(src["device"], key)]
            entry = {"device": src["device"], "against": base["device"], "artifact": key[0], "scheme": key[1],
                     "engine": key[2], "threads": key[3], "confidence": confidence}
            entry.update(_latency_difference(a, b, confidence))
            entry.update(_accuracy_difference(a, b, (base.get("data") or {}).get("labels") if same_images else None,
                                              confidence))
            out.append(entry)
    return out


def _latency_difference(a: dict, b: dict, confidence: float) -> dict:
    la, lb = a.get("latency_ms") or {}, b.get("latency_ms") or {}
    if not la.get("p50") or lb.get("p50") is None:
        return {}
    ratio = float(lb["p50"]) / float(la["p50"])
    ci = ratio_interval(lb.get("samples") or [], la.get("samples") or [], confidence)
    if ci is None and la.get("p50_ci") and lb.get("p50_ci"):  # no samples: the two intervals' extreme ratios
        ci = (lb["p50_ci"][0] / la["p50_ci"][1], lb["p50_ci"][1] / la["p50_ci"][0]) if la["p50_ci"][0] > 0 else None
    out = {"p50_ratio": round(ratio, 4), "p50_ratio_ci": [round(ci[0], 4), round(ci[1], 4)] if ci else None}
    out["latency_beyond_noise"] = bool(ci) and (ci[0] > 1.0 or ci[1] < 1.0)
    return out


def _accuracy_difference(a: dict, b: dict, labels: list | None, confidence: float) -> dict:
    aa, ab = a.get("accuracy") or {}, b.get("accuracy") or {}
    if aa.get("top1_pct") is None or ab.get("top1_pct") is None:
        return {}
    diff = float(ab["top1_pct"]) - float(aa["top1_pct"])
    ta, tb = aa.get("top1"), ab.get("top1")
    if labels is not None and ta is not None and tb is not None and len(ta) == len(tb) == len(labels):
        y = list(labels)
        counts = paired_counts([p == t for p, t in zip(tb, y)], [p == t for p, t in zip(ta, y)])
        ci = paired_difference_interval(*counts, level=confidence)
        how = "paired"
        same = 100.0 * sum(p == q for p, q in zip(ta, tb)) / len(ta) if ta else None
    else:
        na, nb = int(aa.get("images") or 0), int(ab.get("images") or 0)
        ci = independent_difference_interval(round(float(ab["top1_pct"]) * nb / 100), nb,
                                             round(float(aa["top1_pct"]) * na / 100), na, confidence)
        how, same = "unpaired", None
    return {"top1_diff_pts": round(diff, 4), "top1_diff_pts_ci": list(ci) if ci else None, "pairing": how,
            "same_answer_pct": None if same is None else round(same, 4),
            "accuracy_beyond_noise": bool(ci) and (ci[0] > 0.0 or ci[1] < 0.0)}


def side_by_side(merged: dict) -> tuple[list[str], list[list[str]]]:
    """The comparison with the devices side by side: one row per artifact x engine x threads, and for
    each device its p50, its top-1 and its Δtop-1 vs that device's fp32 (``-`` where it did not run)."""
    devices = [src["device"] for src in merged["reports"]]
    keys: list[tuple] = []
    cell: dict[tuple, dict] = {}
    for r in merged["rows"]:
        key = (r["artifact"], r["scheme"], r["engine"], r["threads"])
        if key not in keys:
            keys.append(key)
        cell[key + (r["device"],)] = r

    def text(r: dict | None) -> list[str]:
        if r is None:
            return ["-", "-", "-"]
        if r["status"] != rep.OK:
            return [rep.status_text(r), "", ""]
        acc = r.get("accuracy") or {}
        return [rep.fmt_num((r.get("latency_ms") or {}).get("p50"), ".2f"), rep.fmt_num(acc.get("top1_pct"), ".1f"),
                rep.fmt_signed(acc.get("delta_top1_pts"))]

    diffs = {(d["device"], (d["artifact"], d["scheme"], d["engine"], d["threads"])): d
             for d in merged.get("differences") or []}

    def versus(d: dict | None) -> list[str]:
        if d is None:
            return ["-", "-"]
        ratio = f"{d['p50_ratio']:.2f}x{'*' if d.get('latency_beyond_noise') else ''}" if "p50_ratio" in d else "-"
        top1 = (f"{d['top1_diff_pts']:+.1f}{'*' if d.get('accuracy_beyond_noise') else ''}"
                if "top1_diff_pts" in d else "-")
        return [ratio, top1]

    head = ["artifact", "scheme", "engine", "thr"]
    for i, d in enumerate(devices):
        head += [f"{d} p50 ms", f"{d} top-1 %", f"{d} Δtop-1"]
        if i:
            head += [f"{d} p50 / {devices[0]}'s", f"{d} top-1 - {devices[0]}'s"]
    body = []
    for key in keys:
        row = [printable(str(key[0])), str(key[1]), str(key[2]), "-" if key[3] is None else str(key[3])]
        for i, d in enumerate(devices):
            row += text(cell.get(key + (d,)))
            if i:
                row += versus(diffs.get((d, key)))
        body.append(row)
    return head, body


def format_side_by_side(merged: dict, markdown: bool = False) -> str:
    """:func:`side_by_side` as a terminal table or a markdown table."""
    head, body = side_by_side(merged)
    return (markdown_table if markdown else text_table)(head, body)


def to_markdown(merged: dict, plot_name: str | None = None) -> str:
    parts = ["# edgeport benchmark comparison", "", format_side_by_side(merged, markdown=True), "",
             "Each device's Δtop-1 is against its own fp32 artifact. 'p50 / first's' and 'top-1 - first's' set each "
             "device against the first on the same artifact; * marks a difference beyond noise (its 95 % interval "
             "excludes no change: a bootstrap of both devices' timed runs for the p50 ratio; Tango's paired "
             "interval for top-1 when both scored the same images, else Newcombe's). Every row of every device, "
             "with all its figures and intervals, is in compare.csv and compare.json.", ""]
    parts += ["## Schemes", ""] + [f"- {line}" for line in rep.precision_legend(merged["rows"])] + [""]
    for src in merged["reports"]:
        parts += [f"## {src['device']}", ""] + [f"- {line}" for line in rep.environment_lines(src.get("environment") or {})]
        data = src.get("data") or {}
        if data:
            parts.append(f"- accuracy on {data.get('images')} images ({data.get('split')} split of `{data.get('root')}`)")
        parts.append("")
    if plot_name:
        parts += [f"![accuracy vs latency]({plot_name})", ""]
    return "\n".join(parts)


def write(merged: dict, out_dir: str | os.PathLike[str], stem: str = "compare", plot: bool = True) -> dict[str, str]:
    """compare.json/.csv/.md/.png in ``out_dir``."""
    from edgeport.benchmarks.plot import plot_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "csv": out / f"{stem}.csv", "md": out / f"{stem}.md"}
    write_json(paths["json"], merged)
    atomic_write_text(paths["csv"], rep.to_csv(merged["rows"], merged["data"]["classes"]))
    png = plot_report(merged, out / f"{stem}.png") if plot else None
    atomic_write_text(paths["md"], to_markdown(merged, png.name if png else None))
    result = {k: str(v) for k, v in paths.items()}
    if png:
        result["png"] = str(png)
    return result


def compare(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None,
            names: Sequence[str] | None = None) -> dict:
    """Load bench.json files (or folders holding one), merge them, and write the result to ``out``."""
    if len(paths) < 1:
        raise ConfigError("expected one or more bench.json files: edgeport bench compare A.json B.json [--out DIR]")
    files = [Path(p) / "bench.json" if Path(p).is_dir() else Path(p) for p in paths]
    if names and len(names) != len(files):
        raise ConfigError(f"expected one --names entry per report ({len(files)}), received {len(names)}")
    merged = merge([rep.load(f) for f in files], names)
    merged["files_compared"] = [str(f) for f in files]
    if out:
        merged["files"] = write(merged, out)
    return merged
