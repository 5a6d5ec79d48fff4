"""``store.db`` and its neighbours against real PostgreSQL faults (the tests' server, one database
per test): every fault is ``DatabaseUnavailable``, waits are bounded, sessions come back.

The whole supervisor under these faults (and worse: restarts, freezes, a relay cutting and
black-holing its connections) is ``tests/faults/test_database_faults.py``.
"""

from __future__ import annotations

import logging
import time

import psycopg
import pytest
import structlog
import trio

from actors.process.logs import DriverLogs
from store import db as database_module
from store import nodelock as nodelock_module
from store.db import RECONNECTED, Database, DatabaseUnavailable, answer_within, is_unavailable, session_name
from store.nodelock import AlreadyRunning, NodeLock
from store.probe import DatabaseProbe

NODE = "dbtest"
IDLE = 0.3  # a pooled session idle this long is checked before a call uses it (see ``fast``)


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    """Sessions checked after 0.2 s idle instead of 2 s, the node lock every 0.3 s: same paths, sooner."""
    monkeypatch.setattr(database_module, "IDLE_CHECK_S", 0.2)
    monkeypatch.setattr(nodelock_module, "CHECK_S", 0.3)


@pytest.fixture
def timed(database_url):
    """A pool as the supervisor has it: calls bounded by a database timeout."""
    database = Database(database_url, max_size=4, timeout=1.0, node=NODE)
    database.open_sync()
    yield database
    database.close_sync()


def terminate(url: str, kind: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (session_name(NODE, kind),),
        ).fetchone()[0]


def read_only(url: str, on: bool) -> None:
    """The database's new sessions read-only (as a standby's), or writable again."""
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute(f"ALTER DATABASE {name} {'SET default_transaction_read_only = on' if on else 'RESET ALL'}")


def test_what_counts_as_the_database_being_away():
    assert is_unavailable(psycopg.OperationalError("connection refused"))
    assert is_unavailable(psycopg.errors.AdminShutdown())
    assert is_unavailable(psycopg.errors.ReadOnlySqlTransaction())
    assert is_unavailable(psycopg.errors.IdleSessionTimeout())
    assert not is_unavailable(psycopg.errors.QueryCanceled())  # our statement's own limit
    assert not is_unavailable(psycopg.errors.UniqueViolation())
    assert not is_unavailable(ValueError())


async def test_a_read_only_server_is_unavailable_not_a_crash(timed, database_url):
    """Regression: ``ReadOnlySqlTransaction`` (a failover to a standby) escaped as an
    ``InternalError`` and ended the process."""
    read_only(database_url, True)
    terminate(database_url, "pool")  # new sessions get the setting …
    await trio.sleep(IDLE)  # … and an idle dead one is replaced before use
    with pytest.raises(DatabaseUnavailable, match="read-only transaction"):
        await timed.run(lambda conn: conn.execute("CREATE TABLE t (x int)"))
    read_only(database_url, False)
    terminate(database_url, "pool")
    await trio.sleep(IDLE)
    await timed.run(lambda conn: conn.execute("CREATE TABLE t (x int)"))


async def test_a_call_without_an_answer_is_abandoned_after_the_timeout(timed):
    began = trio.current_time()
    with pytest.raises(DatabaseUnavailable, match="no answer within 1 s"):
        await timed.run(lambda conn: conn.execute("SELECT pg_sleep(3)"))
    assert trio.current_time() - began < 1.5
    assert await timed.run(lambda conn: conn.execute("SELECT 1").fetchone()[0]) == 1  # others go on


async def test_answer_within_bounds_the_calls_of_a_request_together(timed):
    with answer_within(0.6):
        await trio.sleep(1)  # not the database's time (a Sikka call, say): it does not count
        await timed.run(lambda conn: conn.execute("SELECT pg_sleep(0.4)"))
        began = trio.current_time()
        with pytest.raises(DatabaseUnavailable):
            await timed.run(lambda conn: conn.execute("SELECT pg_sleep(0.4)"))
    assert trio.current_time() - began < 0.35


