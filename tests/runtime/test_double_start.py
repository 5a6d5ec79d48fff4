"""A forced double start: a second actor for a practice already running, as a stale owner would
be (its supervisor believes it still owns the practice, the lease says otherwise). The stream
version fences every append: the stale actor's first losing append makes it stop (no restart,
no crash loop), the owner carries on, and nothing reaches Sikka twice."""

from __future__ import annotations

import pytest
import trio

from actors.core import messages
from actors.core import events as ev
from actors.runtime.mailbox import Unavailable, Wake
from actors.runtime.deps import Deps
from actors.runtime.practices import PracticeSupervisor
from actors.core.ratelimit import Budget
from sim import SimConfig
from bench.system import booking, start_system
from tests.support.harness import sim_created, stream

OFFICE = "D1000"


async def not_owned(office_id: str) -> bool:
    return False


async def start_stale(nursery, system) -> PracticeSupervisor:
    """A second practice supervisor on the same store, running an actor for OFFICE although
    (its ``owns`` says) another node owns it."""
    d = system.deps
    stale_deps = Deps(store=d.store, credentials=d.credentials, client=d.client, settings=d.settings, clock=d.clock,
                      app_budget=Budget(d.settings.app_rate_limit), owns=not_owned)
    stale = PracticeSupervisor(stale_deps)
    await nursery.start(stale.run)
    assert stale.start(OFFICE)
    await stale.wait_started(OFFICE)
    return stale


async def test_a_forced_second_actor_stops_and_nothing_is_duplicated(nursery, autojump_clock):
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5.0, 20.0)))
    owner = system.practices.actors[OFFICE]
    stale = await start_stale(nursery, system)
    second = stale.actors[OFFICE]

    ids = []
    for n in range(6):
        ids.append(await system.request(OFFICE, "book_appointment", booking(system.sim, OFFICE, n)))
        second.tell(Wake())  # the stale actor sees the same work and races for it
        await trio.sleep(0)
    with trio.fail_after(600):
        while OFFICE in stale.running():
            await trio.sleep(1)
    assert stale.supervised[OFFICE].restarts == 0  # stopped, not crash-looping

    rows = await system.wait_final(ids)
    assert {r.state for r in rows.values()} == {"completed"}
    created = await sim_created(system, OFFICE)
    assert len(created) == len(ids)  # one appointment per booking: nothing sent twice
    assert len({(r["date"], r["time"], r["operatory"]) for r in created}) == len(ids)
    assert system.practices.actors[OFFICE] is owner and system.practices.supervised[OFFICE].restarts == 0


async def test_a_stale_owners_append_fails_on_the_stream_version_and_its_actor_stops(nursery, autojump_clock):
    system = await start_system(nursery, sim_config=SimConfig(practices=1))
    stale = await start_stale(nursery, system)
    second = stale.actors[OFFICE]
    await system.request(OFFICE, "book_appointment", booking(system.sim, OFFICE, 0))  # the owner moves on
    with pytest.raises(Unavailable):
        await second.ask(messages.Pause())  # decided on a stale state: the append is refused
    with trio.fail_after(60):
        while OFFICE in stale.running():
            await trio.sleep(0.1)
    assert stale.supervised[OFFICE].restarts == 0
    assert not any(isinstance(r.event, ev.PracticePaused) for r in await stream(system, OFFICE))
    assert system.practices.actors[OFFICE].state.state == "active"
