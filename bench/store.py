"""``python -m bench.store``: event-store throughput on the embedded PostgreSQL (or DATABASE_URL).

Prints one ``name: value`` per line:
- ``raw_insert_per_s``: plain single-row autocommit INSERTs through the store's own
  thread-and-pool path (``Database.run``): the machine's baseline for one durable commit;
- ``append_events_per_s_single``: the public ``append``, one event per durable commit;
- ``single_vs_raw``: their ratio (target ≥ 0.5);
- ``append_events_per_s_batched``: the public ``append`` with batches of events (target ≥ 20,000);
- ``replay_events_per_s``: read all + decode + the production fold over a realistic lifecycle mix
  on ≥ 500 streams and ≥ 200,000 events, read from PostgreSQL (target ≥ 100,000).
"""

from __future__ import annotations

import argparse
import time

import psycopg
import trio

from actors.core import events as ev
from actors.core.state import empty, evolve
from bench.processes import fresh_database, postgres
from bench.workload import practice_streams
from store.db import Database
from store.pglog import PgEventStore, iterate_log


def bench_database(admin_url: str) -> str:
    """A fresh migrated database with the plain table the raw INSERTs go to."""
    url = fresh_database(admin_url, "sikka_bench_store")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, stream_id text, type text, data jsonb)")
    return url


async def raw_inserts(db: Database, n: int, payload: str) -> float:
    def insert(conn, i):
        conn.execute(
            "INSERT INTO bench_raw (stream_id, type, data) VALUES (%s, %s, %s::jsonb)",
            (f"practice-R{i % 50}", "status_checked", payload),
        )

    start = time.perf_counter()
    for i in range(n):
        await db.run(insert, i)
    return n / (time.perf_counter() - start)


async def single_appends(store: PgEventStore, events: list) -> float:
    start = time.perf_counter()
    for version, event in enumerate(events):
        await store.append("practice-SINGLE", version, [event])
    return len(events) / (time.perf_counter() - start)


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


async def main(args: argparse.Namespace, admin_url: str) -> None:
    url = bench_database(admin_url)
    db = Database(url, max_size=4)
    await db.open()
    store = PgEventStore(db)
    try:
        _, one_practice = next(practice_streams(seed=9, practices=1, writebacks_per_practice=args.single // 6 + 1))
        sample = one_practice[-1]
        raw = await raw_inserts(db, args.single, ev.encode(sample).decode())
        single = await single_appends(store, one_practice[: args.single])
        print(f"raw_insert_per_s: {raw:.0f}")
        print(f"append_events_per_s_single: {single:.0f}")
        print(f"single_vs_raw: {single / raw:.2f}")

        streams = list(practice_streams(seed=1, practices=args.streams, writebacks_per_practice=args.writebacks))
        batched = await batched_appends(store, streams, args.batch)
        print(f"append_events_per_s_batched: {batched:.0f}")
        count, rate = replay(db)
        print(f"replay_events: {count}")
        print(f"replay_events_per_s: {rate:.0f}")
    finally:
        await db.close()


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.store")
    parser.add_argument("--single", type=int, default=2000, help="events for the single-append runs")
    parser.add_argument("--streams", type=int, default=520, help="practice streams for the batched run")
    parser.add_argument("--writebacks", type=int, default=70, help="writebacks per stream (about 7 events each)")
    parser.add_argument("--batch", type=int, default=500, help="events per append in the batched run")
    args = parser.parse_args()
    with postgres() as (admin_url, _):
        trio.run(main, args, admin_url)

if __name__ == "__main__":
    run()
