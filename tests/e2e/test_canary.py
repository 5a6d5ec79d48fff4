"""A canary run end to end: ``sikka-sim`` and ``sikka-supervisor run`` as processes on real
PostgreSQL, with a distinctive app key, API token and callback key, the simulator's per-practice
secret keys, Slack and Sentry pointed at local receivers, the TCP listener used with the token,
Sikka's webhook with its key, patients with distinctive names created and booked, and the defect
as found: an actor crashing during a token refresh because the database refused to store the new
keys. Afterwards no secret (those settings, the Fernet key, secret keys, the request and refresh
keys the supervisor holds) appears in stdout, stderr, events, projections, alerts, Slack
messages, Sentry events or metrics, and no patient value appears anywhere except encrypted in
the events. (Every layer failing in turn: ``test_canary_layers``.)"""

from __future__ import annotations

import json
import threading

import httpx
import psycopg
import trio

from sim.data import secret_key
from store.credentials import Credentials, PgCredentialRows, Vault, parse_keys
from store.db import Database
from bench.processes import Sim, Supervisor
from tests.support.processes import free_port
from tests.e2e.test_canary_layers import refuse_writes
from tests.support.receivers import Receiver

APP_KEY = "CANARY-APPKEY-5f1e7d3c9b"
API_TOKEN = "CANARY-TOKEN-8a2b4c6d"
CALLBACK_KEY = "CANARY-CALLBACK-1e3f5a7b"
SENTRY_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SEED = 4242
FIRST, LAST, EMAIL = "Quentavius", "Canarybrook", "quentavius.canary@example.test"


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
                        found.append(value.reveal())
            return found
        finally:
            await db.close()

    return trio.run(read)


def test_canary_secrets_and_patient_values_stay_out(tmp_path, database_url):
    offices = ["D1000", "D1001"]
    sim = Sim(tmp_path, 2, "--app-key", APP_KEY, "--seed", str(SEED))
    slack, sentry = Receiver(), Receiver()
    supervisor = Supervisor(tmp_path, sim, database_url)
    port = free_port()
    supervisor.env.update({"SIKKA_APP_KEY": APP_KEY, "SLACK_WEBHOOK_URL": f"{slack.url}/hook",
                           "SENTRY_DSN": f"http://{SENTRY_KEY}@127.0.0.1:{sentry.port}/1",
                           "SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}", "SIKKA_API_TOKEN": API_TOKEN,
                           "SIKKA_WEBHOOK_CALLBACK_KEY": CALLBACK_KEY})
    tcp = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        supervisor.start()
        client = supervisor.client()
        assert tcp.get("/practices", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 200
        assert tcp.get("/practices", headers={"Authorization": f"Bearer {API_TOKEN}x"}).status_code == 401
        assert tcp.post("/webhooks/sikka", json={}, headers={"callback-key": CALLBACK_KEY}).status_code == 202
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
        refuse_writes(database_url, "request_key")  # the defect as found: new keys in hand, not stored
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(supervisor.socket)), base_url="http://x",
                          timeout=3) as impatient:
            try:
                impatient.post("/practices/D1000/refresh-token")
            except httpx.TimeoutException:
                pass  # the actor crashed after recording the request
        log = tmp_path / "supervisor-1.log"
        for _ in range(200):
            if '"actor.crashed"' in log.read_text():
                break
            threading.Event().wait(0.1)
        refuse_writes(database_url, None)
        sim.faults({"revoke": ["D1001"]})  # an alert, so Slack and /alerts carry something
        client.post("/practices/D1001/refresh-token")
        for _ in range(300):
            if any("setup_required" in m for m in slack.bodies):
                break
            threading.Event().wait(0.1)
        alerts = client.get("/alerts").text
        metrics = client.get("/metrics").text
        assert "setup_required" in alerts and slack.bodies, (alerts, slack.bodies)
        assert supervisor.terminate() == 0
    finally:
        if supervisor.proc and supervisor.proc.poll() is None:
            supervisor.kill9()
        sim.stop()
        slack.close()
        sentry.close()
        tcp.close()

    secrets = [APP_KEY, API_TOKEN, CALLBACK_KEY, supervisor.env["SIKKA_SECRETS_KEY"], slack.url + "/hook"]
    secrets += [secret_key(SEED, o) for o in offices]
    secrets += held_keys(database_url, supervisor.env["SIKKA_SECRETS_KEY"], offices)
    assert len(secrets) >= 5
    output = "".join(p.read_text() for p in tmp_path.glob("supervisor-*.log"))
    with psycopg.connect(database_url) as conn:
        events = "\n".join(r[0] for r in conn.execute("SELECT data::text FROM events"))
        projections = "\n".join(
            r[0] for r in conn.execute(
                "SELECT row_to_json(p)::text FROM practices p UNION ALL SELECT row_to_json(w)::text FROM writebacks w")
        )
    sentry_items = "\n".join(line for body in sentry.bodies for line in body.splitlines()[1:])  # not the envelope
    places = {"output": output, "events": events, "projections": projections, "alerts": alerts,
              "slack": json.dumps(slack.bodies), "metrics": metrics, "sentry": sentry_items}
    for secret in secrets:
        for where, text in places.items():
            assert secret not in text, (where, secret[:6])
    for value in (FIRST, LAST, EMAIL):
        for where, text in places.items():
            assert value not in text, (where, value)  # events hold the payloads encrypted only
    assert "practice.event" in output and "writeback_completed" in output  # the log was not empty
    assert '"actor.crashed"' in output and "read-only" in output  # the crash was logged, without its keys
    assert '"exception"' in sentry_items and "D1000" in sentry_items  # and reported
