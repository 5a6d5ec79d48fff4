"""Real processes for the scale and recovery benchmarks: a database, ``sikka-sim``, ``sikka-supervisor run``.

The process wrappers are the end-to-end tests' (``tests/e2e/test_processes.py``: ``Sim``,
``Supervisor``); this module adds the database (embedded PostgreSQL in a temporary directory,
or a fresh database on ``DATABASE_URL``'s server), the supervisor's resource figures from
``/proc`` and its ``loop.lag`` log lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from store import embedded, migrate

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str, Path]]:
    """(admin URL of a PostgreSQL server, a temporary directory for the run)."""
    with tempfile.TemporaryDirectory(prefix="sikka-bench-") as tmp:
        admin_url = os.environ.get("DATABASE_URL")
        if admin_url:
            yield admin_url, Path(tmp)
            return
        url = embedded.start(Path(tmp) / "pg")
        try:
            yield url, Path(tmp)
        finally:
            embedded.stop_if_last()


def fresh_database(admin_url: str, name: str) -> str:
    """Drop and create ``name``, migrate it; its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(admin_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.apply(conn)
    return url


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``/proc/PID/statm``)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def loop_lag_reports(log: Path) -> list[dict]:
    """The supervisor's ``loop.lag`` log lines (JSON log format), oldest first."""
    out = []
    for raw in log.read_text().splitlines():
        if '"loop.lag"' in raw:
            with contextlib.suppress(ValueError):
                out.append(json.loads(raw))
    return out
