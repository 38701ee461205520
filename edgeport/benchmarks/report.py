"""Write a benchmark report: bench.json, bench.csv, bench.md and a terminal table.

A report is a plain dict (see :data:`SCHEMA_VERSION` and :func:`validate`):
``{"schema_version", "kind": "edgeport-bench", "environment", "config",
"export", "data", "rows": [...]}``. Each row is one artifact x engine x
threads variant; failed and unavailable variants are rows too.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from edgeport.contract import printable
from edgeport.errors import DataError
from edgeport.files import atomic_write_text, json_ready, write_json
from edgeport.metrics import DECIDED_MARGIN
from edgeport.tables import markdown_table, text_table

#: 2: accuracy in percent (*_pct), decided agreement, sha256 of the file measured; 3: every figure with its
#: interval (*_ci), the paired counts of Δtop-1 (top1_pairs), each variant's top-1 per image and latency samples
SCHEMA_VERSION = 3
KIND = "edgeport-bench"

#: Row statuses.
OK, FAILED, NOT_AVAILABLE = "ok", "failed", "not available"

#: Keys every row has (values may be None when not measured).
ROW_KEYS = (
    "artifact", "scheme", "precision", "format", "engine", "engine_version", "threads", "status", "reason",
    "bytes", "load_s", "first_inference_ms", "warmup", "runs", "latency_ms", "images_per_s",
    "peak_rss_mb", "baseline_rss_mb", "pid", "accuracy",
)
LATENCY_KEYS = ("mean", "std", "p50", "p50_ci", "p90", "p99", "min", "max")
ACCURACY_KEYS = ("images", "top1_pct", "top1_pct_ci", "top5_pct", "per_class_top1_pct", "reference_top1_pct",
                 "delta_top1_pts", "delta_top1_pts_ci", "agreement_pct", "agreement_pct_ci", "decided_agreement_pct",
                 "decided_images", "worst_class", "worst_class_drop_pts", "reference")
TOP_KEYS = ("schema_version", "kind", "environment", "config", "export", "data", "rows")


def empty_row(**values: object) -> dict:
    """A row with every key present (None unless given)."""
    row = {k: None for k in ROW_KEYS}
    row.update(values)
    return row


def validate(report: dict, where: str = "report") -> dict:
    """Check a report's shape (raises DataError naming the first problem); returns it."""
    if not isinstance(report, dict):
        raise DataError(f"expected a JSON object in {where}, received {type(report).__name__}")
    missing = [k for k in TOP_KEYS if k not in report]
    if missing:
        raise DataError(f"expected an edgeport bench report in {where}, but it lacks: {', '.join(missing)}; "
                        "make one with `edgeport bench EXPORT_DIR --out DIR`")
    if report.get("kind") != KIND:
        raise DataError(f"expected kind '{KIND}' in {where}, received {report.get('kind')!r}")
    if report["schema_version"] != SCHEMA_VERSION:
        raise DataError(f"expected schema_version {SCHEMA_VERSION} in {where}, received {report['schema_version']!r}; "
                        "re-run the benchmark with this edgeport version")
    for i, row in enumerate(report["rows"]):
        lack = [k for k in ROW_KEYS if k not in row]
        if lack:
            raise DataError(f"row {i} of {where} lacks: {', '.join(lack)}")
        if row["status"] not in (OK, FAILED, NOT_AVAILABLE):
            raise DataError(f"row {i} of {where} has an unknown status {row['status']!r}")
        if row["status"] == OK and row["latency_ms"] is not None:
            lack = [k for k in LATENCY_KEYS if k not in row["latency_ms"]]
            if lack:
                raise DataError(f"row {i} of {where}: latency_ms lacks {', '.join(lack)}")
        if row["accuracy"] is not None:
            lack = [k for k in ACCURACY_KEYS if k not in row["accuracy"]]
            if lack:
                raise DataError(f"row {i} of {where}: accuracy lacks {', '.join(lack)}")
    return report


def load(path: str | os.PathLike[str]) -> dict:
    """Read and validate a bench.json."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"expected a bench.json from `edgeport bench --out DIR`, but {p} does not exist")
    try:
        data = json.loads(p.read_text())
    except ValueError as exc:
        raise DataError(f"expected JSON in {p}, received unreadable text ({exc})") from exc
    return validate(data, str(p))


def fmt_num(value: object, spec: str = ".1f", scale: float = 1.0) -> str:
    """A number for a table cell ('-' for none or not finite)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(float(value) * scale, spec)


