"""Plain text for people: tables sized to the terminal, aligned ``name  value`` details, short times.

``table`` lays out left-aligned columns (numbers right-aligned), two spaces apart, at most
``width`` wide (``terminal_width()``: the terminal's columns, 80 when stdout is not a terminal;
``None``: as wide as the rows are, ``--wide``). Nothing is ever cut: a table too wide first
drops its least important columns (``drop``, in order), then moves long text columns under
their row (``below``: an error, as ``error: …`` on lines of its own), then wraps the columns
that may wrap (``wrap``: names, conditions, messages) over several lines. States, codes and ids
are never wrapped or cut; a table that still does not fit runs wider than the terminal. The renderers
(``actors.cli.render``) build on these functions.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

WIDTH = 80  # when stdout is not a terminal
GAP = 2
WRAP_FLOOR = 8  # a wrapped column keeps at least this many characters a line


def terminal_width() -> int:
    """The terminal's width (``COLUMNS`` when set), 80 when stdout is not a terminal."""
    return shutil.get_terminal_size((WIDTH, 24)).columns


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, width: int | None = WIDTH,
    drop: Sequence[str] = (), below: Sequence[str] = (), wrap: Sequence[str] = (),
) -> str:
    """The rows under ``headers`` within ``width`` (see the module docstring)."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    keep = list(range(len(headers)))

    def natural(i: int) -> int:
        return max([len(headers[i])] + [len(row[i]) for row in cells])

    def total(widths: dict[int, int]) -> int:
        return sum(widths.values()) + GAP * (len(widths) - 1)

    widths = {i: natural(i) for i in keep}
    for name in drop if width is not None else ():
        if total(widths) <= width:
            break
        widths.pop(headers.index(name))
    moved = []
    for name in below if width is not None else ():
        if total(widths) <= width:
            break
        moved.append(headers.index(name))
        widths.pop(headers.index(name))
    wrapping = [headers.index(name) for name in wrap if headers.index(name) in widths]
    while width is not None and total(widths) > width and wrapping:
        i = max(wrapping, key=lambda k: widths[k])
        floor = max(len(headers[i]), WRAP_FLOOR)
        if widths[i] <= floor:
            break
        widths[i] = max(floor, widths[i] - (total(widths) - width))
    for i in wrapping:  # a word is never split: the column is as wide as its longest word
        widths[i] = max([widths[i]] + [len(word) for row in cells for word in row[i].split()])
    columns = sorted(widths)
    right = {
        i: any(row[i] for row in cells) and all(_is_number(row[i]) or not row[i] for row in cells) for i in columns
    }

    def lines(values: Sequence[str]) -> list[str]:
        wrapped = {i: _wrap(values[i], widths[i]) or [""] for i in columns}
        out = []
        for n in range(max(len(w) for w in wrapped.values())):
            parts = []
            for i in columns:
                text = wrapped[i][n] if n < len(wrapped[i]) else ""
                parts.append(text.rjust(widths[i]) if right[i] else text.ljust(widths[i]))
            out.append((" " * GAP).join(parts).rstrip())
        indent = " " * (widths[columns[0]] + GAP)
        for i in moved if values is not headers else ():
            if values[i]:
                text = f"{headers[i].lower()}: {values[i]}"
                out += _wrap(text, max(width, len(indent) + WRAP_FLOOR), initial_indent=indent,
                             subsequent_indent=indent + "  ")
        return out

    return "\n".join(line for values in [headers, *cells] for line in lines(values))


def _wrap(text: str, width: int, **indents) -> list[str]:
    """``text`` over lines of at most ``width``; a word longer than that runs over (never split)."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False, **indents)


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
