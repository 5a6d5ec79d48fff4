"""End to end: ``sikka-sim`` and ``sikka-supervisor run`` as separate processes on real PostgreSQL,
keys rolling every 60 s (``--token-ttl 60``), bookings submitted through the admin socket.

Each run ends with the checks that matter: every booking ``completed``; the simulator's ground
truth holds exactly one appointment per booking; no 429 earned by exceeding a window; no call
made with a key after its announced expiry; ``SIGTERM`` exits 0. The kill variant adds cut
connections after Sikka accepted (``drop_after_accept_rate``) and ``kill -9`` of the supervisor,
with the client re-sending unanswered requests under their idempotency keys. The process
wrappers (``Sim``, ``Supervisor``, ``bookings``) are ``bench.processes``', shared with the benchmarks.

The default suite runs a short version of each; the ``slow`` marker holds the full sizes (5
practices, 100 bookings each, three kills) for the ``CI=true`` stage.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.processes import Sim, Supervisor, bookings


def submit_all(supervisor: Supervisor, work, *, kill_after: list[int] = ()) -> dict[str, str]:
    """Submit every booking while a killer thread ``kill -9``s the supervisor (and restarts it)
    once the submissions numbered in ``kill_after`` were answered; requests that get no answer
    are re-sent under their idempotency key until one comes."""
    ids: dict[str, str] = {}
    answered = threading.Semaphore(0)

    def killer():
        done = 0
        for threshold in kill_after:
            while done < threshold:
                answered.acquire()
                done += 1
            time.sleep(0.05)  # let the next request be in flight
            supervisor.kill9()
            supervisor.start()

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        for office, key, payload in work:
            while True:
                try:
                    with supervisor.client(timeout=10) as client:
                        r = client.post(
                            f"/practices/{office}/writebacks",
                            json={"operation": "book_appointment", "payload": payload, "idempotency_key": key},
                        )
                    break
                except httpx.TransportError:  # killed under us: re-send once it is back
                    time.sleep(0.3)
            assert r.status_code in (200, 202), r.text
            ids[key] = r.json()["writeback_id"]
            answered.release()
    finally:
        thread.join(60)
    return ids


def wait_all_final(supervisor: Supervisor, ids: dict[str, str], timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    final: dict[str, dict] = {}
    with supervisor.client(timeout=70) as client:
        while len(final) < len(ids) and time.monotonic() < deadline:
            for key, wid in ids.items():
                if key not in final:
                    body = client.get(f"/writebacks/{wid}", params={"wait": 5}).json()
                    if body["state"] in ("completed", "failed", "cancelled"):
                        final[key] = body
    assert len(final) == len(ids), f"{len(ids) - len(final)} writebacks not final in time"
    return final


def check_ground_truth(sim: Sim, work, final: dict[str, dict]) -> None:
    assert {b["state"] for b in final.values()} == {"completed"}, {k: b["state"] for k, b in final.items()}
    for office in {o for o, _, _ in work}:
        rows = [r for r in sim.get(f"/_sim/practices/{office}/appointments")["items"] if r["source"] == "writeback"]
        slots = [(r["date"], r["time"]) for r in rows]
        wanted = [(p["date"], p["time"]) for o, _, p in work if o == office]
        assert sorted(slots) == sorted(wanted), "lost or duplicated bookings"
    stats = sim.get("/_sim/stats")
    assert stats["app"]["status_429"] == 0
    for office, p in stats["practices"].items():
        assert p["status_429"] == 0, (office, p)
        assert p["expired_key_calls"] == 0, (office, p)


def run_scenario(tmp: Path, database_url: str, *, practices: int, per_practice: int, kills: int, drop_rate: float):
    sim = Sim(tmp, practices)
    supervisor = Supervisor(tmp, sim, database_url)
    try:
        supervisor.start()
        offices = [f"D{1000 + n}" for n in range(practices)]
        work = bookings(sim, offices, per_practice)
        if drop_rate:
            sim.faults({"drop_after_accept_rate": drop_rate})
        total = len(work)
        kill_after = [total * (k + 1) // (kills + 1) for k in range(kills)]
        ids = submit_all(supervisor, work, kill_after=kill_after)
        final = wait_all_final(supervisor, ids, timeout=120 + 2 * total)
        check_ground_truth(sim, work, final)
        assert supervisor.terminate() == 0
    finally:
        if supervisor.proc and supervisor.proc.poll() is None:
            supervisor.proc.kill()
        sim.stop()


def test_bookings_end_to_end(tmp_path, database_url):
    run_scenario(tmp_path, database_url, practices=2, per_practice=10, kills=0, drop_rate=0)


def test_bookings_survive_cut_connections_and_kill_9(tmp_path, database_url):
    run_scenario(tmp_path, database_url, practices=2, per_practice=10, kills=1, drop_rate=0.3)


@pytest.mark.slow
def test_bookings_end_to_end_full(tmp_path, database_url):
    run_scenario(tmp_path, database_url, practices=5, per_practice=100, kills=0, drop_rate=0)


@pytest.mark.slow
def test_bookings_survive_cut_connections_and_kill_9_full(tmp_path, database_url):
    run_scenario(tmp_path, database_url, practices=5, per_practice=100, kills=3, drop_rate=0.2)
