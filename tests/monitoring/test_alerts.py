"""Every alert kind raised by a scenario and cleared again, on trio's MockClock (autojump): a
whole supervisor from the harness with the monitor (``actors.monitoring.monitor``) evaluating every 5 s.

Each scenario records the monitor's transitions and checks that an alert had exactly one onset
and, once its condition was gone for 2 minutes, exactly one clearing (never while it held).
"""

from __future__ import annotations


import trio

from actors.runtime.mailbox import Wake
from actors.api.admin import Admin
from actors.api.http import Request
from actors.core.alerting import Alert
from actors.monitoring.monitor import Monitor
from actors.runtime.supervision import RestartPolicy
from sim import SimConfig
from tests.support.faults import FaultyStore
from bench.system import EPOCH, booking, start_system
from store.db import DatabaseUnavailable

OFFICE = "D1000"


class Watch:
    def __init__(self, system, monitor: Monitor, transitions: list):
        self.system = system
        self.monitor = monitor
        self.transitions = transitions

    def holds(self, kind: str, office: str | None = OFFICE) -> bool:
        return (kind, office) in self.monitor.table

    async def until(self, kind: str, office: str | None = OFFICE, *, present: bool = True, timeout: float = 3600):
        with trio.fail_after(timeout):
            while self.holds(kind, office) != present:
                await trio.sleep(1)
        return trio.current_time()

    def phases(self, kind: str, office: str | None = OFFICE) -> list[str]:
        return [t.phase for t in self.transitions if t.alert.kind == kind and t.alert.office_id == office]

    async def raised_then_cleared(self, kind: str, office: str | None = OFFICE, *, clear, timeout: float = 3600):
        """Wait for the onset, run ``clear()`` (it makes the condition false), wait for the
        clearing; the clearing comes no sooner than 2 minutes after the condition went."""
        await self.until(kind, office, timeout=timeout)
        assert self.phases(kind, office) == ["onset"]
        await clear()
        gone = await self.until_condition_false(kind, office, timeout)
        cleared = await self.until(kind, office, present=False, timeout=timeout)
        assert cleared - gone >= 120 - 5, (kind, gone, cleared)
        assert self.phases(kind, office) == ["onset", "clear"]

    async def until_condition_false(self, kind: str, office: str | None, timeout: float) -> float:
        with trio.fail_after(timeout):
            while True:
                alert = self.monitor.table.get((kind, office))
                if alert is None or alert.false_since is not None:
                    return trio.current_time()
                await trio.sleep(1)


async def start(nursery, *, sim_config: SimConfig | None = None, env: dict | None = None,
                policy: RestartPolicy = RestartPolicy(), rows=None) -> Watch:
    system = await start_system(nursery, sim_config=sim_config, env=env, policy=policy)
    return await watch(nursery, system, rows)


async def watch(nursery, system, rows=None) -> Watch:
    transitions: list = []
    monitor = Monitor(system.deps, system.practices, publish=transitions.append, period=5, rows=rows)
    await nursery.start(monitor.run)
    return Watch(system, monitor, transitions)


class Rows:
    """``store.alerts.AlertRows`` in memory; ``down``: every call fails as an unreachable database."""

    def __init__(self):
        self.table: dict = {}
        self.down = False

    async def load(self):
        if self.down:
            raise DatabaseUnavailable("database unavailable: connection refused")
        return dict(self.table)

    async def save(self, held, cleared):
        if self.down:
            raise DatabaseUnavailable("database unavailable: connection refused")
        for key in cleared:
            del self.table[key]
        self.table.update((a.key, a) for a in held)


async def test_revoke_raises_setup_required_until_reauthorized(nursery, autojump_clock):
    w = await start(nursery)
    w.system.sim.set_faults({"revoke": [OFFICE]})
    await w.until("setup_required", timeout=600)
    await w.system.app.onboard()  # the practice left authorized_practices: de-authorized

    async def reauthorize():
        w.system.sim.set_faults({"revoke": []})
        await w.system.app.onboard()

    await w.raised_then_cleared("setup_required", clear=reauthorize, timeout=600)
    assert not w.holds("setup_required", "D1001")  # the other practice never was


