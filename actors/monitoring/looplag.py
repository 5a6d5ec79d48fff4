"""Event-loop lag: how late the trio loop wakes a task that asked to sleep a fixed interval.

A probe task sleeps ``interval`` seconds again and again; each wake-up's lateness (actual minus
asked) is one sample. Every ``report_every`` seconds it logs ``loop.lag`` with that interval's
p50/p99/max, the sample count and a histogram (``buckets``: counts of samples ≤ each bound of
``BUCKETS_S``, the last one unbounded, not cumulative), then starts a new interval. Histograms
add up, so a reader can take the p99 over any run of reports (``bench.scale`` does); every
sample is also observed by the ``sikka_loop_lag_seconds`` histogram of ``/metrics``. Memory: one ``array('d')`` of
samples per interval, independent of the number of practices.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable

import structlog
import trio

from actors.core.figures import percentile

log = structlog.get_logger("looplag")

PROBE_INTERVAL_S = 0.05
REPORT_EVERY_S = 10.0
BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # then +inf


def histogram(samples) -> list[int]:
    counts = [0] * (len(BUCKETS_S) + 1)
    for s in samples:
        counts[bisect.bisect_left(BUCKETS_S, s)] += 1
    return counts


def quantile_bound(buckets: list[int], q: float) -> float:
    """The upper bound of the bucket holding the ``q`` quantile (``inf`` past the last bound)."""
    total = sum(buckets)
    rank, seen = q * total, 0
    for bound, count in zip((*BUCKETS_S, float("inf")), buckets):
        seen += count
        if seen >= rank:
            return bound
    return float("inf")


def figures(samples) -> dict:
    values = list(samples)
    return {
        "p50_s": round(percentile(values, 50), 6),
        "p99_s": round(percentile(values, 99), 6),
        "max_s": round(max(values), 6),
        "samples": len(values),
        "buckets": histogram(values),
    }


async def probe(
    interval: float = PROBE_INTERVAL_S,
    report_every: float = REPORT_EVERY_S,
    observe: Callable[[float], None] = lambda lag: None,
) -> None:
    """Sample the lag until cancelled; each sample also goes to ``observe`` (the metric)."""
    samples = array("d")
    reported = trio.current_time()
    while True:
        asked = trio.current_time() + interval
        await trio.sleep_until(asked)
        now = trio.current_time()
        lag = max(0.0, now - asked)
        samples.append(lag)
        observe(lag)
        if now - reported >= report_every:
            log.info("loop.lag", **figures(samples))
            samples = array("d")
            reported = now
