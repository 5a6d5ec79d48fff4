"""Scenario tests of whole practice actors (issue 6), on trio's MockClock against the in-process
simulator and the in-memory store. Every assertion reads ground truth: the simulator's
``/_sim/stats``, request timeline and appointments, and the store's stream and projections."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import httpx
import pytest
import trio

from actors.core import messages
from actors.core import events as ev
from actors.runtime.mailbox import Unavailable
from actors.runtime.commit import SNAPSHOT_SCHEMA
from actors.core.state import empty, fold
from actors.core.timezones import zone_for
from actors.core.secret import Secret
from sim import SimConfig
from bench.system import booking, start_system
from tests.support.core import without_schedule
from tests.support.harness import sim_created, sim_requests, sim_stats, stream, wait_until


def of_type(records, cls):
    return [r.event for r in records if isinstance(r.event, cls)]


def posts(timeline, path_prefix="/v4/appointment"):
    return [r for r in timeline if r["method"] == "POST" and r["path"] == path_prefix]


# --- 1. token refresh timing ------------------------------------------------------------------

TTL = 600.0


@pytest.mark.parametrize("traffic", [False, True], ids=["idle", "traffic"])
async def test_keys_are_refreshed_before_expiry_at_23_24_of_ttl(nursery, autojump_clock, traffic):
    system = await start_system(nursery, sim_config=SimConfig(practices=1, token_ttl=TTL, writeback_delay=(5, 20)))
    office = system.offices()[0]
    ids = []
    end = trio.current_time() + 3.5 * TTL
    n = 0
    while trio.current_time() < end:
        if traffic:
            ids.append(await system.request(office, "book_appointment", booking(system.sim, office, n)))
            n += 1
        await trio.sleep(37)
    stats = await sim_stats(system, office)
    assert stats["expired_key_calls"] == 0
    refreshed = of_type(await stream(system, office), ev.TokenRefreshed)
    assert len(refreshed) >= 4  # the first grant and one refresh per TTL
    assert [e.grant for e in refreshed[1:]] == ["refresh_key"] * (len(refreshed) - 1)
    lo, hi = TTL * 23 / 24 - TTL / 96, TTL * 23 / 24
    for before, after in zip(refreshed, refreshed[1:]):
        gap = (after.at - before.at).total_seconds()
        assert lo - 1 <= gap <= hi + 1, gap
        assert after.at < before.expires_at  # refreshed while the old key was still valid
    grants = [r for r in await sim_requests(system, office) if r["path"] == "/v4/request_key"]
    assert len(grants) == len(refreshed)  # no extra grants (no reactive refreshes)
    if traffic:
        rows = await system.wait_final(ids)
        assert {r.state for r in rows.values()} == {"completed"}
        assert len(await sim_created(system, office)) == len(ids)
        assert stats["writebacks_submitted"] >= len(ids) - 1
    else:  # idle: the key checks kept running on live keys
        checks = [r for r in await sim_requests(system, office) if r["path"] == "/v4/request_key_info"]
        assert checks and all(r["status"] == 200 for r in checks)


# --- 2. API1025 recovery ----------------------------------------------------------------------


async def _fresh_key(system, office):
    await wait_until(lambda: _has_key(system, office), 60)


async def _has_key(system, office):
    actor = system.practices.actors.get(office)
    return actor is not None and actor.state.token_expires_at is not None


@pytest.mark.parametrize("when", ["idle", "with_queued_work"])
async def test_expired_key_gets_one_refresh_and_the_work_continues(nursery, autojump_clock, when):
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    await _fresh_key(system, office)
    await trio.sleep(30)
    grants_before = len(of_type(await stream(system, office), ev.TokenRefreshed))
    system.sim.set_faults({"expire_tokens": True})
    if when == "idle":
        await trio.sleep(90)  # the idle key check is the next keyed call
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    rows = await system.wait_final([wid], timeout=600)
    assert rows[wid].state == "completed" and rows[wid].created_id
    assert rows[wid].attempts == 1  # the refused POST was not an attempt
    stats = await sim_stats(system, office)
    assert stats["forced_expired_calls"] >= 1 and stats["expired_key_calls"] == 0
    records = await stream(system, office)
    refreshed = of_type(records, ev.TokenRefreshed)
    assert len(refreshed) == grants_before + 1  # exactly one refresh
    assert refreshed[-1].grant == "refresh_key"
    refused = of_type(records, ev.KeyRefused) + of_type(records, ev.SubmitRefused)
    assert [e.code for e in refused] == ["API1025"]
    timeline = await sim_requests(system, office)
    assert [r["status"] for r in posts(timeline)] == ([201] if when == "idle" else [400, 201])
    assert len(await sim_created(system, office)) == 1


# --- 3. revoked keys -> setup_required --------------------------------------------------------


async def test_revoked_keys_reach_setup_required_and_queued_work_waits(nursery, autojump_clock):
    system = await start_system(nursery, sim_config=SimConfig(practices=1))
    office = system.offices()[0]
    await _fresh_key(system, office)
    await trio.sleep(17)
    system.sim.set_faults({"revoke": [office]})
    revoked_at = trio.current_time()

    async def setup_required():
        row = await system.store.practice(office)
        return row.practice.state == "setup_required"

    await wait_until(setup_required, 90, step=0.25)
    assert trio.current_time() - revoked_at <= 90
    row = await system.store.practice(office)
    assert "API2007" in (row.practice.last_error or "")
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    seen = len(await sim_requests(system, office))
    await trio.sleep(1800)
    assert (await system.store.writeback(wid)).state == "queued"
    after = (await sim_requests(system, office))[seen:]
    assert after == []  # nothing sent: no POST, no grant storm, no key checks
    assert posts(await sim_requests(system, office)) == []
    assert (await sim_stats(system, office))["writebacks_submitted"] == 0


async def test_revoke_lifted_before_onboarding_noticed_recovers_at_the_next_onboarding(nursery, autojump_clock):
    """Regression (found by the fault suite): the key check saw API2007 (setup_required), the
    practice re-authorized before any onboarding saw it unlisted, and the next onboarding said
    "unchanged": the practice stayed setup_required and its writebacks queued for good."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    await _fresh_key(system, office)
    await trio.sleep(17)
    system.sim.set_faults({"revoke": [office]})

    async def setup_required():
        return (await system.store.practice(office)).practice.state == "setup_required"

    await wait_until(setup_required, 90, step=0.25)
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    system.sim.set_faults({"revoke": []})
    report = await system.app.onboard()
    assert [r["action"] for r in report] == ["updated"]
    assert (await system.wait_final([wid], timeout=600))[wid].state == "completed"
    assert (await system.store.practice(office)).practice.state == "active"
    assert len(await sim_created(system, office)) == 1


