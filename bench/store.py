"""``python -m bench.store``: event-store throughput on the embedded PostgreSQL (or DATABASE_URL).

Every figure goes through the store's own thread-and-pool path (``Database.run``) with the
supervisor's pool size (``POOL_SIZE`` connections). Prints one ``name: value`` per line:
- ``raw_insert_per_s``: plain single-row autocommit INSERTs, one after the other: the machine's
  baseline for one durable commit;
- ``append_events_per_s_single``: the public ``append``, one event per call, one after the other;
- ``single_vs_raw``: their ratio (target ≥ 0.5);
- ``raw_insert_per_s_concurrent_W`` and ``append_events_per_s_concurrent_W`` for W = 1, 16, 64
  concurrent writers (trio tasks), each INSERTing rows, or appending one event at a time to a
  stream of its own; ``append_vs_raw_concurrent_W``, their ratio (target at 64: ≥ 2, with
  ≥ 10,000 events/s); ``append_latency_p50_ms_concurrent_64``/``…_p99_…`` (target p99 ≤ 25 ms);
- ``append_events_per_s_batched``: the public ``append`` with batches of events (target ≥ 20,000);
- ``replay_events_per_s``: read all + decode + the production fold over a realistic lifecycle mix
  on ≥ 500 streams and ≥ 200,000 events, read from PostgreSQL (target ≥ 100,000).
``--commits-in-flight 1`` measures the group commits one after the other (the store's default
lets two be in flight) for a comparison on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from itertools import count

import psycopg
import trio

from actors.core import events as ev
from actors.core.state import empty, evolve
from bench.common import line
from bench.processes import fresh_database, postgres
from bench.workload import practice_streams
from store.db import Database
from store.pglog import PgEventStore, iterate_log

POOL_SIZE = 10  # the connections of `sikka-supervisor run` (supervisor.cmd_run)
WRITERS = (1, 16, 64)


def bench_database(admin_url: str) -> str:
    """A fresh migrated database with the plain table the raw INSERTs go to."""
    url = fresh_database(admin_url, "sikka_bench_store")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, stream_id text, type text, data jsonb)")
    return url


def _insert(conn: psycopg.Connection, i: int, payload: str) -> None:
    conn.execute(
        "INSERT INTO bench_raw (stream_id, type, data) VALUES (%s, %s, %s::jsonb)",
        (f"practice-R{i % 50}", "status_checked", payload),
        prepare=True,
    )


async def raw_inserts(db: Database, n: int, payload: str) -> float:
    start = time.perf_counter()
    for i in range(n):
        await db.run(_insert, i, payload)
    return n / (time.perf_counter() - start)


async def concurrent_raw_inserts(db: Database, writers: int, n: int, payload: str) -> float:
    """Rows per second with ``writers`` tasks INSERTing ``n`` rows between them."""
    numbers = count()

    async def writer():
        while (i := next(numbers)) < n:
            await db.run(_insert, i, payload)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(writers):
            nursery.start_soon(writer)
    return n / (time.perf_counter() - start)


async def single_appends(store: PgEventStore, events: list) -> float:
    start = time.perf_counter()
    for version, event in enumerate(events):
        await store.append("practice-SINGLE", version, [event])
    return len(events) / (time.perf_counter() - start)


async def concurrent_appends(store: PgEventStore, streams: list, per_writer: int) -> tuple[float, list[float]]:
    """(events per second, each append's latency in seconds): one task per stream appending its
    events one at a time, ``per_writer`` of them timed. Each stream's first event is appended
    before the clock starts, so the store knows every stream's tail (as a running actor's)."""
    latencies: list[float] = []

    async def writer(stream: str, events: list, first: int, last: int):
        for version, event in enumerate(events[first:last], start=first):
            began = time.perf_counter()
            await store.append(stream, version, [event])
            latencies.append(time.perf_counter() - began)

    async with trio.open_nursery() as nursery:
        for stream, events in streams:
            nursery.start_soon(writer, stream, events, 0, 1)
    latencies.clear()
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for stream, events in streams:
            nursery.start_soon(writer, stream, events, 1, 1 + per_writer)
    return len(latencies) / (time.perf_counter() - start), latencies


async def batched_appends(store: PgEventStore, streams: list, batch: int) -> float:
    total = 0
    start = time.perf_counter()
    for stream, events in streams:
        version = 0
        for k in range(0, len(events), batch):
            version = await store.append(stream, version, events[k : k + batch])
        total += len(events)
    return total / (time.perf_counter() - start)


def replay(db: Database) -> tuple[int, float]:
    def fold_all(conn):
        states = {}
        count = 0
        for r in iterate_log(conn):
            office = r.stream_id[9:]
            states[office] = evolve(states.get(office) or empty(office), r.event)
            count += 1
        return count

    start = time.perf_counter()
    count = db.call(fold_all)
    return count, count / (time.perf_counter() - start)


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def concurrency_figures(db: Database, store: PgEventStore, args: argparse.Namespace, payload: str) -> dict:
    """The raw and append rates at each writer count, measured alternately; their ratios."""
    out: dict[str, float] = {}
    for seed, writers in enumerate(WRITERS, start=100):
        per_writer = max(1, args.concurrent // writers)
        streams = list(practice_streams(seed, writers, writebacks_per_practice=per_writer // 5 + 2))
        streams = [(f"practice-C{writers}-{stream[9:]}", events) for stream, events in streams]
        raw = await concurrent_raw_inserts(db, writers, per_writer * writers, payload)
        rate, latencies = await concurrent_appends(store, streams, per_writer)
        out[f"raw_insert_per_s_concurrent_{writers}"] = raw
        out[f"append_events_per_s_concurrent_{writers}"] = rate
        out[f"append_vs_raw_concurrent_{writers}"] = rate / raw
        if writers == WRITERS[-1]:
            out[f"append_latency_p50_ms_concurrent_{writers}"] = quantile(latencies, 0.50) * 1000
            out[f"append_latency_p99_ms_concurrent_{writers}"] = quantile(latencies, 0.99) * 1000
    return out


async def main(args: argparse.Namespace, admin_url: str) -> dict:
    url = bench_database(admin_url)
    db = Database(url, max_size=POOL_SIZE)
    await db.open()
    store = PgEventStore(db)
    store.group_commit.depth = args.commits_in_flight
    out: dict[str, float] = {}
    try:
        _, one_practice = next(practice_streams(seed=9, practices=1, writebacks_per_practice=args.single // 6 + 1))
        payload = ev.encode(one_practice[-1]).decode()
        raw = await raw_inserts(db, args.single, payload)
        single = await single_appends(store, one_practice[: args.single])
        out.update(raw_insert_per_s=raw, append_events_per_s_single=single, single_vs_raw=single / raw)
        out.update(await concurrency_figures(db, store, args, payload))
        streams = list(practice_streams(seed=1, practices=args.streams, writebacks_per_practice=args.writebacks))
        out["append_events_per_s_batched"] = await batched_appends(store, streams, args.batch)
        out["replay_events"], out["replay_events_per_s"] = replay(db)
    finally:
        await db.close()
    for name, value in out.items():
        print(line(name, round(value) if "_per_s" in name else value))
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", type=int, default=2000, help="events for the single-append runs")
    parser.add_argument("--concurrent", type=int, default=6400, help="events (rows) per concurrent run")
    parser.add_argument("--streams", type=int, default=520, help="practice streams for the batched run")
    parser.add_argument("--writebacks", type=int, default=70, help="writebacks per stream (about 7 events each)")
    parser.add_argument("--batch", type=int, default=500, help="events per append in the batched run")
    parser.add_argument(
        "--commits-in-flight", type=int, default=PgEventStore.commits_in_flight,
        help="group commits at once (the store's default; 1 to compare with commits one after the other)",
    )
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> None:
    args = parse(argv)
    with postgres() as (admin_url, _):
        trio.run(main, args, admin_url)


if __name__ == "__main__":
    run()
