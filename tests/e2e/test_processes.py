"""End to end: ``sikka-sim`` and ``sikka-supervisor run`` as separate processes on real PostgreSQL,
keys rolling every 60 s (``--token-ttl 60``), bookings submitted through the admin socket.

Each run ends with the checks that matter: every booking ``completed``; the simulator's ground
truth holds exactly one appointment per booking; no 429 earned by exceeding a window; no call
made with a key after its announced expiry; ``SIGTERM`` exits 0. The kill variant adds cut
connections after Sikka accepted (``drop_after_accept_rate``) and ``kill -9`` of the supervisor,
with the client re-sending unanswered requests under their idempotency keys.

The default suite runs a short version of each; the ``slow`` marker holds the full sizes (5
practices, 100 bookings each, three kills) for the ``CI=true`` stage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

BIN = Path(sys.executable).parent


class Sim:
    def __init__(self, tmp: Path, practices: int, *extra: str):
        self.log = open(tmp / "sim.log", "w+")
        self.proc = subprocess.Popen(
            [str(BIN / "sikka-sim"), "--port", "0", "--practices", str(practices), "--token-ttl", "60",
             "--writeback-delay", "1:6", *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        first = self.proc.stdout.readline().strip()
        assert first.startswith("listening on http://"), first
        self.url = first.removeprefix("listening on ")
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def get(self, path: str):
        return self.http.get(path).json()

    def faults(self, faults: dict) -> None:
        assert self.http.post("/_sim/faults", json=faults).status_code == 200

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Supervisor:
    def __init__(self, tmp: Path, sim: Sim, database_url: str):
        self.tmp = tmp
        self.socket = tmp / "admin.sock"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SIKKA_")},
            "DATABASE_URL": database_url,
            "SIKKA_DATA_DIR": str(tmp / "data"),
            "SIKKA_ADMIN_SOCKET": str(self.socket),
            "SIKKA_SECRETS_KEY": Fernet.generate_key().decode(),
            "SIKKA_APP_ID": "sim-app-id",
            "SIKKA_APP_KEY": "sim-app-key",
            "SIKKA_API_URL": f"{sim.url}/v4",
            "SIKKA_NODE_ID": "e2e",
            "SIKKA_HTTP_TIMEOUT": "5",
            "SIKKA_LOG_FORMAT": "json",
        }
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.tmp / f"supervisor-{self.starts}.log", "w")
        self.proc = subprocess.Popen([str(BIN / "sikka-supervisor"), "run"], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.tmp / f"supervisor-{self.starts}.log").read_text()
            try:
                if self.client(timeout=2).get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the supervisor did not come up")

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://localhost", timeout=timeout)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def bookings(sim: Sim, offices: list[str], per_practice: int) -> list[tuple[str, str, dict]]:
    """(office, idempotency key, payload): each booking in a slot of its own, so the ground
    truth can tell every booking apart."""
    out = []
    for office in offices:
        seeded = sim.get(f"/_sim/practices/{office}/appointments")["items"][0]
        patient = sim.get(f"/_sim/practices/{office}/patients")["items"][0]["patient_id"]
        for n in range(per_practice):
            payload = {
                "patient_id": patient,
                "date": f"2027-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}",
                "time": f"{8 + n // 336 % 10:02d}:{(n // 28 // 12 % 6) * 10:02d}",
                "length": 30,
                "provider_id": seeded["provider_id"],
                "operatory": seeded["operatory"],
                "practice_id": "1",
            }
            out.append((office, f"booking-{office}-{n}", payload))
    return out


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
