"""A canary run end to end: ``sikka-sim`` and ``sikka-supervisor run`` as processes on real
PostgreSQL, with a distinctive app key, the simulator's per-practice secret keys, Slack pointed
at a local receiver, and patients with distinctive names created and booked. Afterwards no secret
(app key, secret keys, the request and refresh keys the supervisor holds) appears in stdout,
stderr, events, projections, alerts, Slack messages or metrics, and no patient value appears
anywhere except encrypted in the events."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import trio

from sim.data import secret_key
from store.credentials import Credentials, PgCredentialRows, Vault, parse_keys
from store.db import Database
from bench.processes import Sim, Supervisor

APP_KEY = "CANARY-APPKEY-5f1e7d3c9b"
SEED = 4242
FIRST, LAST, EMAIL = "Quentavius", "Canarybrook", "quentavius.canary@example.test"


class SlackReceiver:
    def __init__(self):
        self.messages: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.messages.append(body.decode())
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def held_keys(database_url: str, secrets_key: str, offices: list[str]) -> list[str]:
    async def read():
        db = Database(database_url, max_size=2)
        await db.open()
        try:
            credentials = Credentials(Vault(parse_keys(secrets_key)), PgCredentialRows(db))
            found = []
            for office in offices:
                for kind in ("request_key", "refresh_key", "secret_key"):
                    value = await credentials.secret(office, kind)
                    if value:
                        found.append(value)
            return found
        finally:
            await db.close()

    return trio.run(read)


def test_canary_secrets_and_patient_values_stay_out(tmp_path, database_url):
    offices = ["D1000", "D1001"]
    sim = Sim(tmp_path, 2, "--app-key", APP_KEY, "--seed", str(SEED))
    slack = SlackReceiver()
    supervisor = Supervisor(tmp_path, sim, database_url)
    supervisor.env.update({"SIKKA_APP_KEY": APP_KEY, "SLACK_WEBHOOK_URL": slack.url})
    try:
        supervisor.start()
        client = supervisor.client()
        for _ in range(100):
            if len(client.get("/practices").json()["practices"]) == 2:
                break
            threading.Event().wait(0.1)
        provider = sim.get("/_sim/practices/D1000/appointments")["items"][0]["provider_id"]
        seeded = sim.get("/_sim/practices/D1000/appointments")["items"][0]
        ids = []
        r = client.post("/practices/D1000/writebacks", json={"operation": "create_patient", "payload": {
            "firstname": FIRST, "lastname": LAST, "provider_id": provider, "practice_id": "1", "email": EMAIL}})
        assert r.status_code == 202, r.text
        ids.append(r.json()["writeback_id"])
        patient = sim.get("/_sim/practices/D1000/patients")["items"][0]["patient_id"]
        r = client.post("/practices/D1000/writebacks", json={"operation": "book_appointment", "payload": {
            "patient_id": patient, "date": "2027-01-05", "time": "09:00", "length": 30, "provider_id": provider,
            "operatory": seeded["operatory"], "practice_id": "1", "note": f"{FIRST} {LAST} canary note"}})
        assert r.status_code == 202, r.text
        ids.append(r.json()["writeback_id"])
        for wid in ids:
            assert client.get(f"/writebacks/{wid}", params={"wait": "30"}).json()["state"] == "completed"
        sim.faults({"revoke": ["D1001"]})  # an alert, so Slack and /alerts carry something
        client.post("/practices/D1001/refresh-token")
        for _ in range(300):
            if any("setup_required" in m for m in slack.messages):
                break
            threading.Event().wait(0.1)
        alerts = client.get("/alerts").text
        metrics = client.get("/metrics").text
        assert "setup_required" in alerts and slack.messages, (alerts, slack.messages)
        assert supervisor.terminate() == 0
    finally:
        if supervisor.proc and supervisor.proc.poll() is None:
            supervisor.kill9()
        sim.stop()
        slack.server.shutdown()

    secrets = [APP_KEY] + [secret_key(SEED, o) for o in offices]
    secrets += held_keys(database_url, supervisor.env["SIKKA_SECRETS_KEY"], offices)
    assert len(secrets) >= 5
    output = "".join(p.read_text() for p in tmp_path.glob("supervisor-*.log"))
    with psycopg.connect(database_url) as conn:
        events = "\n".join(r[0] for r in conn.execute("SELECT data::text FROM events"))
        projections = "\n".join(
            r[0] for r in conn.execute(
                "SELECT row_to_json(p)::text FROM practices p UNION ALL SELECT row_to_json(w)::text FROM writebacks w")
        )
    places = {"output": output, "events": events, "projections": projections, "alerts": alerts,
              "slack": json.dumps(slack.messages), "metrics": metrics}
    for secret in secrets:
        for where, text in places.items():
            assert secret not in text, (where, secret[:6])
    for value in (FIRST, LAST, EMAIL):
        for where, text in places.items():
            assert value not in text, (where, value)  # events hold the payloads encrypted only
    assert "practice.event" in output and "writeback_completed" in output  # the log was not empty
