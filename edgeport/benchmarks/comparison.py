"""``edgeport bench compare A.json B.json ...``: several devices' reports in one table and plot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from edgeport.benchmarks import report as rep
from edgeport.contract import printable
from edgeport.errors import ConfigError
from edgeport.files import atomic_write_text, write_json
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
    return {"schema_version": rep.SCHEMA_VERSION, "kind": COMPARE_KIND, "reports": sources,
            "data": {"classes": classes}, "rows": rows}


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
        return [rep._f((r.get("latency_ms") or {}).get("p50"), ".2f"), rep._f(acc.get("top1_pct"), ".1f"),
                rep._signed(acc.get("delta_top1_pts"))]

    head = ["artifact", "scheme", "engine", "thr"]
    for d in devices:
        head += [f"{d} p50 ms", f"{d} top-1 %", f"{d} Δtop-1"]
    body = []
    for key in keys:
        row = [printable(str(key[0])), str(key[1]), str(key[2]), "-" if key[3] is None else str(key[3])]
        for d in devices:
            row += text(cell.get(key + (d,)))
        body.append(row)
    return head, body


def format_side_by_side(merged: dict, markdown: bool = False) -> str:
    """:func:`side_by_side` as a terminal table or a markdown table."""
    head, body = side_by_side(merged)
    return (markdown_table if markdown else text_table)(head, body)


def to_markdown(merged: dict, plot_name: str | None = None) -> str:
    parts = ["# edgeport benchmark comparison", "", format_side_by_side(merged, markdown=True), "",
             "Each device's Δtop-1 is against its own fp32 artifact; every row of every device, with all its "
             "figures, is in compare.csv and compare.json.", ""]
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
