"""The event-store contract, run against both stores (PostgreSQL and in-memory)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import trio

from actors.core import events as ev
from actors.core.state import fold, empty
from bench.workload import EPOCH, practice_streams, writeback_lifecycle
from store.eventlog import ConcurrencyError, DuplicateIdempotencyKey
from store.memory import MemoryEventStore
from store.pglog import PgEventStore


@pytest.fixture(params=["memory", "postgres"])
def store(request):
    if request.param == "memory":
        return MemoryEventStore()
    return PgEventStore(request.getfixturevalue("db"))


def registered(office_id: str, minutes: int = 0) -> ev.Event:
    return ev.PracticeRegistered(at=EPOCH + timedelta(minutes=minutes), office_id=office_id, practice_name="Smile")


async def test_round_trip(store):
    stream, events = next(practice_streams(seed=1, practices=1, writebacks_per_practice=3))
    assert await store.append(stream, 0, events[:2]) == 2
    assert await store.append(stream, 2, events[2:]) == len(events)
    recorded = await store.read_stream(stream)
    assert [r.event for r in recorded] == events
    assert [r.version for r in recorded] == list(range(1, len(events) + 1))
    assert [r.position for r in recorded] == list(range(1, len(events) + 1))
    assert all(r.stream_id == stream for r in recorded)
    assert [r.event for r in await store.read_all()] == events
    assert await store.last_position() == len(events)


async def test_read_from_version_and_after_position(store):
    await store.append("practice-A", 0, [registered("A", m) for m in range(5)])
    await store.append("practice-B", 0, [registered("B", m) for m in range(3)])
    tail = await store.read_stream("practice-A", from_version=4)
    assert [r.version for r in tail] == [4, 5]
    assert [r.position for r in await store.read_all(after_position=6, limit=1)] == [7]
    assert await store.read_stream("practice-none") == []


async def test_read_writeback_is_one_writebacks_events_in_order(store):
    """The console's timeline: only that writeback's events, of that practice's stream, in order."""
    rng = random.Random(3)
    first = writeback_lifecycle(rng, "wb-1", EPOCH)
    second = writeback_lifecycle(rng, "wb-2", EPOCH)
    await store.append("practice-A", 0, [registered("A")])
    await store.append("practice-A", 1, [e for pair in zip(first, second) for e in pair])
    await store.append("practice-B", 0, [registered("B"), *writeback_lifecycle(rng, "wb-3", EPOCH)])
    read = await store.read_writeback("A", "wb-1")
    assert [r.event for r in read] == first[: len(second)]
    assert [r.version for r in read] == sorted(r.version for r in read)
    assert await store.read_writeback("A", "wb-3") == []
    assert await store.read_writeback("B", "wb-3") != []


async def test_stream_heads_since_a_position(store):
    await store.append("practice-A", 0, [registered("A", m) for m in range(2)])
    await store.append("practice-B", 0, [registered("B")])
    await store.append("practice-A", 2, [registered("A", 3)])
    assert await store.stream_heads_since(0) == (4, {"practice-A": 3, "practice-B": 1})
    assert await store.stream_heads_since(2) == (4, {"practice-A": 3, "practice-B": 1})
    assert await store.stream_heads_since(3) == (4, {"practice-A": 3})
    assert await store.stream_heads_since(4) == (4, {})


async def test_stale_writer_gets_a_conflict_and_writes_nothing(store):
    await store.append("practice-A", 0, [registered("A")])
    with pytest.raises(ConcurrencyError, match="expected version 0, but it is at version 1"):
        await store.append("practice-A", 0, [registered("A", 1), registered("A", 2)])
    with pytest.raises(ConcurrencyError):
        await store.append("practice-A", 5, [registered("A", 1)])
    assert len(await store.read_stream("practice-A")) == 1
    assert await store.last_position() == 1


