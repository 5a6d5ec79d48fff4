"""Whether the database is usable, known without asking it: a background probe.

``DatabaseProbe.run`` (a task of the supervisor) asks every ``PROBE_S``: one bounded query
(``Database.run``: at most ``SIKKA_DB_TIMEOUT``) for the practice count and whether the server
takes writes. ``status()`` answers at once from what the probe last learned; ``fresh()`` reads the
count again while the database is usable, for at most a moment, so ``GET /health`` is current
and never waits long for the database (interface section 4: within 1 s, whatever it does)::

    last probe answered, server writable           ok (practices: the count served, offboarded not)
    last probe failed                              not ok: its one-line reason
    server read-only (a standby after failover)    not ok: "the database is read-only"
    a probe without an answer for over STALE_S     not ok: "no answer for N s" (a frozen server)

The monitor's ``database_unreachable`` alert reads the same status (``problem()``).
"""

from __future__ import annotations

import msgspec
import psycopg
import structlog
import trio

from store.db import Database, DatabaseUnavailable, answer_within

log = structlog.get_logger("database")

PROBE_S = 1.0  # between two probes
STALE_S = 2.0  # a probe in flight this long means the database is not answering


class DatabaseStatus(msgspec.Struct, frozen=True):
    ok: bool
    detail: str = ""
    practices: int = 0


def probe(conn: psycopg.Connection) -> tuple[int, bool]:
    """(practices served: not offboarded, whether the server refuses writes)."""
    return conn.execute(
        "SELECT (SELECT count(*) FROM practices WHERE state <> 'offboarded'),"
        " current_setting('transaction_read_only') = 'on'"
    ).fetchone()


def _status(practices: int, read_only: bool) -> DatabaseStatus:
    detail = "the database is read-only (a standby?): writes are refused" if read_only else ""
    return DatabaseStatus(ok=not read_only, detail=detail, practices=practices)


class DatabaseProbe:
    def __init__(self, db: Database, *, period: float = PROBE_S):
        self.db = db
        self.period = period
        self.probes = 0
        self._last = DatabaseStatus(ok=False, detail="not probed yet")
        self._in_flight_since: float | None = None  # trio time

    def status(self) -> DatabaseStatus:
        """What the probe last learned (never waits)."""
        if self._in_flight_since is not None:
            waited = trio.current_time() - self._in_flight_since
            if waited > STALE_S:
                return DatabaseStatus(ok=False, detail=f"the database has not answered for {waited:.0f} s")
        return self._last

    async def fresh(self, within: float) -> DatabaseStatus:
        """The status with the count read now while the database is usable (for at most
        ``within`` seconds), else what the probe last learned: ``/health``'s answer."""
        status = self.status()
        if not status.ok:
            return status
        try:
            with answer_within(within):
                practices, read_only = await self.db.run(probe)
        except DatabaseUnavailable:
            return status
        return _status(practices, read_only)

    def problem(self) -> str | None:
        """Why the database is not usable now, or ``None``."""
        status = self.status()
        return None if status.ok else status.detail

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self.probe_once()
        task_status.started()
        while True:
            await trio.sleep(self.period)
            await self.probe_once()

    async def probe_once(self) -> DatabaseStatus:
        self._in_flight_since = trio.current_time()
        try:
            practices, read_only = await self.db.run(probe)
        except DatabaseUnavailable as exc:
            status = DatabaseStatus(ok=False, detail=str(exc))
        else:
            status = _status(practices, read_only)
        finally:
            self._in_flight_since = None
        if status.ok != self._last.ok and self.probes:
            if status.ok:
                log.info("database.available")
            else:
                log.warning("database.unavailable", detail=status.detail)
        self._last = status
        self.probes += 1
        return status