# --- 4. 429 pacing ----------------------------------------------------------------------------


async def test_lowered_rate_limit_is_learned_and_never_exceeded(nursery, autojump_clock):
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    await _fresh_key(system, office)
    system.sim.set_faults({"rate_limit": {office: 10}})
    await trio.sleep(61)  # a fresh server window
    ids = [await system.request(office, "book_appointment", booking(system.sim, office, n)) for n in range(25)]
    rows = await system.wait_final(ids, timeout=3600)
    assert {r.state for r in rows.values()} == {"completed"}
    stats = await sim_stats(system, office)
    assert stats["status_429"] == 0 and stats["forced_429"] == 0
    assert stats["max_in_any_60s"] <= 10
    assert len(await sim_created(system, office)) == 25
    assert system.practices.actors[office].budget.statistics(system.clock().timestamp()).limit == 10


async def test_forced_throttle_defers_without_an_attempt_then_completes(nursery, autojump_clock):
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    await _fresh_key(system, office)
    system.sim.set_faults({"throttle": {office: 30}})
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    rows = await system.wait_final([wid], timeout=600)
    assert rows[wid].state == "completed" and rows[wid].attempts == 1
    records = await stream(system, office)
    deferred = of_type(records, ev.WritebackDeferred)
    assert [d.reason for d in deferred] == ["rate_limited"]
    assert of_type(records, ev.SubmitAttempted)[-1].attempt == 1  # the 429 was not counted
    assert (deferred[0].retry_at - deferred[0].at).total_seconds() == pytest.approx(31, abs=1)
    timeline = await sim_requests(system, office)
    statuses = [r["status"] for r in timeline if r["status"] == 429]
    assert statuses == [429]
    submitted = [r for r in timeline if r["status"] == 201]
    assert len(submitted) == 1
    stats = await sim_stats(system, office)
    assert stats["forced_429"] == 1 and stats["status_429"] == 0


# --- 5. daily quota: deferral to the practice's quiet hours -----------------------------------


def _first_quiet_instant_after_utc_midnight(now, zone):
    """Independent of ``policy``: the first practice-local 00:00-06:00 instant at or after the
    next UTC midnight (UTC midnight is a US afternoon, so: the next local midnight)."""
    midnight = datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=UTC)
    local = midnight.astimezone(zone)
    if local.hour < 6:
        return midnight
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