async def test_two_concurrent_appends_at_one_version_one_conflict(store):
    await store.append("practice-A", 0, [registered("A")])
    outcomes = []

    async def writer(n):
        try:
            await store.append("practice-A", 1, [registered("A", n), registered("A", n + 1)])
            outcomes.append("ok")
        except ConcurrencyError:
            outcomes.append("conflict")

    async with trio.open_nursery() as nursery:
        for n in range(2):
            nursery.start_soon(writer, n * 10)
    assert sorted(outcomes) == ["conflict", "ok"]
    assert [r.version for r in await store.read_stream("practice-A")] == [1, 2, 3]


async def test_concurrent_writers_positions_gap_free_in_commit_order(store):
    """Many writers, appends of 1–3 events, gathered into group commits; a reader tailing
    ``position > last`` sees every position exactly once, in order, never one past a gap."""
    streams = [f"practice-W{n}" for n in range(32)]
    appends_each = 12
    seen: list[int] = []
    done = trio.Event()

    async def writer(stream):
        version = 0
        for k in range(appends_each):
            batch = [registered(stream[9:], k * 3 + j) for j in range(1 + (k + len(stream)) % 3)]
            version = await store.append(stream, version, batch)

    async def reader():
        last = 0
        while True:
            finished = done.is_set()  # before the read: a read begun earlier may miss the last commits
            batch = await store.read_all(after_position=last)
            assert [r.position for r in batch] == list(range(last + 1, last + 1 + len(batch)))
            seen.extend(r.position for r in batch)
            last = seen[-1] if seen else 0
            if finished and not batch:
                return
            await trio.sleep(0)

    async with trio.open_nursery() as outer:
        outer.start_soon(reader)
        async with trio.open_nursery() as nursery:
            for stream in streams:
                nursery.start_soon(writer, stream)
        done.set()
    total = await store.last_position()
    assert seen == list(range(1, total + 1))
    versions: dict[str, int] = {}
    for r in await store.read_all():
        assert r.version == versions.get(r.stream_id, 0) + 1  # each stream's events in order
        versions[r.stream_id] = r.version
    assert store.group_commit.committed == len(streams) * appends_each
    assert store.group_commit.groups < store.group_commit.committed / 4  # they went in groups


def another_writer(store):
    """A second writer on the same log: another supervisor's store in PostgreSQL (its cached
    stream tails go stale), the very store in memory."""
    return PgEventStore(store.db) if isinstance(store, PgEventStore) else store


async def appended_in_one_group(store, appends: list[tuple[str, int, list]]) -> dict[str, object]:
    """Each (stream, expected version, events) appended by a task of its own, all in one tick;
    the new version, or the error, per stream."""
    results: dict[str, object] = {}

    async def append(stream, expected, events):
        try:
            results[stream] = await store.append(stream, expected, events)
        except (ConcurrencyError, DuplicateIdempotencyKey) as exc:
            results[stream] = exc

    store.group_commit.depth = 1  # one group (with a second commit slot free, half would go in another)
    groups = store.group_commit.groups
    async with trio.open_nursery() as nursery:
        for stream, expected, events in appends:
            nursery.start_soon(append, stream, expected, events)
    assert store.group_commit.groups == groups + 1
    return results


async def test_a_stale_stream_inside_a_group_fails_alone_and_the_others_commit(store):
    streams = [f"practice-G{n}" for n in range(6)]
    for stream in streams:
        await store.append(stream, 0, [registered(stream[9:])])
    await another_writer(store).append("practice-G3", 1, [registered("G3", 9)])
    results = await appended_in_one_group(
        store, [(s, 1, [registered(s[9:], 1), registered(s[9:], 2)]) for s in streams]
    )
    stale = results.pop("practice-G3")
    assert isinstance(stale, ConcurrencyError) and (stale.expected, stale.actual) == (1, 2)
    assert results == {s: 3 for s in streams if s != "practice-G3"}
    assert [r.event for r in await store.read_stream("practice-G3")] == [registered("G3"), registered("G3", 9)]
    log = await store.read_all()
    assert [r.position for r in log] == list(range(1, 6 + 1 + 5 * 2 + 1))
    grouped = [r.stream_id for r in log[7:]]  # the group's batches, each in a row
    assert all(grouped[k] == grouped[k + 1] for k in range(0, 10, 2))


