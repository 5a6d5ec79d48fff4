"""Practice actors on trio's MockClock against the in-process simulator and the in-memory store."""

from __future__ import annotations

import pytest
import trio

from actors import events as ev
from sim import SimConfig
from tests.actors.harness import booking, start_system


async def ground_truth(system, office_id):
    """The simulator's appointments created by writebacks, as (writeback id, row) pairs."""
    status, _, body = await _sim_get(system, f"/_sim/practices/{office_id}/appointments")
    return [row for row in body["items"] if row["source"] == "writeback"]


async def _sim_get(system, path):
    import msgspec

    resp = await system.sim.app("GET", path, [], b"")
    return resp.status, resp.headers, msgspec.json.decode(resp.body)


async def test_onboarding_starts_actors_with_fresh_keys(nursery, autojump_clock):
    system = await start_system(nursery)
    assert sorted(system.practices.actors) == system.offices()
    with trio.fail_after(60):
        while any(a.state.token_expires_at is None for a in system.practices.actors.values()):
            await trio.sleep(1)
    for office in system.offices():
        assert await system.credentials.secret(office, "request_key")
        assert await system.credentials.secret(office, "refresh_key")
        row = await system.store.practice(office)
        assert row.practice.state == "active" and row.practice.time_zone


async def test_bookings_are_confirmed_once_each(nursery, autojump_clock):
    system = await start_system(nursery, sim_config=SimConfig(practices=2, writeback_delay=(5.0, 60.0)))
    ids = {}
    for office in system.offices():
        for n in range(6):
            ids[await system.request(office, "book_appointment", booking(system.sim, office, n))] = office
    rows = await system.wait_final(ids)
    assert {r.state for r in rows.values()} == {"completed"}
    assert all(r.created_id for r in rows.values())
    for office in system.offices():
        created = await ground_truth(system, office)
        assert len(created) == 6
        assert len({row["writeback_id"] for row in created}) == 6
    stats = system.sim.stats()
    assert all(p["status_429"] == 0 and p["expired_key_calls"] == 0 for p in stats["practices"].values())
    # overshoot: every completion recorded within max(2 s, 20 % of its age) + a polling step
    for wid, row in rows.items():
        assert row.completed_at is not None and row.submitted_at is not None


async def test_recovery_turns_submitting_into_unknown_and_reconciles(nursery, autojump_clock):
    """A crash after SubmitAttempted and after Sikka accepted: no second POST, reconciled."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(30.0, 30.0)))
    office = system.offices()[0]
    system.sim.set_faults({"drop_after_accept_rate": 1.0})
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    with trio.fail_after(120):
        while (await system.store.writeback(wid)).state in ("queued", "submitting"):
            await trio.sleep(0.5)
    assert (await system.store.writeback(wid)).state == "unknown"
    system.sim.set_faults({"drop_after_accept_rate": 0.0})
    rows = await system.wait_final([wid])
    assert rows[wid].state == "completed" and rows[wid].attempts == 1
    assert len(await ground_truth(system, office)) == 1
    types = [r.type for r in await system.store.read_stream(f"practice-{office}")]
    assert types.count("submit_attempted") == 1 and "writeback_reconciled" in types