async def test_spu_offline_holds_submissions_then_clears(nursery, autojump_clock):
    """Writebacks carry ``check_spu=true``: while the SPU is offline Sikka answers 412 API2017."""
    w = await start(nursery)
    w.system.sim.set_faults({"spu_offline": [OFFICE]})
    wid = await w.system.request(OFFICE, "book_appointment", booking(w.system.sim, OFFICE, 0))

    async def back_online():
        w.system.sim.set_faults({"spu_offline": []})

    await w.raised_then_cleared("spu_offline", clear=back_online, timeout=600)
    assert (await w.system.wait_final([wid]))[wid].state == "completed"


async def test_writeback_stuck_when_pending_over_30_minutes(nursery, autojump_clock):
    w = await start(nursery, sim_config=SimConfig(practices=2, writeback_delay=(5.0, 10.0)))
    wid = await w.system.request(OFFICE, "book_appointment", booking(w.system.sim, OFFICE, 0))
    with trio.fail_after(60):
        while (await w.system.store.writeback(wid)).state != "pending":
            await trio.sleep(0.5)
    w.system.sim.set_faults({"spu_offline": [OFFICE]})  # accepted, then the PMS went away: stays pending
    began = trio.current_time()

    async def back_online():
        w.system.sim.set_faults({"spu_offline": []})

    await w.raised_then_cleared("writeback_stuck", clear=back_online, timeout=7200)
    assert w.transitions[[t.alert.kind for t in w.transitions].index("writeback_stuck")].alert.since is not None
    assert trio.current_time() - began > 30 * 60
    assert (await w.system.wait_final([wid]))[wid].state == "completed"


async def test_5xx_burst_unknown_and_failure_alerts(nursery, autojump_clock):
    """Sikka answers 500/503 to everything for a while: the submissions' outcomes are unknown (and
    reconciliation cannot run), then their deadlines pass (failed, outcome_unknown). After the
    burst the unknown alert clears; the failure alerts hold until the failures leave their hour
    and their day."""
    w = await start(nursery, sim_config=SimConfig(practices=2, writeback_delay=(5.0, 10.0)))
    w.system.sim.set_faults({"error_rate": 1.0})
    ids = [
        await w.system.request(OFFICE, "book_appointment", booking(w.system.sim, OFFICE, n), deadline_s=1800)
        for n in range(5)
    ]
    await w.until("writeback_unknown", timeout=20 * 60)
    await w.until("failure_rate", timeout=3600)
    await w.until("writeback_failed", timeout=60)
    rows = await w.system.wait_final(ids)
    assert {r.state for r in rows.values()} == {"failed"}
    w.system.sim.set_faults({"error_rate": 0})
    await w.until("writeback_unknown", present=False, timeout=600)
    await w.until("failure_rate", present=False, timeout=2 * 3600)
    assert w.holds("writeback_failed")  # failures stay in the 24 h figure
    await w.until("writeback_failed", present=False, timeout=25 * 3600)
    for kind in ("writeback_unknown", "failure_rate", "writeback_failed"):
        assert w.phases(kind) == ["onset", "clear"], kind
    assert not w.phases("failure_rate", "D1001")


async def test_refresh_failing_raises_token_alerts(nursery, autojump_clock):
    """Grants fail (5xx) from before the key's refresh time: the refresh fails, and once it is
    over 5 minutes overdue the key counts as expiring; both clear after a successful refresh."""
    w = await start(nursery)
    w.system.sim.set_faults({"error_rate": 1.0})
    await w.until("token_refresh_failed", timeout=24 * 3600)
    await w.until("token_expiring", timeout=3600)

    async def sikka_back():
        w.system.sim.set_faults({"error_rate": 0})

    await w.raised_then_cleared("token_refresh_failed", clear=sikka_back, timeout=3600)
    await w.until("token_expiring", present=False, timeout=600)
    assert w.phases("token_expiring") == ["onset", "clear"]