def writeback_request(writeback_id: str, key: str) -> ev.Event:
    return ev.WritebackRequested(
        at=EPOCH, writeback_id=writeback_id, operation="book_appointment", payload="x",
        deadline_at=EPOCH + timedelta(hours=6), idempotency_key=key,
    )


async def test_a_duplicate_idempotency_key_inside_a_group_fails_only_its_own_append(store):
    streams = [f"practice-K{n}" for n in range(4)]
    for stream in streams:
        await store.append(stream, 0, [registered(stream[9:])])
    await store.append("practice-K1", 1, [writeback_request("K1-first", "k")])
    appends = [(s, 2 if s == "practice-K1" else 1, [writeback_request(f"{s[9:]}-w", "k")]) for s in streams]
    appends[3] = ("practice-K3", 1, [writeback_request("K3-a", "k2"), writeback_request("K3-b", "k2")])
    results = await appended_in_one_group(store, appends)
    assert isinstance(results.pop("practice-K1"), DuplicateIdempotencyKey)  # "k" is taken at K1
    within = results.pop("practice-K3")  # "k2" twice in one batch
    assert isinstance(within, DuplicateIdempotencyKey) and within.key == "k2"
    assert results == {"practice-K0": 2, "practice-K2": 2}  # keys are per practice
    assert await store.writeback("K1-w") is None and await store.writeback("K3-a") is None
    assert (await store.writeback_by_idempotency_key("K2", "k")).writeback_id == "K2-w"
    assert len(await store.read_stream("practice-K3")) == 1
    assert [r.position for r in await store.read_all()] == list(range(1, 8))


async def test_projections_follow_the_fold(store):
    stream, events = next(practice_streams(seed=7, practices=1, writebacks_per_practice=12))
    version = 0
    for k in range(0, len(events), 5):
        version = await store.append(stream, version, events[k : k + 5])
    live = fold(empty("D1000"), events)
    row = await store.practice("D1000")
    assert row.version == len(events)
    assert row.practice.state == live.state and row.practice.practice_name == "Practice 0"
    assert row.practice.finished == live.finished
    requested = [e for e in events if isinstance(e, ev.WritebackRequested)]
    listed = await store.writebacks("D1000", limit=500)
    assert {w.writeback_id for w in listed} == {e.writeback_id for e in requested}
    assert [w.requested_at for w in listed] == sorted((w.requested_at for w in listed), reverse=True)
    by_final = {}
    for w in listed:
        by_final[w.state] = by_final.get(w.state, 0) + 1
    assert {k: v for k, v in by_final.items() if k in live.finished} == live.finished
    first = requested[0]
    wb = await store.writeback(first.writeback_id)
    assert wb.operation == first.operation and wb.seq == 1
    if first.idempotency_key:
        assert (await store.writeback_by_idempotency_key("D1000", first.idempotency_key)) == wb


async def test_writebacks_listing_filters_and_pages(store):
    rng = random.Random(3)
    events = []
    for k in range(6):
        events += writeback_lifecycle(rng, f"wb-{k}", EPOCH + timedelta(hours=k))[:1]
    await store.append("practice-P", 0, events)
    page = await store.writebacks("P", limit=2)
    assert [w.writeback_id for w in page] == ["wb-5", "wb-4"]
    older = await store.writebacks("P", limit=10, before="wb-4")
    assert [w.writeback_id for w in older] == ["wb-3", "wb-2", "wb-1", "wb-0"]
    assert await store.writebacks("P", states=["completed"]) == []
    assert len(await store.writebacks("P", states=["queued"])) == 6


