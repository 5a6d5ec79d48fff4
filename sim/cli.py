"""``sikka-sim``: parse the flags of interface section 5, build a ``Simulator``, serve it.

Design: flags map one to one onto ``SimConfig`` fields; the first line printed (and flushed) is
``listening on http://HOST:PORT`` with the real port, so ``--port 0`` works for scripts.
"""

from __future__ import annotations

import argparse
import sys

import trio

from sim.config import SimConfig
from sim.http import serve
from sim.simulator import Simulator


def _delay(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(":")
    try:
        a, b = float(lo), float(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError("expected SECONDS or MIN:MAX") from None
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError("expected 0 <= MIN <= MAX")
    return a, b


def parse_args(argv: list[str] | None = None) -> SimConfig:
    d = SimConfig()
    p = argparse.ArgumentParser(prog="sikka-sim", description="Simulated Sikka API v4 (see interface.md section 5).")
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port, help="0 picks a free port")
    p.add_argument("--practices", type=int, default=d.practices)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--app-id", default=d.app_id)
    p.add_argument("--app-key", default=d.app_key)
    p.add_argument("--rate-limit", type=int, default=d.rate_limit, help="requests per practice per 60 s window")
    p.add_argument("--app-rate-limit", type=int, default=d.app_rate_limit, help="app-level requests per 60 s window")
    p.add_argument("--daily-quota", type=int, default=d.daily_quota, help="requests per practice per UTC day; 0 = none")
    p.add_argument("--token-ttl", type=float, default=d.token_ttl, help="request key lifetime in seconds")
    p.add_argument("--writeback-delay", type=_delay, default=d.writeback_delay, metavar="MIN:MAX")
    p.add_argument("--writeback-failure-rate", type=float, default=d.writeback_failure_rate)
    p.add_argument("--patients-per-practice", type=int, default=d.patients_per_practice)
    p.add_argument("--appointments-per-practice", type=int, default=d.appointments_per_practice)
    p.add_argument("--refresh-lag", type=float, default=d.refresh_lag, help="seconds until new rows show in reads")
    p.add_argument("--webhook-url", default=None)
    p.add_argument("--callback-key", default="")
    a = p.parse_args(argv)
    return SimConfig(**{k: v for k, v in vars(a).items()})


async def _run(config: SimConfig) -> None:
    simulator = Simulator(config)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, simulator, config.host, config.port)
        print(f"listening on http://{config.host}:{port}", flush=True)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        trio.run(_run, config)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