async def test_daily_quota_defers_writebacks_to_local_quiet_hours(nursery, autojump_clock):
    # one POST and one writeback_status read per booking: the 6th POST meets the quota
    quota, per_practice = 11, 8
    system = await start_system(
        nursery,
        sim_config=SimConfig(practices=3, daily_quota=quota, writeback_delay=(5, 20)),
        env={"SIKKA_KEY_CHECK_INTERVAL": "21600"},  # idle checks would spend the tiny quota
    )
    offices = system.offices()
    ids = {}
    for n in range(per_practice):
        for office in offices:
            payload = booking(system.sim, office, n)  # the default 6 h deadline would pass first
            ids[await system.request(office, "book_appointment", payload, deadline_s=2 * 86400)] = office
        await trio.sleep(60)
    rows = await system.wait_final(ids, timeout=2 * 86400, step=60)
    assert {r.state for r in rows.values()} == {"completed"}
    zones = set()
    for office in offices:
        zone_name = (await system.store.practice(office)).practice.time_zone
        zone = zone_for(zone_name)
        zones.add(str(zone))
        records = await stream(system, office)
        deferred = of_type(records, ev.WritebackDeferred)
        assert deferred and {d.reason for d in deferred} == {"daily_quota"}
        first = deferred[0]
        expected = _first_quiet_instant_after_utc_midnight(first.at, zone)
        assert first.retry_at == expected, (office, zone_name, first.retry_at, expected)
        local = first.retry_at.astimezone(zone)
        assert time(0) <= local.time() < time(6)
        # nothing was submitted between the quota answer and the practice's quiet hours
        timeline = await sim_requests(system, office)
        quota_hit = next(i for i, r in enumerate(timeline) if r["status"] == 429)
        later_posts = [r for r in posts(timeline[quota_hit + 1 :])]
        assert later_posts
        for r in later_posts:
            at = datetime.fromisoformat(r["at"].replace("Z", "+00:00"))
            assert at >= expected
            assert time(0) <= at.astimezone(zone).time() < time(6)
        assert [r["status"] for r in posts(timeline)].count(201) == per_practice
        assert len(await sim_created(system, office)) == per_practice
        stats = await sim_stats(system, office)
        assert stats["forced_429"] == 1  # the actor stopped after the first quota answer
    assert len(zones) == 3  # Los Angeles, Honolulu, New York: three different quiet windows


# --- 6. deadlines -----------------------------------------------------------------------------


async def _accepted_then_spu_offline(system, office: str, wid: str) -> None:
    """Take the practice's SPU offline as soon as Sikka has accepted ``wid`` (before its delay
    runs out): Sikka then holds it pending. (Offline before the submission, ``check_spu`` gets
    a 412 and nothing reaches Sikka.)"""
    with trio.fail_after(30):
        while (await system.store.writeback(wid)).state != "pending":
            await trio.sleep(0.5)
    system.sim.set_faults({"spu_offline": [office]})


async def test_spu_offline_at_submission_defers_then_sends_once_back_online(nursery, autojump_clock):
    """``check_spu=true`` on every writeback: with the SPU offline Sikka answers 412 API2017 and
    creates nothing; the writeback is deferred (15 s doubling), and sent once the SPU is back."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    await _fresh_key(system, office)
    system.sim.set_faults({"spu_offline": [office]})
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    await trio.sleep(120)
    row = await system.store.writeback(wid)
    assert row.state in ("deferred", "queued") and row.sikka_writeback_id is None
    assert (await sim_stats(system, office))["writebacks_submitted"] == 0
    deferrals = of_type(await stream(system, office), ev.WritebackDeferred)
    assert 3 <= len(deferrals) <= 5  # 15, 30, 60 s … apart, not a tight loop
    system.sim.set_faults({"spu_offline": []})
    row = (await system.wait_final([wid], timeout=1200))[wid]
    assert row.state == "completed" and len(await sim_created(system, office)) == 1


async def test_deadline_while_spu_offline_deletes_at_sikka_and_fails_retryable(nursery, autojump_clock):
    """The SPU goes offline after Sikka accepted the writeback: Sikka holds it pending. Past its
    deadline the actor DELETEs it at Sikka; the status read then says deleted: failed
    deadline_exceeded, retryable, and nothing is ever written, even once the SPU is back."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    await _fresh_key(system, office)
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1), deadline_s=120)
    await _accepted_then_spu_offline(system, office, wid)
    requested = await system.store.writeback(wid)
    rows = await system.wait_final([wid], timeout=600)
    row = rows[wid]
    assert row.state == "failed" and row.error.code == "deadline_exceeded" and row.retryable
    assert row.sikka_writeback_id  # it had reached Sikka: the DELETE took it back
    assert row.completed_at >= requested.deadline_at
    assert (row.completed_at - requested.deadline_at).total_seconds() < 30
    stats = await sim_stats(system, office)
    assert stats["writebacks_deleted"] == 1 and stats["writebacks_completed"] == 0
    records = await stream(system, office)
    assert [e.reason for e in of_type(records, ev.CancelRequested)] == ["deadline"]
    assert [e.deleted for e in of_type(records, ev.DeleteAnswered)] == [True]
    system.sim.set_faults({"spu_offline": []})
    await trio.sleep(120)
    assert await sim_created(system, office) == []
    assert (await sim_stats(system, office))["writebacks_completed"] == 0