async def test_short_lived_keys_refreshed_on_time_raise_no_token_alert(nursery, autojump_clock):
    """The README's ``--token-ttl 60``: every key expires within a minute and is refreshed in time;
    token_expiring used to hold on every practice for good."""
    w = await start(nursery, sim_config=SimConfig(practices=2, token_ttl=60, writeback_delay=(5.0, 10.0)))
    wid = await w.system.request(OFFICE, "book_appointment", booking(w.system.sim, OFFICE, 0))
    await trio.sleep(30 * 60)
    assert (await w.system.wait_final([wid]))[wid].state == "completed"
    assert w.system.sim.stats()["practices"][OFFICE]["requests"] > 30  # keys were refreshed all along
    assert w.transitions == [], [(t.phase, t.alert.kind, t.alert.office_id) for t in w.transitions]


async def test_a_revoked_practice_alerts_setup_required_and_never_token_expiring(nursery, autojump_clock):
    w = await start(nursery, sim_config=SimConfig(practices=2, token_ttl=3600))
    w.system.sim.set_faults({"revoke": [OFFICE]})
    await w.until("setup_required", timeout=2 * 3600)
    await trio.sleep(3 * 3600)  # long past the expiry of its last key
    assert w.holds("setup_required")
    assert not w.phases("token_expiring") and not w.phases("token_expiring", "D1001")


async def test_an_alerts_since_survives_a_restart_of_the_monitor(nursery, autojump_clock):
    """The table is mirrored into ``rows`` (written late while the database is down, never holding
    up the evaluation) and read back at start: the alert keeps its ``since``, with no new onset."""
    rows = Rows()
    rows.down = True
    w = await start(nursery, rows=rows)
    w.system.sim.set_faults({"revoke": [OFFICE]})
    await w.until("setup_required", timeout=600)
    since = w.monitor.table[("setup_required", OFFICE)].since
    await trio.sleep(60)
    assert rows.table == {}  # the database is down: nothing written, the monitor carried on
    rows.down = False
    with trio.fail_after(30):
        while ("setup_required", OFFICE) not in rows.table:
            await trio.sleep(1)
    assert rows.table[("setup_required", OFFICE)].since == since
    await trio.sleep(3600)
    again = await watch(nursery, w.system, rows)  # a restarted node: its monitor starts from the rows
    assert again.monitor.table[("setup_required", OFFICE)].since == since
    await trio.sleep(60)
    assert again.holds("setup_required") and again.monitor.table[("setup_required", OFFICE)].since == since
    assert again.transitions == []  # no second onset (no second Slack message) for the same alert


async def test_a_restored_alert_whose_condition_is_gone_clears_two_minutes_later(nursery, autojump_clock):
    rows = Rows()
    rows.table[("spu_offline", OFFICE)] = Alert(kind="spu_offline", severity="warning", office_id=OFFICE,
                                                message="spu offline", since=EPOCH)
    w = await start(nursery, rows=rows)
    assert w.holds("spu_offline")
    await w.until("spu_offline", present=False, timeout=300)
    assert w.phases("spu_offline") == ["clear"] and rows.table == {}


async def test_lowered_rate_limit_with_waiting_submissions(nursery, autojump_clock):
    w = await start(nursery, sim_config=SimConfig(practices=2, writeback_delay=(5.0, 10.0)))
    w.system.sim.set_faults({"rate_limit": {OFFICE: 10}})
    await w.system.request(OFFICE, "book_appointment", booking(w.system.sim, OFFICE, 0))  # learns the limit
    await trio.sleep(5)
    ids = [await w.system.request(OFFICE, "book_appointment", booking(w.system.sim, OFFICE, n)) for n in range(1, 40)]
    rate_kinds = ("rate_warning", "rate_critical", "rate_exhausted")
    with trio.fail_after(600):
        while not any(w.holds(k) for k in rate_kinds):
            await trio.sleep(1)
    assert not any(w.holds(k, "D1001") for k in rate_kinds)
    await w.system.wait_final(ids)
    for kind in rate_kinds:
        await w.until(kind, present=False, timeout=600)
        assert w.phases(kind) in ([], ["onset", "clear"]), kind
    assert w.system.sim.stats()["practices"][OFFICE]["status_429"] == 0


async def test_idle_practice_at_a_lowered_limit_raises_no_rate_alert(nursery, autojump_clock):
    w = await start(nursery)
    w.system.sim.set_faults({"rate_limit": {OFFICE: 3}})
    await trio.sleep(1800)
    assert not [t for t in w.transitions if t.alert.kind.startswith("rate_")]


