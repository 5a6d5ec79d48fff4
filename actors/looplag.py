"""Event-loop lag: how late the trio loop wakes a task that asked to sleep a fixed interval.

A probe task sleeps ``interval`` seconds again and again; each wake-up's lateness (actual minus
asked) is one sample. Every ``report_every`` seconds it logs ``loop.lag`` with the interval's
p50/p99/max and sample count, then starts a new interval (the scale benchmark reads these lines;
issue 8's ``sikka_loop_lag_seconds`` metric can read ``LoopLag.last`` the same way). The samples
live in one ``array('d')`` per interval: a few KiB, independent of the number of practices.
"""

from __future__ import annotations

from array import array

import structlog
import trio

from actors.figures import percentile

log = structlog.get_logger("looplag")

PROBE_INTERVAL_S = 0.05
REPORT_EVERY_S = 10.0


class LoopLag:
    def __init__(self, interval: float = PROBE_INTERVAL_S, report_every: float = REPORT_EVERY_S):
        self.interval = interval
        self.report_every = report_every
        self.last: dict[str, float] = {}  # the last interval's figures (seconds)

    @staticmethod
    def figures(samples) -> dict[str, float]:
        values = list(samples)
        return {
            "p50_s": percentile(values, 50),
            "p99_s": percentile(values, 99),
            "max_s": max(values),
            "samples": len(values),
        }

    async def run(self) -> None:
        samples = array("d")
        reported = trio.current_time()
        while True:
            asked = trio.current_time() + self.interval
            await trio.sleep_until(asked)
            now = trio.current_time()
            samples.append(max(0.0, now - asked))
            if now - reported >= self.report_every:
                self.last = self.figures(samples)
                log.info("loop.lag", **{k: round(v, 6) for k, v in self.last.items()})
                samples = array("d")
                reported = now