async def test_deadline_while_deferred_fails_retryable_without_a_post_then_retry_completes(nursery, autojump_clock):
    """Also the regression test of retry-failed: the retry used to carry the failed writeback's
    ciphertext, sealed under that writeback's own payload key, so it failed ``payload_purged``."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    await _fresh_key(system, office)
    system.sim.set_faults({"throttle": {office: 900}})  # the server asks for 15 min
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1), deadline_s=120)
    rows = await system.wait_final([wid], timeout=600)
    row = rows[wid]
    assert row.state == "failed" and row.error.code == "deadline_exceeded" and row.retryable
    assert row.sikka_writeback_id is None and row.attempts == 0
    stats = await sim_stats(system, office)
    assert stats["writebacks_submitted"] == 0 and stats["writebacks_deleted"] == 0
    # retry-failed re-queues it once, as a new writeback; it completes after the server's reset
    decision = await system.practices.actors[office].ask(messages.RetryFailed(deadline_s=3600))
    assert len(decision) == 1 and decision[0].retry_of == wid
    again = await system.practices.actors[office].ask(messages.RetryFailed())
    assert again == []
    retry = (await system.wait_final([decision[0].writeback_id], timeout=3600))[decision[0].writeback_id]
    assert retry.state == "completed" and retry.retry_of == wid, (retry.error, retry.attempts, retry.requested_at, retry.completed_at)
    (created,) = await sim_created(system, office)
    original = booking(system.sim, office, 1)  # the retry sent the original payload
    assert (created["patient_id"], created["date"], created["time"]) == (
        original["patient_id"], original["date"], original["time"]
    )
    assert [r["status"] for r in posts(await sim_requests(system, office))] == [429, 201]


# --- 7. a crash after the intent was recorded, before the request left ------------------------


class CrashingClient:
    """The Sikka client, except that the first ``crashes`` submits raise before sending."""

    def __init__(self, client, crashes: int = 1):
        self._client = client
        self.crashes = crashes

    def __getattr__(self, name):
        return getattr(self._client, name)

    async def submit(self, *args, **kw):
        if self.crashes > 0:
            self.crashes -= 1
            raise RuntimeError("crash between SubmitAttempted and the POST")
        return await self._client.submit(*args, **kw)


async def test_crash_before_the_request_left_is_proven_absent_and_sent_once(nursery, autojump_clock):
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    await _fresh_key(system, office)
    system.deps.client = CrashingClient(system.deps.client)
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    rows = await system.wait_final([wid], timeout=900)
    assert rows[wid].state == "completed" and rows[wid].created_id
    assert system.deps.client.crashes == 0
    assert system.practices.supervised[office].restarts == 1
    records = await stream(system, office)
    attempted = of_type(records, ev.SubmitAttempted)
    unknown = of_type(records, ev.OutcomeUnknown)
    absent = of_type(records, ev.ProvenAbsent)
    assert len(attempted) == 2 and [u.reason for u in unknown] == ["crash"] and len(absent) == 1
    settings = system.deps.settings
    proof = attempted[0].at + timedelta(seconds=settings.http_timeout + settings.lease_ttl + 30)
    assert absent[0].at >= proof  # not proven absent before attempt + timeout + lease + 30 s
    assert attempted[1].at >= absent[0].at  # re-sent only after it was proven absent
    timeline = await sim_requests(system, office)
    assert len(posts(timeline)) == 1  # exactly one POST at Sikka in total
    assert len(await sim_created(system, office)) == 1
    assert (await sim_stats(system, office))["writebacks_submitted"] == 1


# --- 8. restart limits and parking ------------------------------------------------------------


class FailingStore:
    """The in-memory store, except that appends for ``office`` holding one of ``poison`` event
    types raise while ``armed`` (the supervisor's own PracticeParked/Unparked go through)."""

    def __init__(self, store, office, poison=(ev.SubmitAttempted,)):
        self._store = store
        self.stream_id = ev.stream_id(office)
        self.poison = poison
        self.armed = True
        self.failures: list[float] = []

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def append(self, stream_id, expected_version, events):
        if self.armed and stream_id == self.stream_id and any(isinstance(e, self.poison) for e in events):
            self.failures.append(trio.current_time())
            raise OSError("disk on fire")
        return await self._store.append(stream_id, expected_version, events)


async def test_crashing_practice_is_restarted_with_backoff_then_parked_while_others_work(nursery, autojump_clock):
    system = await start_system(nursery, sim_config=SimConfig(practices=2, writeback_delay=(5, 20)))
    bad, good = system.offices()
    await _fresh_key(system, bad)
    await _fresh_key(system, good)
    store = FailingStore(system.store, bad)
    system.deps.store = store
    system.store = store
    stuck = await system.request(bad, "book_appointment", booking(system.sim, bad, 1))
    policy_ = system.practices.policy

    async def parked():
        row = await system.store.practice(bad)
        return row.practice.state == "parked"

    good_ids = []
    for n in range(4):  # the sibling keeps working through the crash loop
        good_ids.append(await system.request(good, "book_appointment", booking(system.sim, good, n)))
        await trio.sleep(5)
    await wait_until(parked, 120, step=0.25)
    # restarted with a growing, jittered backoff, then parked after intensity + 1 crashes
    assert len(store.failures) == policy_.intensity + 1
    gaps = [b - a for a, b in zip(store.failures, store.failures[1:])]
    for n, gap in enumerate(gaps):
        full = min(policy_.max_delay, policy_.base_delay * 2**n)
        assert 0.5 * full - 0.01 <= gap <= full + 0.5, (n, gap)
    parked_events = of_type(await stream(system, bad), ev.PracticeParked)
    assert len(parked_events) == 1 and "disk on fire" in parked_events[0].error
    assert (parked_events[0].until - parked_events[0].at).total_seconds() == policy_.park_for
    assert system.practices.supervised[bad].parked and bad not in system.practices.actors
    rows = await system.wait_final(good_ids, timeout=300)
    assert {r.state for r in rows.values()} == {"completed"}
    assert (await system.store.writeback(stuck)).state == "queued"
    assert posts(await sim_requests(system, bad)) == []
    # the sibling still takes new work while the practice is parked
    late = await system.request(good, "book_appointment", booking(system.sim, good, 9))
    assert (await system.wait_final([late], timeout=300))[late].state == "completed"
    # after the cool-down it runs again (the fault is gone by then)
    store.armed = False
    until = parked_events[0].until
    await trio.sleep(max(0.0, (until - system.clock()).total_seconds() - 5))
    assert (await system.store.practice(bad)).practice.state == "parked"
    rows = await system.wait_final([stuck], timeout=600)
    assert rows[stuck].state == "completed"
    assert rows[stuck].submitted_at >= until
    assert (await system.store.practice(bad)).practice.state == "active"
    assert len(of_type(await stream(system, bad), ev.PracticeUnparked)) == 1
    assert len(await sim_created(system, bad)) == 1


async def test_practice_whose_every_append_fails_is_parked_without_taking_down_its_siblings(nursery, autojump_clock):
    """Regression: parking appends PracticeParked to the failing practice's own stream; that
    append failing escaped the supervisor and ended every practice. And a command sent to an
    actor that crashes while handling it answered nobody: its asker waited forever."""
    system = await start_system(nursery, sim_config=SimConfig(practices=2, writeback_delay=(5, 20)))
    bad, good = system.offices()
    await _fresh_key(system, bad)
    store = FailingStore(system.store, bad, poison=(ev.Event,))  # every append of this practice
    system.deps.store = store
    system.store = store
    policy_ = system.practices.policy
    for n in range(policy_.intensity + 1):
        actor = await wait_until(lambda: _actor(system, bad), 120, step=0.1)
        with trio.fail_after(5), pytest.raises(Unavailable):
            await actor.ask(messages.Pause())
    await wait_until(lambda: _is_parked(system, bad), 60, step=0.1)
    await trio.sleep(1)
    assert len(store.failures) == policy_.intensity + 1 + 1  # the crashes, then PracticeParked
    wid = await system.request(good, "book_appointment", booking(system.sim, good, 1))
    assert (await system.wait_final([wid], timeout=300))[wid].state == "completed"
    assert good in system.practices.running() and bad in system.practices.running()
    store.armed = False
    await trio.sleep(policy_.park_for + 5)
    assert not system.practices.supervised[bad].parked
    late = await system.request(bad, "book_appointment", booking(system.sim, bad, 2))
    assert (await system.wait_final([late], timeout=300))[late].state == "completed"


async def _actor(system, office):
    return system.practices.actors.get(office)


async def _is_parked(system, office):
    return system.practices.supervised[office].parked


# --- 9. recovery from a snapshot --------------------------------------------------------------


async def test_restart_recovers_from_the_snapshot_to_the_full_fold(nursery, autojump_clock):
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 60)))
    office = system.offices()[0]
    stream_id = ev.stream_id(office)
    ids = [await system.request(office, "book_appointment", booking(system.sim, office, n)) for n in range(40)]
    await system.wait_final(ids[:30], timeout=3600)
    # some still open (queued/pending) when the actor stops, so the state is not trivial
    open_ids = [await system.request(office, "book_appointment", booking(system.sim, office, n)) for n in range(40, 44)]
    records = await stream(system, office)
    assert len(records) > 200
    snapshot = (await system.store.load_streams([stream_id], SNAPSHOT_SCHEMA))[stream_id][0]
    assert snapshot is not None and snapshot.version >= 200
    system.practices.stop(office)
    await wait_until(lambda: _stopped(system, office), 60, step=0.1)
    records = await stream(system, office)
    full = fold(empty(office), [r.event for r in records])
    reads = []
    real_load = system.store.load_streams

    async def load_streams(stream_ids, schema):
        found = await real_load(stream_ids, schema)
        for sid, (snap, tail) in found.items():
            reads.append((sid, (snap.version if snap else 0, tail[0].version if tail else None)))
        return found

    system.store.load_streams = load_streams
    try:
        assert system.practices.start(office)
        await system.practices.wait_started(office)
        actor = system.practices.actors[office]
        assert actor.version == len(records)
        # snapshot + tail == a fold of every event (up to the schedule that noted checks move)
        assert without_schedule(actor.state) == without_schedule(full)
        assert (stream_id, (snapshot.version, snapshot.version + 1)) in reads  # it did start from the snapshot
    finally:
        system.store.load_streams = real_load
    assert any(wb.state != "completed" for wb in full.writebacks.values())
    rows = await system.wait_final(ids + open_ids, timeout=3600)
    assert {r.state for r in rows.values()} == {"completed"}
    assert len(await sim_created(system, office)) == 44  # nothing sent twice across the restart