async def test_sessions_ended_while_idle_are_replaced_without_failing_a_call(timed, database_url):
    """A terminate storm (or idle_session_timeout, or a restart) ends the pool's idle sessions:
    the next calls check them, drop the dead ones and go on."""
    await trio.sleep(IDLE)  # idle long enough to be checked
    for _ in range(2):
        assert terminate(database_url, "pool") >= 1
        assert await timed.run(lambda conn: conn.execute("SELECT 1").fetchone()[0]) == 1
        await trio.sleep(IDLE)


async def test_listen_reconnects_and_says_so(timed, database_url):
    """Regression: a terminated LISTEN session raised out of its thread and ended the process.
    It reconnects now, and yields ``RECONNECTED`` so its reader re-reads what it missed."""
    async with timed.listen("events") as notes:
        assert terminate(database_url, "listen-events") == 1
        with trio.fail_after(10):
            assert await notes.receive() == RECONNECTED
        await timed.run(lambda conn: conn.execute("SELECT pg_notify('events', 'after')"))
        with trio.fail_after(10):
            assert await notes.receive() == "after"


async def test_the_probe_says_why_the_database_is_not_usable(timed, database_url):
    probe = DatabaseProbe(timed)
    assert (await probe.probe_once()).ok and probe.problem() is None
    read_only(database_url, True)
    terminate(database_url, "pool")
    await trio.sleep(IDLE)
    status = await probe.probe_once()
    assert not status.ok and "read-only" in status.detail
    read_only(database_url, False)
    terminate(database_url, "pool")
    await trio.sleep(IDLE)
    assert (await probe.probe_once()).ok


async def test_the_node_lock_is_re_taken_after_its_session_is_lost(database_url):
    lock = NodeLock(database_url, NODE, timeout=1.0)
    lock.take()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lock.keep)
            assert terminate(database_url, "node-lock") == 1
            with trio.fail_after(15):
                while lock.retaken == 0:
                    await trio.sleep(0.1)
            with pytest.raises(AlreadyRunning):  # held again: a second run with this node id is refused
                NodeLock(database_url, NODE).take()
            nursery.cancel_scope.cancel()
    finally:
        lock.close()


async def test_the_node_lock_taken_by_another_process_ends_keep(database_url):
    lock = NodeLock(database_url, NODE, timeout=1.0)
    lock.take()
    other = NodeLock(database_url, NODE)
    raised: list[BaseException] = []
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lock.keep)
            assert terminate(database_url, "node-lock") == 1
            deadline = time.monotonic() + 5
            while True:  # the terminated backend lets go a moment later
                try:
                    other.take()
                    break
                except AlreadyRunning:
                    assert time.monotonic() < deadline
                    await trio.sleep(0.02)
            with trio.fail_after(15):
                await trio.sleep_forever()
    except* AlreadyRunning as group:
        raised = list(group.exceptions)
    finally:
        other.close()
        lock.close()
    assert [str(e) for e in raised] == [
        f"another sikka-supervisor with SIKKA_NODE_ID={NODE!r} is already running on this database"
    ]


def test_driver_logs_are_one_line_each_and_rate_limited():
    """Regression: psycopg_pool printed 44 multi-line, non-JSON messages to stderr during an
    outage. Each record is one line of ours now, and repeats are held back (and counted)."""
    now = [0.0]
    logger = logging.getLogger("psycopg.pool.test")
    logger.handlers, logger.propagate = [DriverLogs(every=30, clock=lambda: now[0])], False
    with structlog.testing.capture_logs() as lines:
        for second in range(0, 90, 3):
            now[0] = second
            logger.warning("error connecting in %r: %s", "pool", "connection failed: refused\nIs the server running?")
    assert [line["message"] for line in lines] == ["error connecting in 'pool': connection failed: refused"] * 3
    assert [line.get("held_back") for line in lines] == [None, 9, 9]
