"""The one renderer of the tables edgeport prints (terminal) and writes (markdown).

    text_table(head, rows, right)       # fixed width, two spaces between columns
    markdown_table(head, rows, right)   # GitHub markdown, numbers right-aligned

``right``: per column, True to align right (numbers), else left; None: the
first ``left`` columns left, the rest right. Cells are strings already.
"""

from __future__ import annotations

from typing import Sequence


def _alignment(head: Sequence[str], right: Sequence[bool] | None, left: int) -> list[bool]:
    return list(right) if right is not None else [i >= left for i in range(len(head))]


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None,
               left: int = 3) -> str:
    """A fixed-width table: the header, a rule of dashes, one line per row (trailing blanks removed)."""
    align = _alignment(head, right, left)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if a else c.ljust(w) for c, w, a in zip(cells, widths, align)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None,
                   left: int = 3) -> str:
    """A markdown table ('|' inside a cell escaped)."""
    align = _alignment(head, right, left)

    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "|".join("---:" if a else "---" for a in align) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