async def _stopped(system, office):
    return office not in system.practices.running()


# --- 10. ports of the peer's token and writeback tests (peer-implementation.md 4.2, 4.3) ------
# Named test_peer_<spec>__<case>; where the peer's case encodes one of its bugs (section 5), the
# port asserts the corrected behaviour and says so.


def _grants(timeline):
    return [r for r in timeline if r["method"] == "POST" and r["path"] == "/v4/request_key"]


def _record(system, n_timeouts: int = 0) -> "TimeoutAfterSend":
    recorder = TimeoutAfterSend(system.sim.transport(), n=n_timeouts)
    system.deps.client._http = httpx.AsyncClient(transport=recorder)
    return recorder


def _grant_statuses(recorder) -> list[int]:
    return [status for method, path, status in recorder.seen if method == "POST" and path == "/v4/request_key"]


async def _practice(system, office):
    return (await system.store.practice(office)).practice


async def test_peer_token__refresh_path_saves_the_new_keys_active_and_clears_last_error(nursery, autojump_clock):
    """Port of "refresh path": a refresh_key grant; the new request and refresh keys are saved,
    the practice is active and last_error is cleared (here after a failed try)."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, rotate_refresh_keys=True))
    office = system.offices()[0]
    await _fresh_key(system, office)
    actor = system.practices.actors[office]
    system.sim.set_faults({"error_rate": 1.0})
    await actor.ask(messages.RefreshToken())
    await wait_until(lambda: _has_error(system, office), 30, step=0.1)
    system.sim.set_faults({"error_rate": 0})
    await actor.ask(messages.RefreshToken())
    await trio.sleep(1)
    practice = await _practice(system, office)
    assert practice.state == "active" and practice.last_error is None
    refreshed = of_type(await stream(system, office), ev.TokenRefreshed)
    assert refreshed[-1].grant == "refresh_key"
    ps = system.sim.practice(office)
    stored_request = await system.credentials.secret(office, "request_key")
    assert system.sim.keys[stored_request.reveal()].start == max(k.start for k in system.sim.keys.values())
    assert await system.credentials.secret(office, "refresh_key") == Secret(ps.refresh_key)  # the rotated one


async def _has_error(system, office):
    return (await _practice(system, office)).last_error is not None


async def test_peer_token__refresh_rejected_falls_back_to_a_request_key_grant(nursery, autojump_clock):
    """Port of "Refresh rejected with any error: a second POST with grant_type request_key
    follows". Sikka answers an unknown refresh key 401 API2003."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1))
    office = system.offices()[0]
    await _fresh_key(system, office)
    await system.credentials.put_secret(office, "refresh_key", Secret("0" * 32))  # deleted at Sikka
    recorder = _record(system)
    await system.practices.actors[office].ask(messages.RefreshToken())
    await trio.sleep(5)
    assert _grant_statuses(recorder) == [401, 200]
    refreshed = of_type(await stream(system, office), ev.TokenRefreshed)
    assert refreshed[-1].grant == "request_key"
    practice = await _practice(system, office)
    assert practice.state == "active"
    # and the practice keeps working on the new key
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    assert (await system.wait_final([wid], timeout=300))[wid].state == "completed"


