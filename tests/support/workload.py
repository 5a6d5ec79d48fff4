"""The client of the process-level fault suites (``tests/faults``: kill cycles, database faults)
and their score, from the simulator's ground truth.

``Workload``: a thread that submits bookings, patient creations and reschedules (each tagged, so
Sikka's records can be told apart) through the admin socket, re-sending an unanswered one under
its idempotency key until it is answered, and records how long every answer took. It stops after
its last item, or between two items once ``stop()`` is called.

``score_of``: every term must be zero: ``lost`` (accepted, but not in Sikka's records, or never
answered), ``duplicates`` (more than one record at Sikka), ``stuck`` (not final), ``misreported``
(the final state says otherwise than Sikka), 429s and calls with an expired key at the simulator,
``replay_mismatches`` (the production fold over the whole log against the live projections:
``store.rebuild``), ``contract_violations`` (an answer the interface does not allow).
"""

from __future__ import annotations

import random
import threading
import time

import httpx
import psycopg

from bench.processes import Sim, Supervisor
from store.rebuild import rebuild

FINAL = ("completed", "failed", "cancelled")


class Workload:
    def __init__(
        self, supervisor: Supervisor, sim: Sim, rng: random.Random, count: int, *,
        offices: list[str], tag: str = "kill", pace: float = 0.05, timeout: float = 10,
    ):
        self.supervisor = supervisor
        self.offices = offices
        self.tag = tag
        self.pace = pace
        self.timeout = timeout
        self.items = []  # (office, key, operation, payload, tag)
        for office in offices:
            seeded = sim.get(f"/_sim/practices/{office}/appointments")["items"]
            patient = sim.get(f"/_sim/practices/{office}/patients")["items"][0]["patient_id"]
            provider, operatory = seeded[0]["provider_id"], seeded[0]["operatory"]
            for n in range(count):
                self.items.append((office, *_item(rng, f"{tag}-{office}-{n}", n, patient, provider, operatory, seeded)))
        rng.shuffle(self.items)
        self.ids: dict[str, str] = {}
        self.refused: list[str] = []
        self.attempted = 0
        self.answers: list[tuple[float, float, int]] = []  # (began, seconds, status; 0: no answer)
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        for office, key, operation, payload, _ in self.items:
            if self._stopping.is_set():
                return
            self.attempted += 1
            body = {"operation": operation, "payload": payload, "idempotency_key": key}
            while True:
                began = time.monotonic()
                try:
                    with self.supervisor.client(timeout=self.timeout) as client:
                        r = client.post(f"/practices/{office}/writebacks", json=body)
                except httpx.TransportError:  # killed under us, or no answer: re-send under the same key
                    self.answers.append((began, time.monotonic() - began, 0))
                    time.sleep(0.2)
                    continue
                self.answers.append((began, time.monotonic() - began, r.status_code))
                if r.status_code in (200, 202):
                    self.ids[key] = r.json()["writeback_id"]
                    break
                if r.status_code != 503:
                    self.refused.append(f"{key}: {r.status_code} {r.text}")
                    break
                time.sleep(0.2)
            time.sleep(self.pace)

    def submitted(self) -> list[tuple]:
        return self.items[: self.attempted]


def _item(rng: random.Random, tag: str, n: int, patient, provider, operatory, seeded) -> tuple[str, str, dict, str]:
    """(key, operation, payload, tag): a booking in a slot of its own, a new patient or a reschedule."""
    roll = rng.random()
    if roll < 0.6:
        return tag, "book_appointment", {
            "patient_id": patient, "date": f"2027-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}",
            "time": f"{8 + n // 336 % 9:02d}:{(n // 28 // 12 % 6) * 10:02d}", "length": 30, "provider_id": provider,
            "operatory": operatory, "practice_id": "1", "description": tag}, tag
    if roll < 0.85:
        return tag, "create_patient", {
            "firstname": tag, "lastname": "Faults", "provider_id": provider, "practice_id": "1"}, tag
    return tag, "reschedule_appointment", {
        "appointment_sr_no": rng.choice(seeded)["appointment_sr_no"], "practice_id": "1",
        "time": f"{8 + n % 9:02d}:30", "description": tag}, tag


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

    created = sikka_records(sim, work.offices, f"{work.tag}-")
    for _, key, operation, _, tag in work.submitted():
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


def sikka_records(sim: Sim, offices: list[str], prefix: str) -> dict[str, int]:
    """Tag → how many appointments and patients at Sikka carry it (the ground truth)."""
    created: dict[str, int] = {}
    for office in offices:
        for kind, field in (("appointments", "description"), ("patients", "firstname")):
            for row in sim.get(f"/_sim/practices/{office}/{kind}")["items"]:
                if row.get("source") == "writeback" and row.get(field, "").startswith(prefix):
                    created[row[field]] = created.get(row[field], 0) + 1
    return created
