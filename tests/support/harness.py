"""Ground truth and stream helpers for the scenario tests, on a ``bench.system.System``: the
simulator's control endpoints (``/_sim/...``), a practice's recorded events, polling on the mock
clock. The system itself (``start_system``, ``booking``) is ``bench.system``'s, shared with the
benchmarks."""

from __future__ import annotations

import msgspec
import trio

from bench.system import System


async def sim_get(system: System, path: str):
    """A simulator control endpoint (``/_sim/...``), decoded."""
    resp = await system.sim.app("GET", path, [], b"")
    assert resp.status == 200, (path, resp.status)
    return msgspec.json.decode(resp.body)


async def sim_stats(system: System, office_id: str) -> dict:
    return (await sim_get(system, "/_sim/stats"))["practices"][office_id]


async def sim_requests(system: System, office_id: str) -> list[dict]:
    """The practice's request timeline at the simulator, in arrival order."""
    return (await sim_get(system, f"/_sim/practices/{office_id}/requests"))["items"]


async def sim_created(system: System, office_id: str) -> list[dict]:
    """Appointments the simulator created from writebacks (ground truth)."""
    items = (await sim_get(system, f"/_sim/practices/{office_id}/appointments"))["items"]
    return [row for row in items if row["source"] == "writeback"]


async def stream(system: System, office_id: str) -> list:
    """The practice's recorded events (``RecordedEvent``: ``.type``, ``.event``, ``.version``)."""
    return await system.store.read_stream(f"practice-{office_id}")


async def wait_until(predicate, timeout: float, step: float = 0.5):
    """Poll the async ``predicate`` on the (mock) clock until it returns a truthy value."""
    with trio.fail_after(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await trio.sleep(step)