async def test_peer_token__refresh_and_secret_rejected_is_setup_required_with_last_error(nursery, autojump_clock):
    """Port of "Failure: status ERROR, lastError 'Token refresh failed: <msg>'": both grants
    refused: setup_required with Sikka's error as last_error, and no more grants."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1))
    office = system.offices()[0]
    await _fresh_key(system, office)
    await system.credentials.put_secret(office, "refresh_key", Secret("0" * 32))
    await system.credentials.put_secret(office, "secret_key", Secret("wrong-secret"))
    recorder = _record(system)
    await system.practices.actors[office].ask(messages.RefreshToken())
    await trio.sleep(600)
    assert _grant_statuses(recorder) == [401, 401]
    practice = await _practice(system, office)
    assert practice.state == "setup_required" and "API2003" in practice.last_error


async def test_peer_token__refresh_fails_without_office_secret_after_exactly_one_post(nursery, autojump_clock):
    """Port of "Refresh fails and there is no office/secret: false, after exactly 1 POST"."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1))
    office = system.offices()[0]
    await _fresh_key(system, office)
    await system.credentials.put_secret(office, "refresh_key", Secret("0" * 32))
    await system.credentials.rows.delete(["secret_key"], [office])
    recorder = _record(system)
    await system.practices.actors[office].ask(messages.RefreshToken())
    await trio.sleep(600)
    assert _grant_statuses(recorder) == [401]
    practice = await _practice(system, office)
    assert practice.state == "setup_required" and "no_secret_key" in practice.last_error