async def test_duplicate_idempotency_key_is_refused_whole(store):
    def request(wid):
        return ev.WritebackRequested(
            at=EPOCH, writeback_id=wid, operation="book_appointment", payload="x",
            deadline_at=EPOCH + timedelta(hours=6), idempotency_key="same",
        )

    await store.append("practice-A", 0, [request("w1")])
    with pytest.raises(DuplicateIdempotencyKey):
        await store.append("practice-A", 1, [registered("A"), request("w2")])
    assert len(await store.read_stream("practice-A")) == 1
    assert await store.writeback("w2") is None
    await store.append("practice-B", 0, [request("w3")])  # keys are per practice


async def test_wait_for_append_wakes_up(store):
    woke = []

    async def waiter():
        await store.wait_for_append(0)
        woke.append(await store.last_position())

    async with trio.open_nursery() as nursery:
        if isinstance(store, PgEventStore):
            await nursery.start(store.pump_notifications)
        nursery.start_soon(waiter)
        await trio.sleep(0.05)
        assert woke == []
        await store.append("practice-A", 0, [registered("A")])
        with trio.fail_after(5):
            while not woke:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert woke == [1]


async def test_empty_and_foreign_batches_are_refused(store):
    with pytest.raises(ValueError):
        await store.append("practice-A", 0, [])
    with pytest.raises(TypeError):
        await store.append("practice-A", 0, ["not an event"])
    with pytest.raises(ValueError):
        await store.append("not-a-practice", 0, [registered("A")])


async def test_snapshots_newer_wins_and_schema_must_match(store):
    async def snapshot(schema):
        return (await store.load_streams(["practice-A"], schema))["practice-A"][0]

    assert await snapshot(1) is None
    await store.save_snapshot("practice-A", 10, 1, b'{"v":10}')
    await store.save_snapshot("practice-A", 5, 1, b'{"v":5}')  # older: ignored
    snap = await snapshot(1)
    assert snap.version == 10 and snap.state.replace(b" ", b"") == b'{"v":10}'
    assert await snapshot(2) is None
    await store.save_snapshot("practice-A", 12, 2, b'{"v":12}')
    assert (await snapshot(2)).version == 12


async def test_writeback_ids_and_claimed_sikka_ids(store):
    stream, events = next(practice_streams(seed=8, practices=1, writebacks_per_practice=5))
    await store.append(stream, 0, events)
    requested = {e.writeback_id for e in events if isinstance(e, ev.WritebackRequested)}
    assert set(await store.writeback_ids("D1000")) == requested
    acked = {e.sikka_writeback_id for e in events if isinstance(e, (ev.WritebackSubmitted, ev.WritebackReconciled))}
    assert await store.sikka_ids("D1000") == acked
    assert await store.writeback_ids("D9") == [] and await store.sikka_ids("D9") == set()
    counts = await store.writeback_counts("D1000")
    assert sum(counts.values()) == len(requested) and set(counts) <= {"completed", "failed", "cancelled"}


async def test_load_streams_gives_each_stream_its_snapshot_and_the_events_after_it(store):
    for name, count in (("A", 5), ("B", 3)):
        await store.append(f"practice-{name}", 0, [registered(name, k) for k in range(count)])
    await store.save_snapshot("practice-A", 3, 1, b'{"v":3}')
    await store.save_snapshot("practice-B", 2, 2, b'{"v":2}')  # another schema: not this one's
    loaded = await store.load_streams(["practice-A", "practice-B", "practice-NEW"], 1)
    assert list(loaded) == ["practice-A", "practice-B", "practice-NEW"]
    snapshot, tail = loaded["practice-A"]
    assert (snapshot.version, snapshot.state.replace(b" ", b"")) == (3, b'{"v":3}')
    assert [(r.version, r.event) for r in tail] == [(4, registered("A", 3)), (5, registered("A", 4))]
    snapshot, tail = loaded["practice-B"]
    assert snapshot is None and [r.version for r in tail] == [1, 2, 3]
    assert tail == await store.read_stream("practice-B")
    assert loaded["practice-NEW"] == (None, [])