def fmt_signed(value: object) -> str:
    return "-" if value is None else f"{float(value):+.1f}"


def fmt_ci(value: object, ci: Sequence[float] | None, spec: str = ".1f") -> str:
    """'97.8 [95.8-99.1]': a figure with its interval ('-' for none)."""
    if value is None:
        return "-"
    text = format(float(value), spec)  # type: ignore[arg-type]
    return f"{text} [{format(ci[0], spec)}, {format(ci[1], spec)}]" if ci else text


def _worst(row: dict) -> str:
    acc = row.get("accuracy") or {}
    name, drop = acc.get("worst_class"), acc.get("worst_class_drop_pts")
    if name is None or drop is None or drop <= 0:
        return "-"
    return f"{name} -{drop:.1f}"


def status_text(row: dict) -> str:
    if row["status"] == OK:
        return "ok"
    return "FAILED" if row["status"] == FAILED else "n/a"


#: (header, function of row -> text, align right?)
def _columns(with_device: bool) -> list[tuple[str, object, bool]]:
    def acc(r: dict, k: str) -> object:
        return (r.get("accuracy") or {}).get(k)

    def lat(r: dict, k: str) -> object:
        return (r.get("latency_ms") or {}).get(k)

    cols: list[tuple[str, object, bool]] = []
    if with_device:
        cols.append(("device", lambda r: str(r.get("device") or "-"), False))
    cols += [
        ("artifact", lambda r: str(r["artifact"]), False),
        ("scheme", lambda r: str(r["scheme"]), False),
        ("engine", lambda r: str(r["engine"]), False),
        ("thr", lambda r: str(r["threads"] if r["threads"] is not None else "-"), True),
        ("status", status_text, False),
        ("MB", lambda r: fmt_num(r["bytes"], ".2f", 1 / 1048576) if r["bytes"] else "-", True),
        ("p50 ms [CI]", lambda r: fmt_ci(lat(r, "p50"), lat(r, "p50_ci"), ".2f"), True),
        ("mean ms", lambda r: fmt_num(lat(r, "mean"), ".2f"), True),
        ("p99 ms", lambda r: fmt_num(lat(r, "p99"), ".2f"), True),
        ("img/s", lambda r: fmt_num(r["images_per_s"], ".1f"), True),
        ("runs", lambda r: str(r["runs"]) if r["runs"] is not None else "-", True),
        ("load s", lambda r: fmt_num(r["load_s"], ".2f"), True),
        ("RSS MB", lambda r: fmt_num(r["peak_rss_mb"], ".0f"), True),
        ("n", lambda r: str(acc(r, "images")) if acc(r, "images") is not None else "-", True),
        ("top-1 % [CI]", lambda r: fmt_ci(acc(r, "top1_pct"), acc(r, "top1_pct_ci")), True),
        ("top-5 %", lambda r: fmt_num(acc(r, "top5_pct"), ".1f"), True),
        ("Δtop-1 [CI]", lambda r: fmt_ci(acc(r, "delta_top1_pts"), acc(r, "delta_top1_pts_ci"), "+.1f"), True),
        ("agree % [CI]", lambda r: fmt_ci(acc(r, "agreement_pct"), acc(r, "agreement_pct_ci")), True),
        ("decided %", lambda r: fmt_num(acc(r, "decided_agreement_pct"), ".1f"), True),
        ("worst class", _worst, False),
        ("note", lambda r: str(r.get("reason") or ""), False),
    ]
    return cols


