"""The existing integration's writeback tracker (``peer-implementation.md`` §1.2), as a baseline.

What it does, per practice, on the same simulator and client as our actors::

    authorized_practices ─► request_key grant ─► submit every writeback in order
    each writeback on its own: first writeback_status 10 s after the acknowledgement, then after
    10, 10, 20, 30, 60, 120, 300, 600, 1800 s (the last repeating), at most 30 checks
    a calendar-minute counter per practice: at 150 status checks (the peer's "safe" limit) in
    the current minute, a check waits for the next minute

Unlike the peer's code it really runs (the peer's ``calculateNextCheckTime`` never lets a row
be ready, and nothing inserts rows): this is the strategy as designed, not as shipped. A
completion is recorded by the check that sees it (``writeback_status`` carries ``created_id``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import httpx
import trio

from actors.core import outcomes as oc
from actors.core.secret import Secret
from actors.runtime.sikka import SikkaClient
from bench.common import count_requests
from bench.system import EPOCH, booking
from sim import SimConfig, Simulator

FIRST_CHECK_S = 10.0
CHECK_GAPS_S = (10.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)  # after check 1, 2, …
MAX_CHECKS = 30
SAFE_PER_MINUTE = 150


def check_offsets(n: int) -> list[float]:
    """Seconds after the acknowledgement of the peer's first ``n`` checks."""
    out, t = [], FIRST_CHECK_S
    for i in range(n):
        out.append(t)
        t += CHECK_GAPS_S[min(i, len(CHECK_GAPS_S) - 1)]
    return out


class MinuteCounter:
    """The peer's limiter: a count per calendar minute, waiting for the next minute at the limit."""

    def __init__(self, limit: int = SAFE_PER_MINUTE):
        self.limit = limit
        self.minute = -1
        self.count = 0

    async def take(self) -> None:
        while True:
            now = trio.current_time()
            minute = int(now // 60)
            if minute != self.minute:
                self.minute, self.count = minute, 0
            if self.count < self.limit:
                self.count += 1
                return
            await trio.sleep((minute + 1) * 60 - now)


async def track(client: SikkaClient, key: str, sikka_id: str, counter: MinuteCounter, recorded: dict) -> None:
    acked = trio.current_time()
    for offset in check_offsets(MAX_CHECKS):
        await trio.sleep_until(max(acked + offset, trio.current_time()))
        await counter.take()
        result = await client.writeback_status(key, sikka_id)
        status = result.outcome.value if isinstance(result.outcome, oc.Ok) else None
        if isinstance(status, oc.WritebackStatus) and status.is_completed:
            recorded[sikka_id] = trio.current_time()
            return


async def run_peer_tracker(
    config: SimConfig, pending: Sequence[int], operation: str
) -> tuple[Simulator, Counter, dict[str, float]]:
    """Run the peer's strategy for ``pending[i]`` writebacks at the simulator's i-th practice.

    Returns the simulator, the requests it served by ``METHOD /path``, and Sikka writeback id →
    when the peer recorded the outcome (POSIX seconds on the simulator's clock).
    """
    start = EPOCH.timestamp() - trio.current_time()  # the simulator's clock, as in the actor runs
    sim = Simulator(config, clock=lambda: start + trio.current_time(), rng=random.Random(config.seed))
    counts = count_requests(sim)
    recorded: dict[str, float] = {}
    async with httpx.AsyncClient(transport=sim.transport()) as http:
        client = SikkaClient(http, "http://sikka.test/v4", config.app_id, Secret(config.app_key), "peer-baseline")
        practices = (await client.authorized_practices()).value
        by_office = {p.office_id: p for p in practices}
        offices = [f"D{1000 + n}" for n in range(len(pending))]
        keys = {o: (await client.issue_request_key(o, by_office[o].secret_key)).value.request_key for o in offices}
        async with trio.open_nursery() as nursery:
            for office, count in zip(offices, pending):
                counter = MinuteCounter()
                for k in range(count):
                    ack = (await client.submit(keys[office], operation, booking(sim, office, k))).value
                    nursery.start_soon(track, client, keys[office], ack.sikka_writeback_id, counter, recorded)
    return sim, counts, {k: v + start for k, v in recorded.items()}
