"""``actors.runtime.loads``: actors that start together read their snapshots, tails and keys in
a few grouped reads, and each recovers exactly what it would have read alone."""

from __future__ import annotations

import trio

from bench.system import start_system
from sim import SimConfig
from tests.support.harness import wait_until

PRACTICES = 60


async def test_actors_starting_together_load_in_a_few_reads(nursery, autojump_clock):
    """Regression: each starting actor made three database round trips (snapshot, tail, key); a
    restart of 20,000 practices queued 60,000 calls behind ten connections, their timeouts
    expired and the actors restarted over and over: /health answered after 43 s."""
    system = await start_system(nursery, sim_config=SimConfig(practices=PRACTICES))
    offices = system.offices()
    for office in offices:
        await system.practices.wait_started(office)
    for office in offices:
        system.practices.stop(office)

    async def all_stopped():
        return not system.practices.running()

    await wait_until(all_stopped, 60, step=0.1)
    stored = {office: len(await system.store.read_stream(f"practice-{office}")) for office in offices}
    loads = system.deps.loads.group
    groups, loaded = loads.groups, loads.committed
    reads = []
    real_load = system.store.load_streams

    async def load_streams(stream_ids, schema):
        reads.append(len(stream_ids))
        return await real_load(stream_ids, schema)

    system.store.load_streams = load_streams
    for office in offices:  # one tick: every actor asks at once
        system.practices.start(office)
    for office in offices:
        await system.practices.wait_started(office)
    assert loads.committed - loaded == PRACTICES
    assert loads.groups - groups == len(reads) <= 2 and sum(reads) == PRACTICES
    for office in offices:
        actor = system.practices.actors[office]
        assert actor.version == stored[office] > 1 and actor.state.registered
        assert actor._request_key is not None  # its key came with the group
    await trio.sleep(120)  # and they work: key checks with the loaded keys succeed
    assert all(system.practices.actors[o].state.state == "active" for o in offices)
