"""The one commit path under database faults (``actors.runtime.commit``), on MockClock with the
fault-injecting store: the actor's own steps wait an outage out with their state untouched, an
append whose answer was lost is settled by reading the stream (never appended twice), a command
someone waits for gets the fault as its answer, and nobody crashes or is parked."""

from __future__ import annotations

from datetime import UTC, datetime

import trio

from actors.core import events as ev
from actors.core import messages
from actors.runtime.commit import committed
from actors.runtime.mailbox import ask
from bench.system import booking, start_system
from store.db import DatabaseUnavailable
from store.memory import MemoryEventStore
from tests.support.faults import FaultyStore


async def test_appends_whose_answers_were_lost_are_folded_once_not_appended_twice(nursery, autojump_clock):
    """Every append is written and its answer lost (a cut connection after the commit): each is
    settled by reading the stream, the booking is requested, sent and completed exactly once."""
    system = await start_system(nursery, wrap_store=FaultyStore)
    await system.keys_granted()  # the faults below meet what the test does, not the first grant
    office = system.offices()[0]
    system.store.lost_ack_rate = 1.0
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    rows = await system.wait_final([wid], timeout=600)
    assert rows[wid].state == "completed"
    assert system.store.statistics().lost_acks >= 3  # requested, attempted, submitted, …
    stored = [r.event for r in await system.store.read_stream(ev.stream_id(office))]
    assert [type(e).__name__ for e in stored if getattr(e, "writeback_id", None) == wid].count("SubmitAttempted") == 1
    assert sum(isinstance(e, ev.WritebackRequested) for e in stored) == 1
    assert system.practices.supervised[office].restarts == 0
    assert system.sim.stats()["practices"][office]["writebacks_submitted"] == 1  # sent to Sikka once



async def test_a_lost_append_is_settled_by_its_recorded_events_alone():
    """Regression (noted checks met the lost-answer settlement): a decision that records one
    writeback's check and only notes another's appended just the recorded event; ``committed``
    compares the stream with that alone, so the lost answer settles at once."""
    store, stream = MemoryEventStore(), ev.stream_id("D1000")
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    checked = ev.StatusChecked(at=at, writeback_id="wb1", next_check_at=at, result="completed", read_status=True,
                               checks=3)
    noted = ev.CheckNoted(at=at, writeback_id="wb2", next_check_at=at, result="pending")
    await store.append(stream, 0, [checked])
    assert await committed(store, stream, 0, [checked, noted]) == 1
    assert await committed(store, stream, 0, [noted, checked, noted]) == 1
    assert await committed(store, stream, 1, [checked, noted]) is None  # not in the log after version 1

async def test_the_actor_waits_an_outage_out_and_its_writebacks_complete(nursery, autojump_clock):
    system = await start_system(nursery, wrap_store=FaultyStore)
    await system.keys_granted()  # the faults below meet what the test does, not the first grant
    office = system.offices()[0]
    wids = [await system.request(office, "book_appointment", booking(system.sim, office, n)) for n in range(3)]
    system.store.unreachable = True
    await trio.sleep(120)
    system.store.unreachable = False
    rows = await system.wait_final(wids, timeout=600)
    assert {r.state for r in rows.values()} == {"completed"}
    assert system.practices.supervised[office].parked is False
    stored = await system.store.read_stream(ev.stream_id(office))
    attempts = [r.event.writeback_id for r in stored if isinstance(r.event, ev.SubmitAttempted)]
    assert sorted(attempts) == sorted(wids)  # each sent once


async def test_a_command_someone_waits_for_gets_the_fault_as_its_answer(nursery, autojump_clock):
    system = await start_system(nursery, wrap_store=FaultyStore)
    await system.keys_granted()  # the faults below meet what the test does, not the first grant
    office = system.offices()[0]
    actor = system.practices.actors[office]
    system.store.error_rate = 1.0
    version = actor.version
    try:
        await actor.ask(messages.Pause())
    except DatabaseUnavailable as exc:
        assert "injected" in str(exc)
    else:
        raise AssertionError("the pause was answered although nothing could be stored")
    assert actor.version == version and not actor.state.paused  # the state untouched
    system.store.error_rate = 0.0
    assert isinstance(await actor.ask(messages.Pause()), list) and actor.state.paused
    assert system.practices.supervised[office].restarts == 0


async def test_an_asker_that_gives_up_withdraws_a_command_not_yet_taken(nursery, autojump_clock):
    inbox, received = trio.open_memory_channel(8)
    reasons = iter(["the database is away"])
    try:
        await ask(inbox, messages.Pause(), give_up=lambda: next(reasons), check_every=1.0)
    except DatabaseUnavailable as exc:
        assert "not recorded" in str(exc)
    else:
        raise AssertionError("no answer, yet the ask returned")
    envelope = received.receive_nowait()
    assert envelope.withdrawn and not envelope.taken  # the actor skips it
