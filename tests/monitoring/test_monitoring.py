"""Monitoring through a whole supervisor (``supervisor.serve`` on real PostgreSQL, the simulator
over real HTTP): ``GET /alerts``, ``GET /metrics`` parsed with prometheus-client's parser, Slack
against a local HTTP receiver, Sentry through a capturing transport, and the log lines."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import structlog
import trio
from prometheus_client.parser import text_string_to_metric_families
from sentry_sdk.transport import Transport

from actors.core import alerting
from actors.process import logs
from actors.monitoring import tracking
from actors.core.alerting import Alert, Transition
from actors.core.secret import Secret
from actors.monitoring.slack import SlackNotifier
from actors.runtime.supervision import RestartPolicy, Supervised
from sim import SimConfig
from tests.support.supervisor import OFFICES, submission

SERIES = {
    "sikka_requests": {"office_id", "endpoint", "status"},
    "sikka_rate_used": {"office_id"},
    "sikka_rate_limit": {"office_id"},
    "sikka_writebacks": {"office_id", "state"},
    "sikka_writeback_confirmation_seconds": set(),
    "sikka_writeback_overshoot_seconds": set(),
    "sikka_token_expiry_seconds": {"office_id"},
    "sikka_actor_restarts": {"office_id"},
    "sikka_event_append_seconds": set(),
    "sikka_loop_lag_seconds": set(),
    "sikka_alerts": {"kind", "severity"},
    "sikka_confirmation_rounds": {"method"},
    "sikka_list_pages": set(),
    "sikka_status_checks_planned": set(),
    "sikka_app_rate_limit": set(),
}


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_metrics_carry_every_series_with_its_labels(start):
    sup = await start()
    office = OFFICES[0]
    r = await sup.submit(office, submission(sup.sim, office))
    wid = r.json()["writeback_id"]
    assert (await sup.writeback(wid, wait=30)).json()["state"] == "completed"
    with trio.fail_after(5):  # the answer may come before the actor has observed its own append
        while True:
            r = await sup.client.get("/metrics")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            found = families(r.text)
            confirmed = found["sikka_writeback_confirmation_seconds"].samples
            if any(s.name.endswith("_count") and s.value == 1 for s in confirmed):
                break
            await trio.sleep(0.05)
    for name, labels in SERIES.items():
        assert name in found, name
        samples = found[name].samples
        assert samples, name
        for sample in samples:
            assert labels <= set(sample.labels) - {"le"}, (name, sample)
    requests = {(s.labels["office_id"], s.labels["endpoint"], s.labels["status"]) for s in found["sikka_requests"].samples}
    assert (office, "appointment", "201") in requests or (office, "appointment", "200") in requests, requests
    assert any(s[0] == "app" and s[1] == "authorized_practices" for s in requests)
    confirmation = {s.name: s.value for s in found["sikka_writeback_confirmation_seconds"].samples}
    assert confirmation["sikka_writeback_confirmation_seconds_count"] == 1
    overshoot = {s.name: s.value for s in found["sikka_writeback_overshoot_seconds"].samples}
    assert overshoot["sikka_writeback_overshoot_seconds_count"] == 1
    appends = {s.name: s.value for s in found["sikka_event_append_seconds"].samples}
    assert appends["sikka_event_append_seconds_count"] >= 4  # requested, attempted, submitted, completed
    states = {(s.labels["office_id"], s.labels["state"]): s.value for s in found["sikka_writebacks"].samples}
    assert states[(office, "completed")] == 1 and states[(office, "queued")] == 0
    rounds = {s.labels["method"]: s.value for s in found["sikka_confirmation_rounds"].samples}
    assert set(rounds) == {"list", "status"} and rounds["list"] + rounds["status"] >= 1  # it was checked
    assert found["sikka_app_rate_limit"].samples[0].value == 20  # a node starting up: the 10 % reserve
    kinds = {s.labels["kind"] for s in found["sikka_alerts"].samples}
    assert kinds == set(alerting.KINDS)
    expiry = {s.labels["office_id"]: s.value for s in found["sikka_token_expiry_seconds"].samples}
    assert set(expiry) == set(OFFICES), expiry  # every onboarded practice holds a key …
    assert all(0 < left <= SimConfig().token_ttl for left in expiry.values()), expiry  # … within its lifetime


async def test_alerts_endpoint_and_a_revoked_practice(start):
    sup = await start()
    r = await sup.client.get("/alerts")
    assert r.status_code == 200 and r.json() == {"alerts": []}
    await sup.faults({"revoke": [OFFICES[0]]})
    # the actor finds out at its next key check; ask for a refresh now instead of waiting
    await sup.client.post(f"/practices/{OFFICES[0]}/refresh-token")
    with trio.fail_after(20):
        while True:
            alerts = (await sup.client.get("/alerts")).json()["alerts"]
            if any(a["kind"] == "setup_required" for a in alerts):
                break
            await trio.sleep(0.2)
    alert = next(a for a in alerts if a["kind"] == "setup_required")
    assert set(alert) == {"kind", "severity", "office_id", "message", "since"}
    assert alert["severity"] == "critical" and alert["office_id"] == OFFICES[0]
    assert alert["since"].endswith("Z")
    return sup, alert


async def test_an_alerts_since_survives_a_restart(start):
    """Kept in the database (table ``alerts``, per node): the restarted supervisor lists the same
    alert with the same ``since`` (it used to restart from nothing, ``since`` reset)."""
    sup, alert = await test_alerts_endpoint_and_a_revoked_practice(start)
    with trio.fail_after(10):  # written by the monitor's mirror a moment after the onset
        while not sup.db.call(lambda c: c.execute("SELECT count(*) FROM alerts").fetchone()[0]):
            await trio.sleep(0.1)
    sup.stop.set()  # the SIGTERM path
    with trio.fail_after(30):
        await sup.done.wait()
    await trio.sleep(1)
    again = await start(sim=sup.sim, sim_port=sup.sim_port, wait_active=False,
                        env={"SIKKA_SECRETS_KEY": sup.settings.secrets_key.reveal()})
    listed = (await again.client.get("/alerts")).json()["alerts"]
    assert [(a["kind"], a["office_id"], a["since"]) for a in listed] == [("setup_required", OFFICES[0], alert["since"])]
    await trio.sleep(6)  # the new monitor's evaluations: the practice is still revoked
    listed = (await again.client.get("/alerts")).json()["alerts"]
    assert [(a["kind"], a["since"]) for a in listed] == [("setup_required", alert["since"])]


class Receiver:
    """A local Slack stand-in: records each posted JSON body; can be down (connections refused)."""

    def __init__(self):
        self.messages: list[str] = []
        self.port = 0
        self.scope: trio.CancelScope | None = None

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED):
        from actors.api.http import Response, serve_connection

        async def handle(request):
            self.messages.append(json.loads(request.body)["text"])
            return Response(200, b"ok", "text/plain")

        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        with trio.CancelScope() as self.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.serve_listeners, lambda s: serve_connection(s, handler=handle), listeners)
                task_status.started()
                await trio.sleep_forever()


def transition(phase: str, kind: str = "setup_required", office: str | None = "D1000", at: datetime | None = None):
    since = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    alert = Alert(kind=kind, severity=alerting.SEVERITY[kind], office_id=office, message="revoked by the practice",
                  since=since, practice_name="Smile Dental 1")
    return Transition(phase=phase, alert=alert, at=at or since + timedelta(minutes=3))


async def test_slack_one_message_per_onset_and_clearing(nursery):
    receiver = Receiver()
    await nursery.start(receiver.serve)
    async with httpx.AsyncClient() as http:
        slack = SlackNotifier(http, Secret(f"http://127.0.0.1:{receiver.port}/hook"), base_delay=0.05)
        nursery.start_soon(slack.run)
        slack.publish(transition("onset"))
        slack.publish(transition("onset"))  # a repeat while it holds: nothing more
        slack.publish(transition("onset", office=None, kind="database_unreachable"))
        slack.publish(transition("clear"))
        with trio.fail_after(10):
            while slack.sent < 3:
                await trio.sleep(0.02)
        await trio.sleep(0.2)
        assert len(receiver.messages) == 3, receiver.messages
        onset, global_onset, clear = receiver.messages
        assert "setup_required" in onset and "D1000" in onset and "CRITICAL" in onset and "Smile Dental 1" in onset
        assert "revoked by the practice" in onset
        assert "database_unreachable" in global_onset and "all practices" in global_onset
        assert clear.startswith("[CLEARED] setup_required") and "D1000" in clear


async def test_slack_down_never_blocks_and_retries_with_backoff(nursery):
    receiver = Receiver()
    await nursery.start(receiver.serve)
    port = receiver.port
    receiver.scope.cancel()  # the receiver is down: connections are refused
    await trio.sleep(0.1)
    async with httpx.AsyncClient() as http:
        slack = SlackNotifier(http, Secret(f"http://127.0.0.1:{port}/hook"), capacity=5, attempts=3, base_delay=0.05)
        nursery.start_soon(slack.run)
        with trio.fail_after(1):  # publishing never waits, however many and however dead Slack is
            for n in range(50):
                slack.publish(transition("onset", office=f"D{2000 + n}"))
        assert slack.dropped >= 40
        with trio.fail_after(10):
            while slack.failed < 1:
                await trio.sleep(0.02)
        # back up on the same port: the queued ones go through
        receiver2 = Receiver()
        receiver2.port = port
        await nursery.start(receiver2.serve)
        with trio.fail_after(10):
            while not receiver2.messages:
                await trio.sleep(0.02)
        assert all("setup_required" in m for m in receiver2.messages)


async def test_supervisor_with_slack_down_still_serves(start):
    sup = await start(env={"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook"})  # port 9: nothing listens
    await sup.faults({"revoke": [OFFICES[0]]})
    await sup.client.post(f"/practices/{OFFICES[0]}/refresh-token")
    with trio.fail_after(20):
        while not (await sup.client.get("/alerts")).json()["alerts"]:
            await trio.sleep(0.2)
    office = OFFICES[1]
    r = await sup.submit(office, submission(sup.sim, office))
    assert (await sup.writeback(r.json()["writeback_id"], wait=30)).json()["state"] == "completed"


class Captured(Transport):
    def __init__(self, options=None):
        super().__init__(options)
        self.events: list[dict] = []

    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.type == "event":
                self.events.append(item.payload.json)


async def test_sentry_gets_actor_crashes_with_office_id_and_no_secrets():
    transport = Captured()
    tracking.init(Secret("https://public@sentry.invalid/1"), release="test", node="n1", transport=transport)
    try:
        supervised = Supervised("D1000", RestartPolicy(intensity=0, park_for=0.01))
        calls = []

        async def child():
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("boom")

        await supervised.run(child)
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_extra("request_key", "RK-SECRET-1")
            scope.set_extra("payload", {"firstname": "Zebulon"})
            scope.set_extra("detail", {"secret_key": "SK-SECRET-2", "code": "API1"})
            tracking.capture(ValueError("unexpected"), office_id="D1001")
        sentry_sdk.flush()
    finally:
        import sentry_sdk

        sentry_sdk.init()  # off again
    assert len(transport.events) == 2
    crash, other = transport.events
    assert crash["tags"]["office_id"] == "D1000"
    assert crash["exception"]["values"][0]["type"] == "RuntimeError"
    assert other["tags"]["office_id"] == "D1001"
    text = json.dumps(transport.events)
    for secret in ("RK-SECRET-1", "SK-SECRET-2", "Zebulon"):
        assert secret not in text
    assert "API1" in text  # codes stay
    frames = [frame for e in transport.events for v in e["exception"]["values"]
              for frame in v.get("stacktrace", {}).get("frames", [])]
    assert frames  # the crash was raised: its stack is reported, without the frames' variables
    assert all('"vars"' not in json.dumps(frame) for frame in frames), frames


def test_log_lines_redacted_with_journald_prefix_only_under_journald(monkeypatch):
    def lines(journal: bool) -> list[str]:
        if journal:
            monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
        else:
            monkeypatch.delenv("JOURNAL_STREAM", raising=False)
        out = io.StringIO()
        logs.configure("json", stream=out)
        log = structlog.get_logger("t")
        with structlog.contextvars.bound_contextvars(office_id="D1000"):
            log.info("practice.event", type="writeback_submitted", writeback_id="w-1",
                     payload={"firstname": "Zebulon"}, detail={"request_key": "RK-1", "code": "API1"})
            log.warning("alert.onset", kind="spu_offline")
        return out.getvalue().splitlines()

    plain = lines(False)
    assert all(line.startswith("{") for line in plain)
    first = json.loads(plain[0])
    assert first["office_id"] == "D1000" and first["writeback_id"] == "w-1"
    assert first["payload"] == "[redacted]" and first["detail"] == {"request_key": "[redacted]", "code": "API1"}
    journal = lines(True)
    assert journal[0].startswith("<6>{") and journal[1].startswith("<4>{")
    structlog.reset_defaults()
