"""PgEventStore on real PostgreSQL: group commit (a group held at the append lock, which another
session holds, while callers are cancelled; a group whose connection dies; one NOTIFY per group)
the stream tails it keeps and the projection rows' columns."""

from __future__ import annotations

import json
from contextlib import contextmanager

import msgspec
import psycopg
import psycopg.rows
import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from actors.core import events as ev
from bench.workload import EPOCH, practice_streams
from store import projections as proj
from store.db import DatabaseUnavailable
from store.locks import APPEND_LOCK
from store.eventlog import ConcurrencyError
from store.pglog import PgEventStore, _Batch


def registered(office_id: str) -> ev.Event:
    return ev.PracticeRegistered(at=EPOCH, office_id=office_id, practice_name="Smile")


@contextmanager
def append_lock_held(database_url: str):
    """Another session holds the append lock: a group commit waits for it, in its worker thread."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", APPEND_LOCK)
        held = True

        def release():
            nonlocal held
            if held:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", APPEND_LOCK)
                held = False

        yield release
        release()


async def until(condition) -> None:
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.01)


class Appends:
    """Appends of one event to stream ``practice-<name>``, each task in a cancel scope of its own."""

    def __init__(self, store: PgEventStore, nursery: trio.Nursery):
        self.store = store
        self.nursery = nursery
        self.scopes: dict[str, trio.CancelScope] = {}
        self.results: dict[str, object] = {}

    async def start(self, *names: str) -> None:
        """Each append started once the previous one is in the group commit's hands."""
        for name in names:
            committed = self.store.group_commit.committed + self.store.group_commit.queued
            self.nursery.start_soon(self._append, name)
            await until(lambda: self.store.group_commit.committed + self.store.group_commit.queued > committed)

    async def _append(self, name: str, version: int = 0) -> None:
        with trio.CancelScope() as scope:
            self.scopes[name] = scope
            try:
                self.results[name] = await self.store.append(f"practice-{name}", version, [registered(name)])
            except DatabaseUnavailable as exc:
                self.results[name] = exc
            await trio.sleep(0)
        if scope.cancelled_caught:
            self.results.setdefault(name, "cancelled")


async def test_cancelled_callers_lose_or_half_write_nothing(db, database_url):
    store = PgEventStore(db)
    with append_lock_held(database_url) as release:
        async with trio.open_nursery() as nursery:
            appends = Appends(store, nursery)
            await appends.start("A")  # its group waits for the lock, in a worker thread
            await appends.start("B")  # the second commit in flight, waiting too
            await appends.start("C", "D")
            assert store.group_commit.queued == 2
            appends.scopes["C"].cancel()  # not taken yet: leaves the queue
            appends.scopes["A"].cancel()  # taken: cannot be withdrawn
            await wait_all_tasks_blocked()
            assert appends.results == {"C": "cancelled"} and store.group_commit.queued == 1
            await trio.to_thread.run_sync(release)
    assert appends.results == {"A": 1, "B": 1, "C": "cancelled", "D": 1}  # A learnt its version
    log = await store.read_all()
    assert [(r.position, r.stream_id) for r in log] == [(1, "practice-A"), (2, "practice-B"), (3, "practice-D")]
    assert (store.group_commit.groups, store.group_commit.committed) == (3, 3)


async def test_a_group_whose_connection_dies_fails_each_caller_and_writes_nothing(db, database_url):
    store = PgEventStore(db)
    for name in "ABC":
        await store.append(f"practice-{name}", 0, [registered(name)])
    groups = store.group_commit.groups
    with append_lock_held(database_url) as release:
        async with trio.open_nursery() as nursery:
            appends = Appends(store, nursery)
            for name in "ABC":  # the streams' tails are known: nothing to read first, one tick, two groups
                nursery.start_soon(appends._append, name, 1)
            await until(lambda: store.group_commit.committed == 6)
            with psycopg.connect(database_url, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE '%sikka_commit_group%' AND pid <> pg_backend_pid()"
                ).fetchall()
            assert killed == [(True,)] * (store.group_commit.groups - groups) == [(True,)] * 2
        release()
    errors = [appends.results[name] for name in "ABC"]
    assert all(isinstance(e, DatabaseUnavailable) for e in errors) and len({id(e) for e in errors}) == 3
    assert await store.last_position() == 3
    assert await store.append("practice-A", 1, [registered("A")]) == 2  # the next group commits