def table_cells(rows: Sequence[dict], with_device: bool = False) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, cells and right-alignment of the table; cells hold no control characters (labels,
    device names and failure notes come from files and other machines)."""
    cols = _columns(with_device)
    return ([c[0] for c in cols], [[printable(c[1](r), 10_000) for c in cols] for r in rows],
            [c[2] for c in cols])


def format_table(rows: Sequence[dict], with_device: bool = False, max_note: int = 100) -> str:
    """A fixed-width text table, one line per variant (the terminal view; long notes are cut, bench.json has them whole)."""
    head, body, right = table_cells(rows, with_device)
    body = [r[:-1] + [r[-1] if len(r[-1]) <= max_note else r[-1][: max_note - 3] + "..."] for r in body]
    return text_table(head, body, right)


def format_markdown_table(rows: Sequence[dict], with_device: bool = False) -> str:
    head, body, right = table_cells(rows, with_device)
    return markdown_table(head, body, right)


def precision_legend(rows: Iterable[dict]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    for r in rows:
        seen.setdefault((str(r["scheme"]), str(r["format"])), str(r["precision"]))
    return [f"{s} ({f}): {p}" for (s, f), p in sorted(seen.items())]


def environment_lines(env: dict) -> list[str]:
    engines = env.get("engines") or {}
    eng = ", ".join(f"{k} {v.get('version')}" for k, v in sorted(engines.items()) if v.get("available")) or "none"
    missing = ", ".join(k for k, v in sorted(engines.items()) if not v.get("available"))
    lines = [
        f"device: {printable(str(env.get('device')))}",
        f"cpu: {printable(str(env.get('cpu')))} ({env.get('machine')}), {env.get('cores')} cores"
        + (f" ({env.get('usable_cores')} usable)" if env.get("usable_cores") not in (None, env.get("cores")) else ""),
        f"memory: {env.get('memory_mb')} MB",
        f"os: {env.get('os')}",
        f"python {env.get('python')}, numpy {env.get('numpy')}, opencv {env.get('opencv')}",
        f"engines: {eng}" + (f" (not usable here: {missing})" if missing else ""),
        f"measured: {env.get('timestamp')}",
    ]
    return lines


def to_markdown(report: dict, plot_name: str | None = None) -> str:
    """bench.md: the table, what each scheme computes in, the environment, the settings."""
    cfg = report.get("config", {})
    data = report.get("data") or {}
    parts = ["# edgeport benchmark", ""]
    parts.append(f"Export: `{(report.get('export') or {}).get('dir')}`  ")
    if data:
        parts.append(f"Accuracy on {data.get('images')} images ({data.get('split')} split of `{data.get('root')}`)"
                     + (f", limit {cfg.get('limit')}" if cfg.get("limit") else "") + "  ")
    parts.append(f"Latency: {cfg.get('warmup')} warm-up runs, then up to {cfg.get('runs')} timed runs "
                 f"(at most {cfg.get('max_seconds')} s) of one `engine.invoke` on real preprocessed images, "
                 "each variant in a fresh process.")
    parts += ["", format_markdown_table(report["rows"]), ""]
    level = 100 * float(cfg.get("confidence") or 0.95)
    parts += ["n: images scored; Δtop-1: top-1 change vs the fp32 artifact in points; agree %: top-1 agreement "
              "with fp32; decided %: the same on the images where fp32's top-1 beats its top-2 by more than "
              f"{DECIDED_MARGIN:g}; worst class: the class with the largest top-1 drop vs fp32. [CI]: the "
              f"{level:g} % interval (shares: Clopper-Pearson; Δtop-1: Tango's paired score interval on the same "
              "images; p50: order statistics of the timed runs). Two figures whose intervals overlap are not shown "
              "to differ.", ""]
    parts += ["## Schemes", ""] + [f"- {line}" for line in precision_legend(report["rows"])] + [""]
    parts += ["## Environment", ""] + [f"- {line}" for line in environment_lines(report.get("environment", {}))]
    if plot_name:
        parts += ["", f"![accuracy vs latency]({plot_name})"]
    return "\n".join(parts) + "\n"


def csv_rows(rows: Sequence[dict], classes: Sequence[str] = ()) -> tuple[list[str], list[list[object]]]:
    head = ["device", "artifact", "scheme", "precision", "format", "engine", "engine_version", "threads", "status",
            "reason", "bytes", "load_s", "first_inference_ms", "warmup", "runs"]
    head += [f"latency_{k}_ms" for k in LATENCY_KEYS if k != "p50_ci"] + ["latency_p50_ci_low_ms",
                                                                          "latency_p50_ci_high_ms"]
    head += ["images_per_s", "peak_rss_mb", "baseline_rss_mb", "pid", "images", "top1_pct", "top1_pct_ci_low",
             "top1_pct_ci_high", "top5_pct", "delta_top1_pts", "delta_top1_pts_ci_low", "delta_top1_pts_ci_high",
             "agreement_pct", "agreement_pct_ci_low", "agreement_pct_ci_high", "decided_agreement_pct",
             "decided_images", "worst_class", "worst_class_drop_pts", "reference", "confidence", "sha256"]
    head += [f"top1_pct_{c}" for c in classes]
    body = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        acc = r.get("accuracy") or {}
        pc = acc.get("per_class_top1_pct") or {}
        vals = [r.get("device"), r["artifact"], r["scheme"], r["precision"], r["format"], r["engine"],
                r["engine_version"], r["threads"], r["status"], r["reason"], r["bytes"], r["load_s"],
                r["first_inference_ms"], r["warmup"], r["runs"]]
        vals += [lat.get(k) for k in LATENCY_KEYS if k != "p50_ci"] + _ends(lat.get("p50_ci"))
        vals += [r["images_per_s"], r["peak_rss_mb"], r["baseline_rss_mb"], r["pid"], acc.get("images"),
                 acc.get("top1_pct"), *_ends(acc.get("top1_pct_ci")), acc.get("top5_pct"), acc.get("delta_top1_pts"),
                 *_ends(acc.get("delta_top1_pts_ci")), acc.get("agreement_pct"), *_ends(acc.get("agreement_pct_ci")),
                 acc.get("decided_agreement_pct"), acc.get("decided_images"), acc.get("worst_class"),
                 acc.get("worst_class_drop_pts"), acc.get("reference"), acc.get("confidence"), r.get("sha256")]
        vals += [pc.get(c) for c in classes]
        body.append(["" if v is None else v for v in json_ready(vals)])  # type: ignore[union-attr]
    return head, body


def _ends(ci: Sequence[float] | None) -> list[float | None]:
    return [ci[0], ci[1]] if ci else [None, None]


def to_csv(rows: Sequence[dict], classes: Sequence[str] = ()) -> str:
    head, body = csv_rows(rows, classes)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    w.writerows(body)
    return buf.getvalue()


def write(report: dict, out_dir: str | os.PathLike[str], stem: str = "bench", plot: bool = True) -> dict[str, str]:
    """Write STEM.json, STEM.csv, STEM.md (and STEM.png when a plotter works) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classes = list((report.get("data") or {}).get("classes") or [])
    paths = {"json": out / f"{stem}.json", "csv": out / f"{stem}.csv", "md": out / f"{stem}.md"}
    write_json(paths["json"], report)
    atomic_write_text(paths["csv"], to_csv(report["rows"], classes))
    png = None
    if plot:
        from edgeport.benchmarks.plot import plot_report

        png = plot_report(report, out / f"{stem}.png")
    atomic_write_text(paths["md"], to_markdown(report, png.name if png else None))
    result = {k: str(v) for k, v in paths.items()}
    if png:
        result["png"] = str(png)
    return result


