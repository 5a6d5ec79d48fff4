"""``python -m bench.recovery``: seconds from a restart after ``kill -9`` until everything runs again.

Setup, on a fresh database (embedded PostgreSQL, or ``DATABASE_URL``'s server) with
``sikka-sim --practices N`` in its own process (writebacks stay pending an hour or two there):

1. the log is seeded directly through the store (``bench.workload.practice_streams``: N
   practices' registrations, token refreshes and finished writeback lifecycles, ``--events``
   in all) — hours of history in seconds;
2. ``sikka-supervisor run`` starts: onboarding, one actor per practice, a fresh key each;
3. ``--inflight`` bookings are submitted through the admin socket (one per practice, first
   practices first) and acknowledged by Sikka: ``pending``, their first checks due seconds apart;
4. ``kill -9`` the supervisor, restart it, and watch (admin socket and the events table):
   ``actors_s``: until ``GET /usage`` lists every practice's actor; ``first_checks_s``: until
   every in-flight writeback has an event recorded after the restart that checked it at Sikka
   (``status_checked``, or a final state); ``recovery_s`` = the later of the two, from the
   moment the restart began (``kill -9`` to exec included). Commitment (issue 10): ≤ 10 s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psycopg
import trio

from actors.core.secret import Secret
from bench.common import line
from bench.processes import Sim, Supervisor, bookings, fresh_database, postgres, wait_ready
from bench.workload import practice_streams
from sim.data import secret_key
from store.credentials import Credentials, PgCredentialRows, Vault, parse_keys
from store.db import Database
from store.pglog import PgEventStore

CHECKED = ("status_checked", "writeback_completed", "writeback_failed", "writeback_reconciled")


def seed(url: str, practices: int, events: int, secrets_key: str, sim_seed: int = 1) -> int:
    """Append about ``events`` events over ``practices`` streams and store each practice's secret
    key (the simulator's, as onboarding would); how many events were appended."""
    per_practice = max(1, round((events / practices - 2) / 5.6))  # a lifecycle averages about 5.6 events

    async def run() -> int:
        db = Database(url, max_size=2)
        await db.open()
        try:
            store = PgEventStore(db)
            credentials = Credentials(Vault(parse_keys(secrets_key)), PgCredentialRows(db))
            total = 0
            for stream, evs in practice_streams(seed=7, practices=practices, writebacks_per_practice=per_practice):
                await store.append(stream, 0, evs)
                office = evs[0].office_id
                await credentials.put_secret(office, "secret_key", Secret(secret_key(sim_seed, office)))
                total += len(evs)
            return total
        finally:
            await db.close()

    return trio.run(run)


def last_position(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]


def checked_since(url: str, position: int, writeback_ids: list[str]) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT data->>'writeback_id' FROM events"
            " WHERE position > %s AND type = ANY(%s) AND data->>'writeback_id' = ANY(%s)",
            (position, list(CHECKED), writeback_ids),
        ).fetchall()
    return {r[0] for r in rows}


def submit_inflight(sim: Sim, supervisor: Supervisor, offices: list[str]) -> list[str]:
    ids = []
    with supervisor.client() as admin:
        for office, key, payload in bookings(sim, offices, 1):
            r = admin.post(f"/practices/{office}/writebacks",
                           json={"operation": "book_appointment", "payload": payload, "idempotency_key": key})
            assert r.status_code == 202, r.text
            ids.append(r.json()["writeback_id"])
        deadline = time.monotonic() + 120
        while True:
            states = [admin.get(f"/writebacks/{w}").json()["state"] for w in ids]
            if all(s == "pending" for s in states):
                return ids
            assert time.monotonic() < deadline, f"not all pending: {sorted(set(states))}"
            time.sleep(0.5)


def measure(admin_url: str, tmp: Path, practices: int, events: int, inflight: int, timeout: float) -> dict:
    url = fresh_database(admin_url, "sikka_bench_recovery")
    sim = Sim(tmp, practices, "--token-ttl", "86400", "--writeback-delay", "3600:7200")
    supervisor = Supervisor(tmp, sim, url)
    seeded = seed(url, practices, events, supervisor.env["SIKKA_SECRETS_KEY"])
    try:
        supervisor.start()
        wait_ready(supervisor, practices, timeout)
        ids = submit_inflight(sim, supervisor, [f"D{1000 + n}" for n in range(min(inflight, practices))])
        supervisor.kill9()
        position = last_position(url)
        restart = time.monotonic()
        supervisor.start()
        actors_s = checks_s = None
        with supervisor.client() as admin:
            while actors_s is None or checks_s is None:
                now = time.monotonic() - restart
                if actors_s is None and len(admin.get("/usage").json()["practices"]) >= practices:
                    actors_s = now
                if checks_s is None and len(checked_since(url, position, ids)) == len(ids):
                    checks_s = now
                if now > timeout:
                    raise TimeoutError(f"after {now:.0f} s: actors {actors_s}, first checks {checks_s}")
                time.sleep(0.1)
        assert supervisor.terminate() == 0
        total = last_position(url)
    finally:
        if supervisor.proc is not None and supervisor.proc.poll() is None:
            supervisor.kill9()
        sim.stop()
    return {
        "practices": practices,
        "events_seeded": seeded,
        "events_at_kill": position,
        "inflight": len(ids),
        "actors_s": actors_s,
        "first_checks_s": checks_s,
        "recovery_s": max(actors_s, checks_s),
        "events_total": total,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--practices", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000, help="events seeded into the log")
    parser.add_argument("--inflight", type=int, default=200, help="pending writebacks at the kill")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if min(args.practices, args.events, args.inflight) < 1:
        parser.error("--practices, --events and --inflight must be positive")
    with postgres() as (admin_url, tmp):
        out = measure(admin_url, tmp, args.practices, args.events, args.inflight, args.timeout)
    for name, value in out.items():
        print(line(name, value))
    return out


if __name__ == "__main__":
    main()
