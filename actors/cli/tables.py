"""Plain text for people: tables fitted to 80 columns, aligned ``name  value`` details, short times.

``table`` lays out left-aligned columns (numbers right-aligned), two spaces apart; when the rows
are wider than ``WIDTH`` the columns that may shrink give way first (cells cut with ``…``), then
any column. The renderers (``actors.cli.render``) build on these three functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

WIDTH = 80


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, shrink: Sequence[str] = (), width: int = WIDTH) -> str:
    """Left-aligned text columns (numbers right-aligned), two spaces apart, at most ``width``
    wide: the widest column named in ``shrink`` (default: the last) gives way first."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    gaps = 2 * (len(headers) - 1)
    # first the columns that may shrink, down to their header; then, if need be, any column
    for columns, floor in (
        ([headers.index(h) for h in shrink] or [len(headers) - 1], lambda k: max(len(headers[k]), 4)),
        (range(len(headers)), lambda k: 3),
    ):
        while sum(widths) + gaps > width:
            i = max(columns, key=lambda k: widths[k] - floor(k))
            if widths[i] <= floor(i):
                break
            widths[i] -= 1
    right = [
        any(row[i] for row in cells) and all(_is_number(row[i]) or not row[i] for row in cells)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            cut(v, w).rjust(w) if r else cut(v, w).ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers))] + [line(row) for row in cells])


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).replace("%", "", 1).isdigit()


def details(pairs: Iterable[tuple[str, Any]]) -> str:
    """``name  value`` lines, names aligned."""
    pairs = [(k, "-" if v is None or v == "" else str(v)) for k, v in pairs]
    pad = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(pad)}  {v}" for k, v in pairs)


def when(value: str | None) -> str | None:
    """``2026-03-10T09:00:12.345Z`` → ``2026-03-10 09:00``."""
    return value[:16].replace("T", " ") if value else None