@dataclass(frozen=True)
class BenchReport:
    """What :func:`edgeport.bench` returns: the report (bench.json's content) with a few accessors."""

    data: dict

    @property
    def rows(self) -> list[dict]:
        """One dict per artifact x engine x threads (see :data:`ROW_KEYS`)."""
        return self.data["rows"]

    @property
    def environment(self) -> dict:
        return self.data["environment"]

    @property
    def files(self) -> dict[str, str]:
        """bench.json/.csv/.md/.png written (empty without ``out``)."""
        return dict(self.data.get("files") or {})

    @property
    def ok(self) -> bool:
        """At least one variant was measured."""
        return any(r["status"] == OK for r in self.rows)

    def row(self, scheme: str, engine: str | None = None, threads: int | None = None) -> dict:
        """The first measured row of ``scheme`` (optionally of one engine / thread count); KeyError if none."""
        for r in self.rows:
            if r["scheme"] == scheme and r["status"] == OK and engine in (None, r["engine"]) \
                    and threads in (None, r["threads"]):
                return r
        raise KeyError(f"no measured row of scheme {scheme!r}" + (f" on {engine}" if engine else "")
                       + (f" with {threads} threads" if threads else ""))

    def table(self) -> str:
        """The terminal table."""
        return format_table(self.rows)

    def to_dict(self) -> dict:
        return self.data
