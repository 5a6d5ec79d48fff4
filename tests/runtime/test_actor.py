"""Practice actors on trio's MockClock against the in-process simulator and the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime

import trio

from sim import SimConfig
from bench.system import booking, start_system


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
    await system.keys_granted()
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
    # overshoot: each completion recorded within max(2 s, 20 % of its age) of Sikka's completion
    # (Sikka's time has whole seconds: one more second of slack)
    for row in rows.values():
        done_at_sikka = datetime.strptime(row.sikka_completed_time, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        age = (done_at_sikka - row.submitted_at).total_seconds()
        overshoot = (row.completed_at - done_at_sikka).total_seconds()
        assert -1 <= overshoot <= max(2.0, 0.2 * age) + 1, (age, overshoot)


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


async def test_retry_failed_without_a_running_actor_reseals_the_payload(nursery, autojump_clock):
    """Regression: re-sealing a retry's payload lived only in the actor, so a retry-failed
    decided while no actor ran (``decide_and_append``) kept the failed writeback's ciphertext,
    which no key of the new id opens: the retry would fail as payload_purged."""
    from actors.core import messages
    from actors.runtime.commit import decide_and_append

    system = await start_system(nursery, sim_config=SimConfig(practices=1))
    office = system.offices()[0]
    await system.practices.actors[office].ask(messages.Pause())
    payload = booking(system.sim, office, 2)
    failed = await system.request(office, "book_appointment", payload, deadline_s=10)
    assert (await system.wait_final([failed]))[failed].retryable
    system.practices.stop(office)
    with trio.fail_after(60):
        while office in system.practices.actors:
            await trio.sleep(0.1)

    decision = await decide_and_append(system.deps, office, messages.RetryFailed())
    (retry,) = [e for e in decision if getattr(e, "retry_of", None) == failed]
    import json

    assert json.loads(await system.credentials.open_payload(retry.writeback_id, retry.payload)) == payload
