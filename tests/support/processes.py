"""Driving the real processes of the end-to-end tests (``bench.processes``: ``Sim``, ``Supervisor``):
submit bookings through the admin socket while a killer thread ``kill -9``s the supervisor,
wait for every writeback to end, and check the simulator's ground truth (exactly one
appointment per booking); ``free_port`` for a process that must be told its port.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import httpx

from bench.processes import Sim, Supervisor


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses now, below the kernel's ephemeral range: a port
    the kernel handed out (bind to 0) may be given next to any outgoing connection before the
    test listens on it (``Address already in use``, seen in CI); ports below the range never are."""
    low = _ephemeral_low()
    while True:
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


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
