"""The fault-injecting store wrapper: outages, errors before the write, lost answers, slow commits."""

from __future__ import annotations

import random

import pytest
import trio

from bench.workload import practice_streams
from store.db import DatabaseUnavailable
from store.memory import MemoryEventStore
from store.pglog import PgEventStore
from tests.support.faults import FaultyStore


@pytest.fixture(params=["memory", "postgres"])
def inner(request):
    return MemoryEventStore() if request.param == "memory" else PgEventStore(request.getfixturevalue("db"))


def events():
    return next(practice_streams(seed=4, practices=1, writebacks_per_practice=1))


async def test_unreachable_refuses_reads_and_writes_then_recovers(inner):
    store = FaultyStore(inner)
    stream, evs = events()
    store.unreachable = True
    with pytest.raises(DatabaseUnavailable):
        await store.append(stream, 0, evs)
    with pytest.raises(DatabaseUnavailable):
        await store.read_stream(stream)
    store.unreachable = False
    assert await store.append(stream, 0, evs) == len(evs)
    assert store.statistics().refused_while_unreachable == 2


async def test_error_before_write_writes_nothing_and_lost_ack_writes(inner):
    store = FaultyStore(inner, random.Random(1))
    stream, evs = events()
    store.error_rate = 1.0
    with pytest.raises(DatabaseUnavailable, match="before the commit"):
        await store.append(stream, 0, evs[:1])
    assert await inner.read_stream(stream) == []
    store.error_rate, store.lost_ack_rate = 0.0, 1.0
    with pytest.raises(DatabaseUnavailable, match="answer"):
        await store.append(stream, 0, evs[:1])
    assert len(await inner.read_stream(stream)) == 1  # committed although the caller was told otherwise
    stats = store.statistics()
    assert (stats.failed_before_write, stats.lost_acks) == (1, 1)


async def test_slow_commits_take_simulated_time(autojump_clock):
    store = FaultyStore(MemoryEventStore())
    store.commit_delay = 2.5
    stream, evs = events()
    start = trio.current_time()
    await store.append(stream, 0, evs[:1])
    assert trio.current_time() - start == pytest.approx(2.5)
