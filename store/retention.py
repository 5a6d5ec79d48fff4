"""Payload retention: a writeback's payload (patient data) is kept for
``SIKKA_PAYLOAD_RETENTION_DAYS`` after the writeback became final, then purged by destroying its
key (crypto-shredding, as at offboarding). The ``writebacks`` row and the events stay; ``replay
--with-payloads`` shows ``[purged]``.

``run`` purges at start and then hourly, in batches; every supervisor may run it (deleting a key
twice is harmless). ``expired_payloads`` is the query: final writebacks completed before the
cutoff whose key still exists.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import structlog
import trio

from actors.core.state import FINAL_STATES
from store.credentials import PAYLOAD_KEY, Credentials
from store.db import Database, DatabaseUnavailable

log = structlog.get_logger("retention")

INTERVAL_S = 3600.0
BATCH = 1000


def cutoff(now: datetime, days: float) -> datetime:
    return now - timedelta(days=days)


def expired_payloads(conn: psycopg.Connection, before: datetime, limit: int = BATCH) -> list[str]:
    rows = conn.execute(
        "SELECT w.writeback_id FROM writebacks w"
        " WHERE w.state = ANY(%s) AND w.completed_at < %s"
        " AND EXISTS (SELECT 1 FROM credentials c WHERE c.kind = %s AND c.owner = w.writeback_id)"
        " ORDER BY w.completed_at LIMIT %s",
        (list(FINAL_STATES), before, PAYLOAD_KEY, limit),
    ).fetchall()
    return [r[0] for r in rows]


async def purge_expired(db: Database, credentials: Credentials, days: float, now: datetime) -> int:
    """Destroy the keys of every payload past the retention; return how many."""
    purged = 0
    while True:
        ids = await db.run(expired_payloads, cutoff(now, days))
        if not ids:
            return purged
        purged += await credentials.purge_payloads(ids)


async def run(db: Database, credentials: Credentials, days: float) -> None:
    while True:
        try:
            purged = await purge_expired(db, credentials, days, datetime.now(UTC))
            if purged:
                log.info("retention.purged", payloads=purged, days=days)
        except DatabaseUnavailable as exc:
            log.warning("retention.failed", error=str(exc))
        await trio.sleep(INTERVAL_S)