async def test_throttle_raises_rate_limited_429(nursery, autojump_clock):
    w = await start(nursery)
    w.system.sim.set_faults({"throttle": {OFFICE: 30}})

    async def nothing():
        pass

    await w.raised_then_cleared("rate_limited_429", clear=nothing, timeout=600)


async def test_daily_quota_raises_quota_exhausted_until_the_next_day(nursery, autojump_clock):
    w = await start(nursery, sim_config=SimConfig(practices=2, daily_quota=6, writeback_delay=(5.0, 10.0)))
    ids = [
        await w.system.request(OFFICE, "book_appointment", booking(w.system.sim, OFFICE, n), deadline_s=2 * 86400)
        for n in range(10)
    ]

    async def nothing():
        pass

    await w.raised_then_cleared("quota_exhausted", clear=nothing, timeout=30 * 3600)  # the next UTC day
    assert not [t for t in w.transitions if t.alert.kind.startswith("rate_")]  # a quota is not a rate alert
    assert len(ids) == 10


async def with_faulty_store(nursery) -> tuple[Watch, FaultyStore]:
    """A watched system whose store injects faults, its actors parked after 3 crashes in 5 min."""
    policy = RestartPolicy(intensity=3, period=300, base_delay=10, max_delay=60, park_for=600)
    w = await start(nursery, policy=policy)
    faulty = FaultyStore(w.system.deps.store)
    w.system.deps.store = faulty
    return w, faulty


async def test_crashing_practice_restarting_parked_then_recovered(nursery, autojump_clock):
    w, faulty = await with_faulty_store(nursery)
    faulty.crashing = True
    w.system.practices.actors[OFFICE].tell(Wake())  # catch up: reads the stream, crashes
    await w.until("restarting", timeout=60)
    await w.until("parked", timeout=300)
    await w.until("restarting", present=False, timeout=300)  # parked supersedes restarting …
    assert w.holds("parked") and w.phases("restarting") == ["onset", "clear"]  # … which clears 2 min later
    faulty.crashing = False
    await w.until("parked", present=False, timeout=900)
    assert w.phases("parked") == ["onset", "clear"]
    assert OFFICE in w.system.practices.actors  # running again


async def test_unreachable_database_alerts_and_parks_nothing(nursery, autojump_clock):
    """An outage is not the practices' fault: ``database_unreachable`` holds while it lasts, the
    actors wait it out (or are restarted with backoff as often as it takes), and none is parked
    (which would hold its work for 15 minutes after the database came back)."""
    w, faulty = await with_faulty_store(nursery)
    faulty.unreachable = True
    w.system.practices.actors[OFFICE].tell(Wake())  # catch up: reads the store, fails
    await w.until("database_unreachable", None, timeout=60)
    await trio.sleep(900)
    assert not w.phases("parked") and not w.phases("restarting")
    assert OFFICE in w.system.practices.running() and not w.system.practices.supervised[OFFICE].parked

    async def reachable():
        faulty.unreachable = False

    await w.raised_then_cleared("database_unreachable", None, clear=reachable, timeout=300)
    assert OFFICE in w.system.practices.actors  # running again


async def test_webhook_configured_but_silent(nursery, autojump_clock):
    w = await start(nursery, env={"SIKKA_WEBHOOK_CALLBACK_KEY": "cb-key"})
    admin = Admin(w.system.deps, w.system.practices, w.system.app, monitor=w.monitor)
    w.monitor.webhook_last_at = lambda: admin.last_webhook_at  # as supervisor.serve wires it
    began = trio.current_time()
    await w.until("webhook_silent", None, timeout=3 * 3600)
    assert trio.current_time() - began >= 2 * 3600

    async def sikka_calls():
        request = Request("POST", "/webhooks/sikka", {}, {"callback-key": "cb-key"}, b"{}", "tcp")
        assert (await admin.handle(request)).status == 202

    await w.raised_then_cleared("webhook_silent", None, clear=sikka_calls, timeout=600)
    assert w.monitor.table == {} or all(k[0] != "webhook_silent" for k in w.monitor.table)


async def test_no_webhook_alert_when_not_configured(nursery, autojump_clock):
    w = await start(nursery)
    await trio.sleep(3 * 3600)
    assert not w.phases("webhook_silent", None)
