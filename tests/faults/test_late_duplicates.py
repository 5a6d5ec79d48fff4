"""A booking whose first POST reaches Sikka late, on real processes: a relay between the
supervisor and ``sikka-sim`` holds that POST past the proof-of-absence window (cutting the
supervisor's connection at once, so the outcome is unknown), and delivers it afterwards.

Regression: the writeback was proven absent and re-sent, the late original landed too, and it
ended ``completed`` with two appointments at Sikka and nothing alerting. Now the original attempt
stays watched after the re-send: still pending at Sikka, it is deleted there (one appointment);
already written, both Sikka ids are recorded and ``writeback_duplicate`` alerts.

The proof window is shortened for the test: ``SIKKA_HTTP_TIMEOUT`` 2 s + ``SIKKA_LEASE_TTL`` 3 s +
``SIKKA_ABSENCE_GRACE`` 0 s; the relay holds the POST until ``HOLD_S`` after it was sent.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
import trio

from bench.processes import Sim, Supervisor, bookings, wait_ready
from tests.faults.relay import Relay

PROOF_S = 2 + 3 + 0
HOLD_S = PROOF_S + 6


def run_late_original(writeback_delay: str, alert: bool) -> tuple[dict, list[dict], list[dict], str]:
    """(the writeback at its end, Sikka's appointments for its slot, the alerts, the log);
    ``alert``: wait for the monitor to raise ``writeback_duplicate`` (it evaluates every 5 s)."""
    with tempfile.TemporaryDirectory(prefix="sikka-late-") as tmp:
        tmp = Path(tmp)
        sim = Sim(tmp, 1, "--writeback-delay", writeback_delay)
        host, port = sim.url.removeprefix("http://").split(":")
        relay = Relay(lambda: trio.open_tcp_stream(host, int(port)))
        supervisor = Supervisor(tmp, sim, "")
        del supervisor.env["DATABASE_URL"]
        supervisor.env.update({
            "SIKKA_API_URL": f"http://127.0.0.1:{relay.port}/v4", "SIKKA_HTTP_TIMEOUT": "2", "SIKKA_LEASE_TTL": "3",
            "SIKKA_ABSENCE_GRACE": "0",
        })
        try:
            supervisor.start()
            wait_ready(supervisor, 1, 60)
            (office, key, payload), = bookings(sim, ["D1000"], 1)
            relay.hold_next(b"POST /v4/appointment", HOLD_S)
            with supervisor.client() as client:
                r = client.post(f"/practices/{office}/writebacks", json={
                    "operation": "book_appointment", "idempotency_key": key, "payload": payload})
                assert r.status_code == 202, r.text
                wid = r.json()["writeback_id"]
                final = client.get(f"/writebacks/{wid}", params={"wait": 60}).json()
                deadline = time.monotonic() + 60
                while not _settled(tmp / "supervisor-1.log") and time.monotonic() < deadline:
                    time.sleep(0.5)
                deadline = time.monotonic() + (15 if alert else 0)
                while True:
                    alerts = client.get("/alerts").json()["alerts"]
                    if any(a["kind"] == "writeback_duplicate" for a in alerts) or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
            assert relay.held == 1
            slot = [a for a in sim.get(f"/_sim/practices/{office}/appointments")["items"]
                    if a["source"] == "writeback" and (a["date"], a["time"]) == (payload["date"], payload["time"])]
            log = (tmp / "supervisor-1.log").read_text()
            assert supervisor.terminate() == 0
            return final, slot, alerts, log
        finally:
            if supervisor.proc and supervisor.proc.poll() is None:
                supervisor.proc.kill()
            relay.close()
            sim.stop()


def _settled(log: Path) -> bool:
    return '"type":"duplicate_settled"' in log.read_text()


def test_a_late_original_still_pending_is_deleted_at_sikka():
    final, slot, alerts, log = run_late_original("4:6", alert=False)
    assert final["state"] == "completed" and final["attempts"] == 2
    assert '"type":"proven_absent"' in log and '"type":"duplicate_found"' in log
    assert len(slot) == 1, slot  # the late original was deleted while pending
    assert not [a for a in alerts if a["kind"] == "writeback_duplicate"]


@pytest.mark.slow
def test_a_late_original_already_written_alerts_with_both_ids():
    final, slot, alerts, log = run_late_original("0:0.5", alert=True)
    assert final["state"] == "completed"
    assert len(slot) == 2, slot  # written twice: a person removes one
    (alert,) = [a for a in alerts if a["kind"] == "writeback_duplicate"]
    assert alert["severity"] == "critical" and alert["office_id"] == "D1000"
    for row in slot:
        assert row["writeback_id"] in alert["message"]
