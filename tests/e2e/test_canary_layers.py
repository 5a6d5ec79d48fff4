"""The canary in every layer: a supervisor (``supervisor.serve``, on real PostgreSQL, the simulator
over real HTTP, the TCP listener with its token) runs with known secrets planted in every
setting, and a crash is forced in each layer while a secret is in reach: in the admin handler
(the bearer token on the request), in the Sikka client (the app key and a practice's secret or
refresh key in the request being sent), in the store under the actor (a refresh's new keys in
hand, the database refusing to write them: the defect as found), in onboarding (the listed
secret keys), in the monitor, in the Slack notifier, and at start-up (``main(["run"])``). Each
forced failure names a process secret in its message, as a careless one would.

Afterwards no secret (the app key, the API token, the callback key, the Fernet key, the Sentry
DSN and its key, the Slack URL, every practice's secret, request and refresh keys) is in the
log lines, stdout, stderr, the Sentry events (a local Sentry: the DSN points at a receiver) or
the Slack bodies (a local receiver), and every forced failure did happen and was reported.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import httpx
import psycopg
import pytest
import sentry_sdk
import structlog
import trio
from cryptography.fernet import Fernet

import supervisor
from actors.core.secret import Secret
from actors.monitoring import tracking
from actors.monitoring.monitor import Monitor
from actors.process import logs
from sim import SimConfig, Simulator
from sim import serve as sim_serve
from sim.data import secret_key
from store.pglog import PgEventStore
from tests.support.processes import free_port
from tests.support.receivers import Receiver
from tests.support.supervisor import OFFICES

SEED = 7
APP_KEY = "CANARY-appkey-7d41c9"
API_TOKEN = "CANARY-token-0b8e52"
CALLBACK_KEY = "CANARY-callback-93fa1d"
SENTRY_KEY = "c4a1e7b2d9f04e3a8b6c5d7e9f0a1b2c"


class Faults:
    """Failures armed one at a time; each raises once, naming a secret in its message."""

    def __init__(self):
        self.armed: set[str] = set()
        self.fired: list[str] = []

    def fire(self, name: str, message: str) -> None:
        if name in self.armed:
            self.armed.discard(name)
            self.fired.append(name)
            raise RuntimeError(message)


FAULTS = Faults()


class FaultyTransport(httpx.AsyncBaseTransport):
    """The supervisor's HTTP client's transport: the Sikka client's grant and the Slack post fail
    when armed (inside the client, with the request and its keys in hand)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, slack_port: int):
        self.inner, self.slack_port = inner, slack_port

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/request_key") and request.method == "POST":
            FAULTS.fire("sikka", f"the grant for app key {APP_KEY} could not be sent")
        if request.url.port == self.slack_port:
            FAULTS.fire("slack", f"cannot post to {request.url}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class FaultyStore(PgEventStore):
    async def writebacks(self, *args, **kwargs):
        FAULTS.fire("handler", f"listing failed for the token {API_TOKEN}")
        return await super().writebacks(*args, **kwargs)


class FaultyMonitor(Monitor):
    async def evaluate(self):
        FAULTS.fire("monitor", f"cannot evaluate; Slack is {self.deps.settings.slack_webhook_url.reveal()}")
        return await super().evaluate()


def refuse_writes(database_url: str, kind: str | None) -> None:
    """A trigger that makes the database refuse to store credentials of ``kind`` (``None``: drop
    it): what a database turned read-only does to the next write."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER IF EXISTS canary_refuse ON credentials")
        if kind is None:
            return
        conn.execute(
            "CREATE OR REPLACE FUNCTION canary_refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'cannot execute INSERT in a read-only transaction'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER canary_refuse BEFORE INSERT OR UPDATE ON credentials FOR EACH ROW"
            f" WHEN (NEW.kind = '{kind}') EXECUTE FUNCTION canary_refuse()"
        )


async def until(predicate, seconds: float, what: str) -> None:
    with trio.fail_after(seconds):
        while not predicate():
            await trio.sleep(0.1)


@pytest.fixture
def reporting(monkeypatch):
    """Slack and Sentry receivers, the log captured, the faults wired into the composition root."""
    slack, sentry = Receiver(), Receiver()
    out = io.StringIO()
    saved = structlog.get_config()
    monkeypatch.setattr(supervisor, "event_store", FaultyStore)
    monkeypatch.setattr(supervisor, "Monitor", FaultyMonitor)
    real_client = supervisor.http_client

    def faulty_client(settings):
        client = real_client(settings)
        client._transport = FaultyTransport(client._transport, slack.port)
        return client

    monkeypatch.setattr(supervisor, "http_client", faulty_client)
    FAULTS.armed.clear()
    FAULTS.fired.clear()
    yield slack, sentry, out
    sentry_sdk.init()  # off again
    structlog.configure(**saved)
    slack.close()
    sentry.close()


async def test_no_secret_reaches_any_output_whatever_layer_fails(start, nursery, database_url, reporting, capfd):
    slack, sentry, out = reporting
    secrets_key = Fernet.generate_key().decode()
    sentry_dsn = f"http://{SENTRY_KEY}@127.0.0.1:{sentry.port}/1"
    slack_url = f"{slack.url}/services/T0CANARY/B0CANARY/CANARYslackpath6f2"
    port = free_port()
    env = {"SIKKA_APP_KEY": APP_KEY, "SIKKA_SECRETS_KEY": secrets_key, "SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}",
           "SIKKA_API_TOKEN": API_TOKEN, "SIKKA_WEBHOOK_CALLBACK_KEY": CALLBACK_KEY, "SENTRY_DSN": sentry_dsn,
           "SLACK_WEBHOOK_URL": slack_url}
    sim = Simulator(SimConfig(practices=len(OFFICES), seed=SEED, app_key=APP_KEY, writeback_delay=(1, 2)))
    sim_port = await nursery.start(sim_serve, sim, "127.0.0.1", 0)

    settings_secrets = [Secret(v) for v in (APP_KEY, API_TOKEN, CALLBACK_KEY, secrets_key, sentry_dsn, slack_url)]
    logs.configure("json", stream=out, secrets=settings_secrets)
    tracking.init(Secret(sentry_dsn), release="canary", node="test-node")
    sup = await start(env=env, sim=sim, sim_port=sim_port)
    tcp = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {API_TOKEN}"})
    lines = out.getvalue

    # the admin handler: a TCP request carrying the token, the handler failing
    FAULTS.armed.add("handler")
    assert (await tcp.get("/practices/D1000/writebacks")).status_code == 500
    # the Sikka client: a grant failing inside the client (the app key and the refresh key in the request)
    FAULTS.armed.add("sikka")
    with trio.move_on_after(2):  # the actor crashes after recording the request: the answer can wait
        await sup.client.post("/practices/D1000/refresh-token")
    await until(lambda: lines().count('"actor.crashed"') >= 1, 20, "the actor crashed in the client")
    # the store under the actor: new keys in hand, the database refusing to write them
    refuse_writes(database_url, "request_key")
    with trio.move_on_after(2):
        await sup.client.post("/practices/D1001/refresh-token")
    await until(lambda: lines().count('"actor.crashed"') >= 2, 20, "the actor crashed in the store")
    refuse_writes(database_url, None)
    # onboarding: the listed secret keys in hand, storing one refused; asked for by Sikka's webhook
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM credentials WHERE kind = 'secret_key' AND owner = 'D1000'")
    refuse_writes(database_url, "secret_key")
    assert (await tcp.post("/webhooks/sikka", json={}, headers={"callback-key": CALLBACK_KEY})).status_code == 202
    await until(lambda: '"onboarding.crashed"' in lines(), 20, "onboarding crashed")
    refuse_writes(database_url, None)
    # the monitor
    FAULTS.armed.add("monitor")
    await until(lambda: '"alerts.evaluation_failed"' in lines(), 20, "the monitor failed")
    # Slack: an alert to post (a revoked practice), the post failing inside the notifier
    FAULTS.armed.add("slack")
    await sup.faults({"revoke": ["D1001"]})
    with trio.move_on_after(5):
        await sup.client.post("/practices/D1001/refresh-token")
    await until(lambda: '"slack.crashed"' in lines(), 30, "the Slack post failed")
    await tcp.aclose()
    sup.stop.set()
    with trio.fail_after(30):
        await sup.done.wait()

    # start-up: a failure at start naming the token; a malformed DSN
    start_env = {**env, "DATABASE_URL": database_url, "SIKKA_APP_ID": sim.config.app_id,
                 "SIKKA_API_URL": sup.settings.api_url, "SIKKA_ADMIN_SOCKET": str(sup.settings.admin_socket),
                 "SIKKA_DATA_DIR": str(sup.settings.data_dir)}
    statuses, started = await trio.to_thread.run_sync(start_up_failures, sup.settings, start_env)
    assert statuses == [1, 2], started
    sentry_sdk.flush()
    assert sorted(FAULTS.fired) == ["handler", "monitor", "sikka", "slack"]

    held = [sim.practice(o).refresh_key for o in OFFICES] + list(sim.keys)
    secrets = [APP_KEY, API_TOKEN, CALLBACK_KEY, secrets_key, sentry_dsn, SENTRY_KEY, slack_url,
               "CANARYslackpath6f2", *(secret_key(SEED, o) for o in OFFICES), *held]
    captured = capfd.readouterr()
    # an envelope's first line is addressed to Sentry itself (its DSN key, as X-Sentry-Auth): the items follow
    items = "\n".join(line for body in sentry.bodies for line in body.splitlines()[1:])
    places = {"log": lines(), "stdout": captured.out, "stderr": captured.err, "start-up": started,
              "sentry": items, "slack": "\n".join(slack.bodies)}
    for secret in secrets:
        for where, text in places.items():
            assert secret not in text, (where, secret[:8])
    for event in ('"http.handler_failed"', '"actor.crashed"', '"onboarding.crashed"', '"alerts.evaluation_failed"',
                  '"slack.crashed"'):
        assert event in lines(), event
    assert '"command.crashed"' in started and "[redacted]" in started
    events = [json.loads(line) for line in items.splitlines() if '"exception"' in line]
    kinds = {v["type"] for e in events if "exception" in e for v in e["exception"]["values"]}
    assert {"RuntimeError"} <= kinds and len(events) >= 6, kinds


def start_up_failures(settings, env: dict) -> tuple[list[int], str]:
    """``main(["run"])`` failing at start (the listeners cannot be bound; a malformed DSN): the
    exit statuses, and what it printed and logged."""
    output = io.StringIO()
    saved = dict(os.environ)
    real_bind = supervisor.bind_listeners

    async def failing_bind(settings):
        raise RuntimeError(f"cannot listen with token {settings.api_token.reveal()}")

    try:
        os.environ.update(env, SIKKA_NODE_ID="canary-start", SIKKA_LOG_FORMAT="json")
        supervisor.bind_listeners = failing_bind
        with contextlib.redirect_stderr(output), contextlib.redirect_stdout(output):
            statuses = [supervisor.main(["run"])]
            os.environ["SENTRY_DSN"] = f"https://{SENTRY_KEY}@"  # no host: malformed
            statuses.append(supervisor.main(["run"]))
    finally:
        supervisor.bind_listeners = real_bind
        os.environ.clear()
        os.environ.update(saved)
    return statuses, output.getvalue()
