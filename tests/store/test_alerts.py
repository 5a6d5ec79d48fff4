"""The alerts table on real PostgreSQL (``store.alerts``, migration 0005): each node's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from msgspec.structs import replace

from actors.core.alerting import Alert
from store.alerts import AlertRows

SINCE = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
SETUP = Alert(kind="setup_required", severity="critical", office_id="D1000", message="API2007: revoked", since=SINCE,
              practice_name="Smile Dental")
DB_DOWN = Alert(kind="database_unreachable", severity="critical", office_id=None, message="no answer",
                since=SINCE + timedelta(minutes=1))


async def test_rows_round_trip_per_node(db):
    here, there = AlertRows(db, "node-a"), AlertRows(db, "node-b")
    await here.save([SETUP, DB_DOWN], [])
    assert await here.load() == {SETUP.key: SETUP, DB_DOWN.key: DB_DOWN}  # a global alert: office_id None
    assert await there.load() == {}  # each node its own rows
    await there.save([SETUP], [])
    moved = replace(SETUP, since=SINCE + timedelta(hours=1), message="raised again")
    await here.save([moved], [DB_DOWN.key])
    assert await here.load() == {SETUP.key: moved}
    assert await there.load() == {SETUP.key: SETUP}


async def test_a_kind_this_version_does_not_know_is_dropped_and_severity_is_the_kinds(db, database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO alerts (node_id, kind, office_id, severity, message, since) VALUES"
                     " ('n', 'retired_kind', 'D1000', 'warning', 'm', now()),"
                     " ('n', 'spu_offline', 'D1000', 'critical', 'm', now())")
    loaded = await AlertRows(db, "n").load()
    assert list(loaded) == [("spu_offline", "D1000")] and loaded[("spu_offline", "D1000")].severity == "warning"
