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
from actors.core.state import Practice, Writeback
from bench.workload import EPOCH, practice_streams
from store import migrate
from store import projections as proj
from store.db import Database, DatabaseUnavailable
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


async def test_a_column_at_its_default_is_filled_from_the_state_defaults(db, database_url):
    """Folds leave out the fields at their defaults (``omit_defaults``): sikka_commit_group fills
    those columns with ``actors.core.state``'s defaults, so a queued writeback of a practice never
    registered gets the same row as ``store.rebuild`` writes for it."""
    store = PgEventStore(db)
    request = ev.WritebackRequested(
        at=EPOCH, writeback_id="w-default", operation="create_patient", payload="x", deadline_at=EPOCH
    )
    await store.append("practice-UNREG", 0, [request])
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute("SELECT * FROM writebacks WHERE writeback_id = 'w-default'").fetchone()
        practice = conn.execute("SELECT * FROM practices WHERE office_id = 'UNREG'").fetchone()
    fold = proj.decode_writeback(json.dumps(row.pop("fold")))
    assert {"state", "retryable", "attempts", "checks"}.isdisjoint(json.loads(proj.encode_json(fold)))
    assert (row["state"], row["retryable"], row["attempts"], row["checks"], row["seq"]) == ("queued", False, 0, 0, 1)
    expected = msgspec.json.decode(proj.encode_json({**proj.writeback_record(fold), "fold": None}))
    assert msgspec.json.decode(proj.encode_json({**row, "fold": None})) == expected
    summary = proj.decode_practice(json.dumps(practice.pop("fold")))
    assert "practice_name" not in json.loads(proj.encode_json(summary)) and practice["practice_name"] == ""


def every_default(cls) -> dict:
    """The fields of a state struct at their defaults, as JSON (what ``omit_defaults`` leaves out)."""
    fields = msgspec.inspect.type_info(cls).fields
    return {
        f.encode_name: msgspec.to_builtins(f.default if f.default_factory is msgspec.NODEFAULT else f.default_factory())
        for f in fields
        if f.default is not msgspec.NODEFAULT or f.default_factory is not msgspec.NODEFAULT
    }


async def test_folds_stored_before_0007_lose_the_fields_at_their_defaults(db, database_url):
    """0007 rewrites the folds stored in full by an earlier release into the form appends now
    store, so a rebuild (or the restore drill) finds them equal; its default documents are the
    state's defaults."""
    store = PgEventStore(db)
    for stream, events in practice_streams(seed=12, practices=2, writebacks_per_practice=6):
        await store.append(stream, 0, events)
    tables = {"practices": ("office_id", Practice), "writebacks": ("writeback_id", Writeback)}

    def folds(conn):
        return {t: dict(conn.execute(f"SELECT {key}, fold FROM {t}").fetchall()) for t, (key, _) in tables.items()}

    with psycopg.connect(database_url, autocommit=True) as conn:
        stored = folds(conn)
        for table, (_, cls) in tables.items():  # as a release before 0007 stored them: every field
            conn.execute(f"UPDATE {table} SET fold = %s::jsonb || fold", (json.dumps(every_default(cls)),))
        full = folds(conn)
        conn.execute("DELETE FROM schema_migrations WHERE version = 7")
        assert migrate.apply(conn) == ["0007_short_lock.sql"]
        assert folds(conn) == stored
    assert all(len(full[t][k]) > len(stored[t][k]) for t in tables for k in stored[t])
    assert len(stored["writebacks"]) == 12


async def test_the_append_lock_is_taken_after_the_projections_are_written(db, database_url):
    """A group holds the append lock for its events alone: while another session holds it, the
    group's transaction has already written its practices and writebacks rows, not its events."""
    store = PgEventStore(db)
    await store.append("practice-L", 0, [registered("L")])
    with append_lock_held(database_url) as release:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.append, "practice-L", 1, [registered("L")])
            with psycopg.connect(database_url, autocommit=True) as admin:
                query = (
                    "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                    " JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE a.query LIKE '%%sikka_commit_group%%' AND a.wait_event = 'advisory'"
                    " AND l.granted AND l.mode = 'RowExclusiveLock' AND c.relkind = 'r' ORDER BY 1"
                )
                with trio.fail_after(10):
                    while not (tables := admin.execute(query).fetchall()):
                        await trio.sleep(0.01)
            assert tables == [("practices",), ("writebacks",)]  # no events yet: they wait for the lock
            release()
    assert [r.version for r in await store.read_stream("practice-L")] == [1, 2]


async def test_two_stores_racing_on_one_stream_one_conflict_and_the_winners_rows(db, database_url):
    """Two processes (here two stores, each with its own pool) appending to one stream at once
    both pass the version check, which runs before the append lock; the second to take the lock
    fails on the unique (stream_id, version) index and its upserts go with it. Tried once more,
    its check sees the winner's events: the conflict it would have had alone. The projections are
    the winner's."""
    first, second = PgEventStore(db), PgEventStore(Database(database_url, max_size=2))
    await second.db.open()
    try:
        await first.append("practice-R", 0, [registered("R")])
        outcomes = {}

        async def append(store, practice_name):
            renamed = ev.PracticeRegistered(at=EPOCH, office_id="R", practice_name=practice_name)
            try:
                outcomes[practice_name] = await store.append("practice-R", 1, [renamed])
            except ConcurrencyError as exc:
                outcomes[practice_name] = ("conflict", exc.actual)

        with append_lock_held(database_url) as release, psycopg.connect(database_url, autocommit=True) as admin:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(append, first, "First")
                await until(lambda: waiting(admin, "advisory") == 1)  # its rows written, at the lock
                nursery.start_soon(append, second, "Second")
                await until(lambda: waiting(admin, "transactionid") == 1)  # at the first's practice row
                release()
        assert outcomes == {"First": 2, "Second": ("conflict", 2)}
        assert [r.version for r in await first.read_stream("practice-R")] == [1, 2]
        row = await second.practice("R")
        assert (row.practice.practice_name, row.version) == ("First", 2)
    finally:
        await second.db.close()


def waiting(admin: psycopg.Connection, event: str) -> int:
    """Sessions in sikka_commit_group waiting on a lock of this kind."""
    return admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%sikka_commit_group%%'"
        " AND wait_event_type = 'Lock' AND wait_event = %s",
        (event,),
    ).fetchone()[0]