@pytest.mark.parametrize("ttl", [86400.0, 43200.0])
async def test_peer_token__saved_expiry_follows_the_grant(nursery, autojump_clock, ttl):
    """Port of "Saved expiry: within 5 s of now + 86400 s, or now + 43200 s"."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, token_ttl=ttl))
    office = system.offices()[0]
    await _fresh_key(system, office)
    refreshed = of_type(await stream(system, office), ev.TokenRefreshed)[-1]
    assert abs((refreshed.expires_at - refreshed.at).total_seconds() - ttl) <= 5
    assert (await _practice(system, office)).token_expires_at == refreshed.expires_at


async def test_peer_token__failure_transient_error_backs_off_and_keeps_the_practice_active(nursery, autojump_clock):
    """Port of "Failure: status ERROR" corrected (section 5.3 item 19: one transient error
    disabled the clinic): a 5xx on a grant backs off 10 s doubling and the practice stays
    active on its still-valid key; the next grant succeeds."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1))
    office = system.offices()[0]
    await _fresh_key(system, office)
    before = len(_grants(await sim_requests(system, office)))
    system.sim.set_faults({"error_rate": 1.0})
    await system.practices.actors[office].ask(messages.RefreshToken())
    await trio.sleep(65)
    assert (await _practice(system, office)).state == "active"
    system.sim.set_faults({"error_rate": 0})
    await trio.sleep(120)
    grants = _grants(await sim_requests(system, office))[before:]
    assert [g["status"] >= 500 for g in grants] == [True] * (len(grants) - 1) + [False]
    times = [datetime.fromisoformat(g["at"].replace("Z", "+00:00")) for g in grants]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert gaps[:3] == pytest.approx([10, 20, 40], abs=0.5)
    practice = await _practice(system, office)
    assert practice.state == "active" and practice.last_error is None
    assert (await sim_stats(system, office))["expired_key_calls"] == 0


