"""Rate use over the last hour, for the console's overview.

An actor's budget (``actors.core.ratelimit.Budget``) knows only its last 60 s (and the day's
count); ``RateHistory.run`` samples it once a minute for every practice running here and keeps
the last ``SAMPLES`` samples: each one is the requests sent in the 60 s before it, so their sum
is the requests of the last hour (within the budget's 0.5 s margin per minute) and their
maximum is the busiest minute. A practice run by another supervisor has no history here (its
owner's console shows it), nor has one that started within the minute. Memory: 2 bytes a sample,
120 bytes a practice.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from datetime import datetime

import msgspec
import trio

SAMPLE_S = 60.0
SAMPLES = 60  # an hour of minutes
CHUNK = 500  # practices sampled between two checkpoints (about 2 ms)


class HourOfUse(msgspec.Struct, frozen=True):
    requests: int  # sent in the sampled minutes
    minutes: int  # how many minutes were sampled (60 once the practice ran here an hour)
    peak: int  # the busiest minute's requests
    limit: int  # the budget's limit at the last sample
    samples: tuple[int, ...]  # oldest first: the sparkline

    @property
    def peak_percent(self) -> float:
        return round(100 * self.peak / self.limit, 1) if self.limit else 0.0


class RateHistory:
    def __init__(self, actors: Callable[[], dict], clock: Callable[[], datetime]):
        self._actors = actors  # office id → running actor (the practice supervisor's table)
        self._clock = clock
        self._used: dict[str, array] = {}
        self._limit: dict[str, int] = {}

    async def sample(self) -> None:
        """One sample of every running practice's last 60 s; practices gone are forgotten. A
        checkpoint every ``CHUNK`` practices: 20,000 of them held the event loop for 100 ms."""
        now = self._clock().timestamp()
        running = self._actors()
        for office_id in list(self._used):
            if office_id not in running:
                del self._used[office_id], self._limit[office_id]
        for n, (office_id, actor) in enumerate(list(running.items()), 1):
            if n % CHUNK == 0:
                await trio.sleep(0)
            stats = actor.budget.statistics(now)
            used = self._used.setdefault(office_id, array("H"))
            used.append(min(stats.used_last_60s, 0xFFFF))
            if len(used) > SAMPLES:
                del used[0]
            self._limit[office_id] = stats.limit

    def last_hour(self, office_id: str) -> HourOfUse | None:
        used = self._used.get(office_id)
        if not used:
            return None
        return HourOfUse(sum(used), len(used), max(used), self._limit[office_id], tuple(used))

    async def run(self) -> None:
        while True:
            await trio.sleep(SAMPLE_S)
            await self.sample()
