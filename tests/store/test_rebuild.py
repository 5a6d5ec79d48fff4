"""A rebuild of the projections equals the live ones after a concurrent, conflicting workload in
which one writer is killed in the middle of its transaction, and after a real supervisor's run
whose log holds only the status checks that changed something (a thinned history)."""

from __future__ import annotations

import random
import sys
import textwrap

import psycopg
import trio

from bench.processes import Sim, Supervisor, bookings
from bench.workload import practice_streams
from store.eventlog import ConcurrencyError
from store.pglog import PgEventStore
from store.rebuild import rebuild
from tests.support.processes import submit_all, wait_all_final

KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys, psycopg
    conn = psycopg.connect(sys.argv[1])
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (0x5155, 1))
    conn.execute(
        "INSERT INTO events (position, stream_id, version, type, data)"
        " VALUES ((SELECT coalesce(max(position), 0) + 1 FROM events), 'practice-KILLED', 1, 'practice_paused',"
        " '{\\"type\\":\\"practice_paused\\",\\"at\\":\\"2026-01-01T00:00:00Z\\"}')"
    )
    print("inside", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def table(conn, name):
    return sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr)


async def test_rebuild_equals_live_after_concurrent_workload(db, database_url):
    store = PgEventStore(db)
    rng = random.Random(11)
    streams = list(practice_streams(seed=5, practices=12, writebacks_per_practice=8))
    conflicts = 0

    async def writer(stream, events):
        nonlocal conflicts
        version = 0
        k = 0
        while k < len(events):
            size = rng.randint(1, 6)
            if rng.random() < 0.2:  # a stale writer racing the real one
                try:
                    await store.append(stream, max(0, version - 1), events[k : k + size])
                except ConcurrencyError:
                    conflicts += 1
                    continue
                if version == 0:  # at version 0 the "stale" version was right: it wrote
                    version += len(events[k : k + size])
                    k += size
                    continue
            version = await store.append(stream, version, events[k : k + size])
            k += size
            await trio.sleep(0)

    async def killed_writer():
        proc = await trio.run_process(
            [sys.executable, "-c", KILLED_WRITER, database_url], capture_stdout=True, check=False
        )
        assert proc.returncode == -9 and b"inside" in proc.stdout

    async with trio.open_nursery() as nursery:
        nursery.start_soon(killed_writer)
        for stream, events in streams:
            nursery.start_soon(writer, stream, events)

    assert conflicts > 0
    assert await store.read_stream("practice-KILLED") == []
    total = sum(len(e) for _, e in streams)
    assert await store.last_position() == total

    before = db.call(lambda c: (table(c, "practices"), table(c, "writebacks")))
    report = db.call(rebuild)
    after = db.call(lambda c: (table(c, "practices"), table(c, "writebacks")))
    assert report.events == total and report.differences == 0
    assert report.practices == 12 and len(after[1]) == report.writebacks
    assert after == before


async def test_rebuild_repairs_a_damaged_projection(db):
    store = PgEventStore(db)
    stream, events = next(practice_streams(seed=2, practices=1, writebacks_per_practice=4))
    await store.append(stream, 0, events)
    good = db.call(lambda c: table(c, "writebacks"))
    db.call(lambda c: c.execute("UPDATE writebacks SET state = 'queued', attempts = 99"))
    db.call(lambda c: c.execute("DELETE FROM practices"))
    report = db.call(rebuild)
    assert report.differences > 0
    assert db.call(lambda c: table(c, "writebacks")) == good
    assert (await store.practice("D1000")).version == len(events)


def test_a_thinned_history_replays_and_rebuilds_to_the_live_projection(tmp_path, database_url):
    """A real supervisor confirms bookings that Sikka finishes 8–12 s after acceptance: several
    checks each, of which the log records only those that changed something. The log holds no
    noted check, each writeback's recorded events carry the count of every check, and a rebuild
    of the projections from the log equals the live ones (``checks`` included)."""
    sim = Sim(tmp_path, 2, "--writeback-delay", "8:12")
    supervisor = Supervisor(tmp_path, sim, database_url)
    try:
        supervisor.start()
        work = bookings(sim, ["D1000", "D1001"], 3)
        ids = submit_all(supervisor, work)
        wait_all_final(supervisor, ids, timeout=90)
        assert supervisor.terminate() == 0
    finally:
        if supervisor.proc is not None and supervisor.proc.poll() is None:
            supervisor.kill9()
        sim.stop()
    with psycopg.connect(database_url, autocommit=True) as conn:
        types = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
        rows = conn.execute("SELECT writeback_id, state, checks FROM writebacks").fetchall()
        completed = conn.execute(
            "SELECT data->>'writeback_id', (data->>'checks')::int FROM events WHERE type = 'writeback_completed'"
        ).fetchall()
        before = (table(conn, "practices"), table(conn, "writebacks"))
        report = rebuild(conn)
        after = (table(conn, "practices"), table(conn, "writebacks"))
    assert "check_noted" not in types and "status_read_planned" not in types
    assert len(rows) == 6 and {state for _, state, _ in rows} == {"completed"}
    assert types["status_checked"] <= 6  # the check that found each done and asked for created_id
    carried = dict(completed)
    assert all(checks == carried[wid] and checks >= 3 for wid, _, checks in rows)  # 2 s apart for 8+ s
    assert report.differences == 0 and after == before
