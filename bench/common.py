"""What every benchmark shares: quiet logs on stderr and ``name: value`` output lines."""

from __future__ import annotations

import logging
import sys
from collections import Counter

from actors.process import logs


def quiet_logs() -> None:
    """Warnings and errors only, on stderr: stdout carries nothing but ``name: value`` lines."""
    logs.configure("console", level=logging.WARNING, stream=sys.stderr)


def line(name: str, value) -> str:
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, float):
        value = f"{value:.3f}"
    return f"{name}: {value}"


def parse_lines(text: str) -> dict[str, str]:
    """``name: value`` lines back into a dict (the figures table, the tests)."""
    out = {}
    for raw in text.splitlines():
        name, sep, value = raw.partition(": ")
        if not sep or not name or " " in name:
            raise ValueError(f"not a 'name: value' line: {raw!r}")
        out[name] = value
    return out


def count_requests(sim) -> Counter:
    """Count every request the simulator answers, by ``METHOD /path`` (each page is one)."""
    counts: Counter = Counter()
    handle = sim.handle

    def counting(method, target, headers, body=b"", *args, **kwargs):
        counts[f"{method} {target.split('?', 1)[0]}"] += 1
        return handle(method, target, headers, body, *args, **kwargs)

    sim.handle = counting
    return counts
