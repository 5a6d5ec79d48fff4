"""``python -m bench.ratelimit``: share of the rate limit used under sustained excess demand.

One practice on the in-process simulator (trio's MockClock): its fixed 60 s window (starting at
the first request, as Sikka's does) at ``--limit`` requests, every answer delayed by a latency
drawn from ``--latency-ms`` (the window counts arrivals; the client learns of them late).
``--workers`` concurrent callers each loop on a keyed read (``GET /providers``), so demand is
far above the limit, for ``--windows`` windows. Two runs on the same seed:

- ``actors``: every call takes the practice's ``actors.core.ratelimit.Budget`` first and feeds the
  answer back (``actors.runtime.actor.take_budget`` / ``observe``: the path every actor call takes);
- ``peer``: the existing integration's calendar-minute counter with its safe limit of 150
  (``bench.peer.MinuteCounter``).

Printed (``name: value``): per run, ``share_of_limit`` (requests that arrived in the first
``windows`` × 60 s after the first one / (windows × limit)), ``status_429`` (429s the simulator
answered for exceeding its window) and ``requests``; ``ratio.share_of_limit`` = actors / peer.
Commitment (issue 10): ``actors.share_of_limit ≥ 0.975`` with ``actors.status_429 = 0``.
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime

import httpx
import trio
import trio.testing

from actors.runtime.calls import observe, take_budget
from actors.runtime.deps import mock_clock
from actors.core.ratelimit import Budget, Lane
from actors.core.secret import Secret
from actors.runtime.sikka import SikkaClient
from bench.common import line, quiet_logs
from bench.peer import MinuteCounter
from sim import SimConfig, Simulator

EPOCH = datetime(2026, 3, 2, 14, 0, 17, tzinfo=UTC)  # off the minute: the server's window is its own
OFFICE = "D1000"


def parse_range(text: str) -> tuple[float, float]:
    lo, sep, hi = text.partition(":")
    try:
        values = (float(lo), float(hi if sep else lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX milliseconds, not {text!r}") from None
    if not 0 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"expected 0 ≤ MIN ≤ MAX, not {text!r}")
    return values


async def drive(strategy: str, *, limit: int, windows: int, workers: int, latency_ms: tuple[float, float],
                seed: int) -> dict[str, float]:
    clock = mock_clock(EPOCH)
    sim = Simulator(SimConfig(practices=1, seed=seed, rate_limit=limit), clock=lambda: clock().timestamp(),
                    rng=random.Random(seed))
    sim.set_faults({"latency_ms": f"{latency_ms[0]:g}:{latency_ms[1]:g}"})
    arrivals: list[float] = []
    handle = sim.handle

    def recording(method, target, headers, body=b"", *args, **kwargs):
        if target.startswith("/v4/providers"):
            arrivals.append(trio.current_time())
        return handle(method, target, headers, body, *args, **kwargs)

    sim.handle = recording
    async with httpx.AsyncClient(transport=sim.transport()) as http:
        client = SikkaClient(http, "http://sikka.test/v4", sim.config.app_id, Secret(sim.config.app_key), "bench")
        secret = next(p for p in (await client.authorized_practices()).value if p.office_id == OFFICE).secret_key
        key = (await client.issue_request_key(OFFICE, secret)).value.request_key
        budget, counter = Budget(limit), MinuteCounter()
        stop_at = trio.current_time() + 60.0 * (windows + 1)

        async def worker():
            while trio.current_time() < stop_at:
                if strategy == "actors":
                    sent_at = await take_budget(budget, Lane.READ, clock)
                    result = await client.providers(key)
                    observe(budget, result, sent_at, clock().timestamp())
                else:
                    await counter.take()
                    await client.providers(key)

        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker)
    first = arrivals[0]
    counted = sum(1 for t in arrivals if t < first + 60.0 * windows)
    stats = sim.stats()["practices"][OFFICE]
    return {"share_of_limit": counted / (windows * limit), "status_429": stats["status_429"], "requests": len(arrivals)}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=200, help="the simulator's requests per 60 s window")
    parser.add_argument("--windows", type=int, default=35, help="windows of sustained excess demand")
    parser.add_argument("--workers", type=int, default=16, help="concurrent callers")
    parser.add_argument("--latency-ms", type=parse_range, default=(20.0, 600.0), help="answer latency MIN:MAX")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    quiet_logs()
    out: dict[str, float] = {}
    for strategy in ("actors", "peer"):
        figures = trio.run(
            lambda s=strategy: drive(s, limit=args.limit, windows=args.windows, workers=args.workers,
                                     latency_ms=args.latency_ms, seed=args.seed),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        out.update({f"{strategy}.{k}": v for k, v in figures.items()})
    out["ratio.share_of_limit"] = out["actors.share_of_limit"] / out["peer.share_of_limit"]
    for name, value in out.items():
        print(line(name, value))
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)