@pytest.mark.parametrize(("writers", "depth"), [(1, 2), (12, 1), (12, 2)])
async def test_one_notify_per_group(db, database_url, writers, depth):
    store = PgEventStore(db)
    store.group_commit.depth = depth
    streams = [f"practice-N{n}" for n in range(writers)]
    for stream in streams:
        await store.append(stream, 0, [registered(stream[9:])])
    groups = store.group_commit.groups
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN events")
        async with trio.open_nursery() as nursery:
            for stream in streams:  # tails known: one tick, one group per commit slot
                nursery.start_soon(store.append, stream, 1, [registered(stream[9:]), registered(stream[9:])])
        notes = [int(n.payload) for n in listener.notifies(timeout=0.5)]
    assert store.group_commit.groups == groups + min(writers, depth)
    assert len(notes) == min(writers, depth) and notes[-1] == 3 * writers  # once a group, with the log's head
    assert notes == sorted(notes)


async def test_only_the_tails_of_the_streams_appended_to_last_are_kept(db):
    store = PgEventStore(db)
    store.tails_kept = 2
    reads = []
    read_tail = store._read_tail
    store._read_tail = lambda conn, stream, office: reads.append(stream) or read_tail(conn, stream, office)
    for name in "ABC":
        await store.append(f"practice-{name}", 0, [registered(name)])
    reads.clear()
    await store.append("practice-C", 1, [registered("C")])
    await store.append("practice-B", 1, [registered("B")])
    assert reads == []  # kept
    await store.append("practice-A", 1, [registered("A")])
    assert reads == ["practice-A"]  # forgotten, read again: the append is the same
    assert [r.stream_id for r in await store.read_all()][-3:] == ["practice-C", "practice-B", "practice-A"]
    assert (await store.practice("A")).version == 2


async def test_the_typed_columns_are_the_folds_fields(db, database_url):
    """sikka_commit_group reads a row's columns from the fold it is sent: each column must equal
    what ``store.projections`` computes for the dashboards (and ``store.rebuild`` writes)."""
    store = PgEventStore(db)
    for stream, events in practice_streams(seed=11, practices=2, writebacks_per_practice=15):
        version = 0
        for k in range(0, len(events), 3):
            version = await store.append(stream, version, events[k : k + 3])
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        writebacks = conn.execute("SELECT * FROM writebacks").fetchall()
        practices = conn.execute("SELECT * FROM practices").fetchall()
    assert len(writebacks) == 30 and len(practices) == 2
    as_json = msgspec.json.Decoder()
    for row in writebacks:
        fold = proj.decode_writeback(json.dumps(row.pop("fold")))
        expected = as_json.decode(proj.encode_json({**proj.writeback_record(fold), "fold": None}))
        assert as_json.decode(proj.encode_json({**row, "fold": None})) == expected
    for row in practices:
        fold = proj.decode_practice(json.dumps(row.pop("fold")))
        expected = {**proj.practice_record(fold, row["version"]), "owner": None, "fold": None}
        assert as_json.decode(proj.encode_json({**row, "fold": None})) == as_json.decode(proj.encode_json(expected))


async def test_two_batches_of_one_stream_in_one_call_fail_the_call_and_are_committed_alone(db):
    """GroupCommit never puts a stream twice in a group; were it to, the unique (stream_id,
    version) index fails the call and each batch is appended alone: the first commits, the
    second gets the conflict it would have had alone."""
    store = PgEventStore(db)
    await store.append("practice-T", 0, [registered("T")])
    first, second = [batch_for(store, "practice-T", 1, [registered("T")]) for _ in range(2)]
    outcomes = await store._commit_group([first, second])
    assert outcomes[0].unwrap() == 2
    with pytest.raises(ConcurrencyError) as stale:
        outcomes[1].unwrap()
    assert (stale.value.expected, stale.value.actual) == (1, 2)
    assert [r.version for r in await store.read_stream("practice-T")] == [1, 2]


def batch_for(store: PgEventStore, stream: str, expected: int, events: list) -> _Batch:
    """The batch ``append`` would submit for ``events`` after the store's own last append."""
    tail = store._tails[stream]
    practice, changed = proj.project(tail.practice, stream[9:], events, tail.open)
    return _Batch(stream, expected, expected + len(events), events, practice.state, practice, list(changed.values()), [])