async def test_peer_writeback__check_status_completed_gives_created_id_and_completed_time(nursery, autojump_clock):
    """Port of checkWritebackStatus "is_completed True, has_error False gives completed with
    completedTime", corrected (section 5.2 item 9): the id returned is the PMS's created id
    (appointment_sr_no), never Sikka's writeback id."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    row = (await system.wait_final([wid], timeout=300))[wid]
    assert row.state == "completed" and row.sikka_completed_time
    (created,) = await sim_created(system, office)
    assert row.created_id == created["appointment_sr_no"] and row.created_id != row.sikka_writeback_id
    assert created["writeback_id"] == row.sikka_writeback_id


async def test_peer_writeback__check_status_has_error_gives_failed_with_the_message(nursery, autojump_clock):
    """Port of "has_error True gives result failed with errorMessage"."""
    system = await start_system(
        nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20), writeback_failure_rate=1.0)
    )
    office = system.offices()[0]
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    row = (await system.wait_final([wid], timeout=300))[wid]
    assert row.state == "failed" and not row.retryable and row.error.code == "sikka_error"
    assert "rejected the request" in row.error.message
    assert await sim_created(system, office) == []


class TimeoutAfterSend(httpx.AsyncBaseTransport):
    """Forwards every request, recording (method, path, status) in ``seen`` (Sikka cannot tell
    whose a request with an unknown key is, so the practice's timeline does not show it); the
    first ``n`` writeback POSTs reach Sikka, then time out."""

    def __init__(self, inner, n: int = 1):
        self.inner = inner
        self.n = n
        self.seen: list[tuple[str, str, int]] = []

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        self.seen.append((request.method, request.url.path, response.status_code))
        if request.method == "POST" and request.url.path.endswith("/appointment") and self.n > 0:
            self.n -= 1
            raise httpx.ReadTimeout("timed out waiting for the answer", request=request)
        return response


async def test_peer_writeback__network_error_after_send_is_never_success_nor_reposted(nursery, autojump_clock):
    """Port of "a network error gives null", corrected (section 5.2 items 8 and 11: the peer
    reported such writebacks as booked, or booked again): the outcome is unknown, reconciled
    through Sikka's list, confirmed from Sikka's own result, and never POSTed twice."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(30, 30)))
    office = system.offices()[0]
    _record(system, n_timeouts=1)
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    await wait_until(lambda: _state_is(system, wid, "unknown"), 60, step=0.1)
    row = (await system.wait_final([wid], timeout=900))[wid]
    assert row.state == "completed" and row.attempts == 1
    records = await stream(system, office)
    assert [e.reason for e in of_type(records, ev.OutcomeUnknown)] == ["timeout"]
    assert len(of_type(records, ev.WritebackReconciled)) == 1
    completed = of_type(records, ev.WritebackCompleted)[0]
    accepted = of_type(records, ev.SubmitAttempted)[0].at
    assert completed.at >= accepted + timedelta(seconds=30)  # not before Sikka completed it
    assert len(posts(await sim_requests(system, office))) == 1
    assert len(await sim_created(system, office)) == 1


async def _state_is(system, wid, state):
    row = await system.store.writeback(wid)
    return row is not None and row.state == state


async def test_peer_writeback__still_pending_is_never_reported_completed(nursery, autojump_clock):
    """Port of "still pending: same writes" and pollWritebackStatus's limit, corrected (section
    5.2 item 8: completed after 10 pending checks): a writeback Sikka holds pending (its SPU went
    offline after accepting it) stays pending through many checks, then completes when Sikka does."""
    system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(5, 20)))
    office = system.offices()[0]
    await _fresh_key(system, office)
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    await _accepted_then_spu_offline(system, office, wid)
    await trio.sleep(3600)
    row = await system.store.writeback(wid)
    assert row.state == "pending" and row.checks >= 10
    assert await sim_created(system, office) == []
    system.sim.set_faults({"spu_offline": []})
    row = (await system.wait_final([wid], timeout=600))[wid]
    assert row.state == "completed" and len(await sim_created(system, office)) == 1
