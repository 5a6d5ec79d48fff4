"""Real crashes: ``kill -9``/restart cycles of a ``sikka-supervisor run`` process on real
PostgreSQL, against ``sikka-sim`` over HTTP (keys rolling every 60 s), while a client keeps
submitting bookings, patient creations and reschedules through the admin socket and the
simulator cuts connections after accepting writebacks and answers some requests 5xx.

Each kill lands at a random moment (a seeded ``random.Random``), not between requests; the client
re-sends anything unanswered under its idempotency key. When the cycles are done the faults are
lifted and the run ends with the fault suite's score, from the simulator's ground truth
(``/_sim/practices/{id}/appointments`` and ``/patients``, ``/_sim/stats``) and the database
(``store.rebuild.rebuild(swap=False)``: the production fold over the whole log against the
live projections). Every term must be zero.

Cycles: ``SIKKA_KILL_CYCLES`` (default 3; the ``CI=true`` stage runs 20).
"""

from __future__ import annotations

import os
import random
import threading
import time

import httpx
import psycopg

from store.rebuild import rebuild
from bench.processes import Sim, Supervisor, wait_ready

CYCLES = int(os.environ.get("SIKKA_KILL_CYCLES", "3"))
PRACTICES = 3
FINAL = ("completed", "failed", "cancelled")


class Workload:
    """The client: a thread that submits every item, re-sending unanswered ones (same key)."""

    def __init__(self, supervisor: Supervisor, sim: Sim, rng: random.Random, count: int):
        self.supervisor = supervisor
        self.items = []  # (office, key, operation, payload, tag)
        for office in (f"D{1000 + n}" for n in range(PRACTICES)):
            seeded = sim.get(f"/_sim/practices/{office}/appointments")["items"]
            patient = sim.get(f"/_sim/practices/{office}/patients")["items"][0]["patient_id"]
            provider, operatory = seeded[0]["provider_id"], seeded[0]["operatory"]
            for n in range(count):
                tag = f"kill-{office}-{n}"
                roll = rng.random()
                if roll < 0.6:
                    operation, payload = "book_appointment", {
                        "patient_id": patient, "date": f"2027-03-{1 + n % 28:02d}", "time": f"{8 + n % 9:02d}:00",
                        "length": 30, "provider_id": provider, "operatory": operatory, "practice_id": "1",
                        "description": tag}
                elif roll < 0.85:
                    operation, payload = "create_patient", {
                        "firstname": tag, "lastname": "Killcycle", "provider_id": provider, "practice_id": "1"}
                else:
                    operation, payload = "reschedule_appointment", {
                        "appointment_sr_no": rng.choice(seeded)["appointment_sr_no"], "practice_id": "1",
                        "time": f"{8 + n % 9:02d}:30", "description": tag}
                self.items.append((office, tag, operation, payload, tag))
        rng.shuffle(self.items)
        self.ids: dict[str, str] = {}
        self.refused: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for office, key, operation, payload, _ in self.items:
            body = {"operation": operation, "payload": payload, "idempotency_key": key}
            while True:
                try:
                    with self.supervisor.client(timeout=10) as client:
                        r = client.post(f"/practices/{office}/writebacks", json=body)
                except httpx.TransportError:  # killed under us: re-send once it is back
                    time.sleep(0.2)
                    continue
                if r.status_code in (200, 202):
                    self.ids[key] = r.json()["writeback_id"]
                    break
                if r.status_code != 503:
                    self.refused.append(f"{key}: {r.status_code} {r.text}")
                    break
                time.sleep(0.2)
            time.sleep(0.05)


def test_kill_9_cycles_score_zero(tmp_path, database_url):
    rng = random.Random(f"kill-cycles:{CYCLES}")
    sim = Sim(tmp_path, PRACTICES)
    supervisor = Supervisor(tmp_path, sim, database_url)
    try:
        supervisor.start()
        wait_ready(supervisor, PRACTICES, 60)  # onboarded: a practice not yet registered is 404 unknown_practice
        work = Workload(supervisor, sim, rng, count=4 + 2 * CYCLES)
        work.thread.start()
        for _ in range(CYCLES):
            time.sleep(rng.uniform(0.3, 2.5))
            sim.faults({"drop_after_accept_rate": rng.choice([0, 0.2, 0.5]), "error_rate": rng.choice([0, 0.05, 0.2])})
            supervisor.kill9()
            time.sleep(rng.choice([0, 0, 0.5, 2]))
            supervisor.start()
        work.thread.join(300)
        assert not work.thread.is_alive(), "the client did not get every submission answered"
        sim.faults({})
        final = wait_final(supervisor, work.ids, timeout=180)
        score, details = score_of(sim, database_url, work, final)
        assert sum(score.values()) == 0, f"score {score}\n" + "\n".join(details)
        assert supervisor.terminate() == 0
    finally:
        if supervisor.proc and supervisor.proc.poll() is None:
            supervisor.proc.kill()
        sim.stop()


def wait_final(supervisor: Supervisor, ids: dict[str, str], timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    rows: dict[str, dict] = {}
    with supervisor.client(timeout=70) as client:
        while time.monotonic() < deadline:
            for key, wid in ids.items():
                if rows.get(key, {}).get("state") not in FINAL:
                    rows[key] = client.get(f"/writebacks/{wid}", params={"wait": 1}).json()
            if all(r["state"] in FINAL for r in rows.values()):
                break
    return rows


def score_of(sim: Sim, database_url: str, work: Workload, final: dict[str, dict]) -> tuple[dict[str, int], list[str]]:
    score = dict.fromkeys(("lost", "duplicates", "stuck", "misreported", "status_429", "expired_key_calls",
                           "replay_mismatches", "contract_violations"), 0)
    details: list[str] = []

    def fault(term: str, text: str) -> None:
        score[term] += 1
        details.append(f"{term}: {text}")

    created: dict[str, int] = {}
    for office in (f"D{1000 + n}" for n in range(PRACTICES)):
        for kind, field in (("appointments", "description"), ("patients", "firstname")):
            for row in sim.get(f"/_sim/practices/{office}/{kind}")["items"]:
                if row.get("source") == "writeback" and row.get(field, "").startswith("kill-"):
                    created[row[field]] = created.get(row[field], 0) + 1
    for office, key, operation, _, tag in work.items:
        made = created.get(tag, 0)
        if made > 1:
            fault("duplicates", f"{key}: {made} records at Sikka")
        row = final.get(key)
        if row is None:
            fault("lost", f"{key}: never accepted")
        elif row["state"] not in FINAL:
            fault("stuck", f"{key}: {row['state']}")
        elif operation != "reschedule_appointment":
            if row["state"] == "completed" and made == 0:
                fault("lost", f"{key}: completed, but Sikka holds no record")
            elif row["state"] != "completed" and made:
                fault("misreported", f"{key}: {row['state']} ({row['error']}) although Sikka holds the record")
        elif row["state"] != "completed":
            fault("misreported", f"{key}: {row['state']} ({row['error']})")
    stats = sim.get("/_sim/stats")
    score["status_429"] += stats["app"]["status_429"]
    for office, p in stats["practices"].items():
        score["status_429"] += p["status_429"]
        score["expired_key_calls"] += p["expired_key_calls"]
        if p["status_429"] or p["expired_key_calls"]:
            details.append(f"{office}: {p}")
    with psycopg.connect(database_url) as conn:
        differences = rebuild(conn, swap=False).differences
    if differences:
        fault("replay_mismatches", f"{differences} projection rows differ from the replay of the log")
    for text in work.refused:
        fault("contract_violations", text)
    return score, details
