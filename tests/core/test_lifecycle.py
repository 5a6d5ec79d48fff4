"""Commands around the state table: retry-failed, pause/resume, setup_required, offboarding,
the order of first attempts, recovery, onboarding, and what next_step picks."""

from __future__ import annotations

import msgspec

from actors.core import messages
from actors.core.decide import retry_id, decide, recover, apply
from actors.core.schedule import next_step, list_targets, key_usable, bodies_needed, recovered_key_call_at
from actors.core.policy import DEFAULT_SETTINGS
from actors.core.alerting import practice_alerts
from actors.core import events as ev
from actors.core import outcomes as oc
from actors.core.ratelimit import Budget, Lane
from actors.core.state import fold

from tests.support.core import PAYLOADS, ack, at, base, given, list_item, listing, ok, pending, requested, result, step, submitting, types, unknown


def _deadline_failed(wid="wb1", t=0):
    return [requested(wid, t=t, deadline_s=100), ev.WritebackFailed(at=at(t + 100), writeback_id=wid, code="deadline_exceeded", retryable=True)]


# --- retry-failed ----------------------------------------------------------------------------


def test_retry_failed_requeues_each_retryable_failure_once_with_retry_of():
    p = given(
        *_deadline_failed("wb1"),
        *_deadline_failed("wb2", t=1),
        *submitting("wb3"),
        ev.WritebackRejected(at=at(5), writeback_id="wb3", code="API1026"),  # not retryable
    )
    assert p.retryable_failed == ("wb1", "wb2") and p.payloads == {"wb1": "enc:wb1", "wb2": "enc:wb2"}
    p, d = step(p, messages.RetryFailed(), 200)
    assert types(d) == ["WritebackRequested", "WritebackRequested"]
    # the payload is sealed anew under the retry's own key by the commit path, not by the core
    assert [(e.retry_of, e.payload, e.operation) for e in d] == [
        ("wb1", "", "book_appointment"),
        ("wb2", "", "book_appointment"),
    ]
    assert d[0].writeback_id == retry_id("wb1") != "wb1"
    assert d[0].deadline_at == at(200 + 21600)
    assert not p.retryable_failed and not p.failed_ops and set(p.payloads) == {d[0].writeback_id, d[1].writeback_id}
    assert decide(p, messages.RetryFailed(), at(201)) == []  # twice retries nothing twice
    # the retry can fail and be retried in its turn (a new failure)
    p, _ = step(p, messages.Tick(), 200 + 21600)
    p, d = step(p, messages.RetryFailed(), 200 + 21601)
    assert [e.retry_of for e in d] == [retry_id("wb1"), retry_id("wb2")]


def test_retry_failed_skips_purged_payloads():
    p = given(*_deadline_failed("wb1"), ev.PayloadPurged(at=at(300), writeback_id="wb1"))
    assert decide(p, messages.RetryFailed(), at(400)) == []


# --- pause / resume --------------------------------------------------------------------------


def test_paused_sends_nothing_new_but_pending_still_checked_and_status_read():
    p = given(*pending("wbP"), requested("wbQ", t=10), ev.PracticePaused(at=at(11)))
    assert p.state == "paused"
    assert decide(p, messages.Pause(), at(12)) == []
    s = next_step(p, at(12))
    assert not isinstance(s, messages.Submit)
    assert [t.writeback_id for t in list_targets(p)] == ["wbP"]
    p, _ = step(p, listing(list_item("5001", result="completed"), t=12), 12)
    assert next_step(p, at(12)) == messages.Poll(writeback_id="wbP", sikka_writeback_id="5001")
    p, d = step(p, messages.Resume(), 13)
    assert types(d) == ["PracticeResumed"] and decide(p, messages.Resume(), at(13)) == []


def test_requests_are_accepted_while_paused_or_in_setup_required():
    for extra in (ev.PracticePaused(at=at(0)), ev.SetupRequired(at=at(0), code="API2007")):
        p = given(extra)
        d = decide(p, messages.RequestWriteback(writeback_id="w", operation="create_patient"), at(1))
        assert types(d) == ["WritebackRequested"]


# --- tokens and setup_required ---------------------------------------------------------------


def test_refresh_key_refused_falls_back_to_request_key_then_setup_required():
    p = given(ev.KeyRefused(at=at(0), code="API1025"))
    assert next_step(p, at(1)) == messages.Refresh(grant="refresh_key")
    refused = result(oc.Rejected(status=400, code="API1004", message="invalid"))
    p, d = step(p, messages.RefreshOutcome(result=refused, grant="refresh_key"), 1)
    assert types(d) == ["TokenRefreshFailed"] and d[0].next_grant == "request_key"
    assert next_step(p, at(1)) == messages.Refresh(grant="request_key")
    p, d = step(p, messages.RefreshOutcome(result=refused, grant="request_key"), 2)
    assert types(d) == ["SetupRequired"] and p.state == "setup_required"
    assert isinstance(next_step(p, at(3)), messages.Sleep)
    assert [a.kind for a in practice_alerts(p, at(3))][:1] == ["setup_required"]


def test_unauthorized_grant_is_setup_required_and_reauthorization_recovers():
    p = given()
    p, d = step(p, messages.RefreshOutcome(result=result(oc.Unauthorized(code="API2007")), grant="refresh_key"), 1)
    assert types(d) == ["SetupRequired"]
    p, d = step(p, messages.PracticeUnlisted(), 2)
    assert types(d) == ["PracticeDeauthorized"]
    p, d = step(p, messages.PracticeListed(practice_name="Smile", time_zone="Eastern Standard Time"), 3)
    assert types(d) == ["PracticeReauthorized"]
    assert next_step(p, at(4)) == messages.Refresh(grant="request_key")
    grant = oc.TokenGrant(request_key="k", refresh_key="r", expires_at=at(86400))
    p, _ = step(p, messages.RefreshOutcome(result=ok(grant), grant="request_key"), 5)
    assert p.state == "active" and key_usable(p, at(6))


def test_key_refused_on_a_status_read_refreshes_first():
    p = given(*pending())
    p, _ = step(p, listing(list_item("5001", result="completed"), t=10), 10)
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=result(oc.ExpiredKey())), 11)
    assert types(d) == ["KeyRefused"]
    assert next_step(p, at(11)) == messages.Refresh(grant="refresh_key")


def test_no_calls_with_a_key_about_to_expire():
    expiry = 86400 - 3600  # base(): the key expires at -3600 + 86400
    p = given(requested("wb1", deadline_s=200000), p=base())
    s = next_step(p, at(expiry - 30), jitter=0.0)
    assert isinstance(s, messages.Refresh)  # well past the refresh time: refresh, never submit
    p = given(ev.TokenRefreshFailed(at=at(expiry - 31), code="API2002", retry_at=at(expiry + 100)), p=p)
    s = next_step(p, at(expiry - 30), jitter=0.0)
    assert isinstance(s, messages.Sleep)  # refresh backing off and the key within 60 s of expiry: wait
    assert s.until == at(expiry + 100)


def test_onboarding_registers_and_updates():
    from actors.core.state import empty

    p = empty("D7")
    p, d = step(p, messages.PracticeListed(practice_name="A", practice_ids=("1",), time_zone="Eastern Standard Time"), 0)
    assert types(d) == ["PracticeRegistered"] and p.registered
    assert decide(p, messages.PracticeListed(practice_name="A", practice_ids=("1",), time_zone="Eastern Standard Time"), at(1)) == []
    _, d = step(p, messages.PracticeListed(practice_name="B", practice_ids=("1",), time_zone="Eastern Standard Time"), 2)
    assert types(d) == ["PracticeUpdated"]


def test_listed_again_after_setup_required_gets_a_new_grant_unless_the_same_secret_was_refused():
    """Regression (found by the fault suite): a revoke seen by a key call (API2007) and lifted
    before any onboarding saw the practice unlisted left it ``setup_required`` for good: the
    listing said "unchanged". A listing contradicts API2007; a refused secret key is tried again
    only when the listing brings another one."""
    from actors.core.state import empty

    listed = messages.PracticeListed(practice_name="A", practice_ids=("1",), time_zone="Eastern Standard Time")
    p, _ = step(empty("D7"), listed, 0)
    revoked = fold(p, [ev.SetupRequired(at=at(1), code="API2007", message="not authorized")])
    assert revoked.state == "setup_required" and revoked.setup_code == "API2007"
    again, d = step(revoked, listed, 2)
    assert types(d) == ["PracticeReauthorized"] and again.state == "active" and again.setup_code is None
    refused = fold(p, [ev.SetupRequired(at=at(1), code="API2003", message="secret refused")])
    assert decide(refused, listed, at(2)) == []
    _, d = step(refused, msgspec.structs.replace(listed, secret_changed=True), 2)
    assert types(d) == ["PracticeReauthorized"]


# --- offboarding -----------------------------------------------------------------------------


def test_offboard_refused_while_submitting_or_unknown():
    for events in (submitting(), unknown()):
        r = decide(given(*events), messages.OffboardPractice(), at(100))
        assert isinstance(r, messages.Refused) and r.code == "writebacks_in_flight"


def test_offboard_cancels_queued_and_deferred_and_pending_at_sikka_then_offboards():
    p = given(
        *pending("wbP", sikka_id="5001"),
        requested("wbQ", t=5),
        requested("wbD", t=6),
        ev.SubmitAttempted(at=at(7), writeback_id="wbD", attempt=1),
        ev.WritebackDeferred(at=at(8), writeback_id="wbD", reason="spu_offline", retry_at=at(100)),
    )
    p, d = step(p, messages.OffboardPractice(), 10)
    assert [(type(e).__name__, getattr(e, "writeback_id", None)) for e in d] == [
        ("CancelRequested", "wbP"),
        ("WritebackCancelled", "wbQ"),
        ("WritebackCancelled", "wbD"),
        ("OffboardRequested", None),
    ]
    assert decide(p, messages.RequestWriteback(writeback_id="x", operation="create_patient"), at(11)).code == "unknown_practice"
    assert next_step(p, at(11)) == messages.Cancel(writeback_id="wbP", sikka_writeback_id="5001", attempt=1)
    p, _ = step(p, messages.DeleteOutcome(writeback_id="wbP", result=ok()), 12)
    deleted = oc.WritebackStatus(id="5001", is_completed=False, has_error=False, status="Deleted")
    p, d = step(p, messages.StatusOutcome(writeback_id="wbP", result=ok(deleted)), 13)
    assert types(d) == ["WritebackCancelled"]
    assert next_step(p, at(13)) == messages.Offboard()
    p, d = step(p, messages.OffboardOutcome(), 14)
    assert types(d) == ["PracticeOffboarded"] and p.state == "offboarded" and not p.payloads
    assert next_step(p, at(15)) == messages.Sleep(until=None)
    assert decide(p, messages.Pause(), at(16)).code == "unknown_practice"


# --- order of first attempts -----------------------------------------------------------------


def test_first_attempts_in_request_order_and_unknown_never_blocks():
    p = given(*unknown("wb1"), requested("wb2", t=40), requested("wb3", t=41), requested("wb4", t=42))
    sent = []
    t = 50.0
    for _ in range(3):
        s = next_step(p, at(t))
        assert isinstance(s, messages.Submit)
        sent.append(s.writeback_id)
        p = fold(p, [s.attempted])
        assert not isinstance(next_step(p, at(t)), messages.Submit)  # one at a time
        p, _ = step(p, messages.SubmitOutcome(writeback_id=s.writeback_id, result=ack(str(t))), t)
        t += 1
    assert sent == ["wb2", "wb3", "wb4"]


def test_a_requeued_earlier_writeback_goes_before_later_ones():
    p = given(*submitting("wb1"), requested("wb2", t=5))
    p, _ = step(p, messages.SubmitOutcome(writeback_id="wb1", result=result(oc.ExpiredKey())), 6)
    grant = oc.TokenGrant(request_key="k", refresh_key="r", expires_at=at(90000))
    p, _ = step(p, messages.RefreshOutcome(result=ok(grant)), 7)
    s = next_step(p, at(8))
    assert isinstance(s, messages.Submit) and s.writeback_id == "wb1"


def test_submit_waits_for_the_submission_lane_and_refresh_uses_the_token_lane():
    p = given(requested("wb1"))
    b = Budget(10)
    for _ in range(7):
        b.take(Lane.BACKGROUND, at(0).timestamp())
    assert isinstance(next_step(p, at(1), b), messages.Submit)  # 7 < 10 - 2
    b.take(Lane.READ, at(0).timestamp())
    assert isinstance(next_step(p, at(1), b), messages.Sleep)
    pk = given(ev.KeyRefused(at=at(0), code="API1025"), requested("wb1"))
    assert next_step(pk, at(1), b) == messages.Refresh(grant="refresh_key")


# --- recovery and fallbacks ------------------------------------------------------------------


def test_recover_only_touches_submitting():
    p = given(*pending("a"), *unknown("b", t=1), requested("c", t=2))
    assert recover(p, at(10)) == []


def test_recover_closes_a_parking_left_open_in_the_log():
    """Regression (fault seeds 40, 69): the supervisor's own append of the parking's end failed
    on a database error, and the practice read ``parked`` forever while its actor ran."""
    parked = given(ev.PracticeParked(at=at(0), until=at(900), error="boom"))
    assert parked.state == "parked"
    events = recover(parked, at(901))
    assert types(events) == ["PracticeUnparked"]
    assert apply(parked, events).state == "active"


def test_reconcile_step_when_the_app_level_list_is_overdue():
    p = given(*unknown())  # next check at 36 s
    assert isinstance(next_step(p, at(60)), messages.Sleep)
    assert next_step(p, at(60)).until == at(96)
    s = next_step(p, at(96))
    assert isinstance(s, messages.Reconcile) and s.writeback_ids == ("wb1",)
    lo, hi = s.ranges[0]
    assert (hi - lo).days == 2 and lo < at(1).date() < hi
    p, d = step(p, listing(t=96, bodies={"wb1": PAYLOADS["book_appointment"]}), 96)
    assert types(d) == ["ProvenAbsent"]


def test_failed_list_fetch_backs_off():
    p = given(*unknown())
    _, d = step(p, messages.ListOutcome(fetched_at=at(100), failed=True, ranges=listing(t=100).ranges), 100)
    assert types(d) == ["StatusChecked"] and d[0].next_check_at == at(110)


def test_unknown_without_a_body_is_rechecked_later_not_in_a_loop():
    p = given(*unknown())
    _, d = step(p, listing(t=100), 100)
    assert types(d) == ["StatusChecked"] and d[0].result == "no_body" and d[0].next_check_at == at(160)
    assert bodies_needed(p) == ["wb1"]


def test_sleep_until_the_earliest_timer():
    p = given(requested("wb1", deadline_s=500), ev.PracticePaused(at=at(1)))
    assert next_step(p, at(2), jitter=0.0) == messages.Sleep(until=at(500))


def test_messages_are_one_tagged_union():
    msgs = [
        messages.RequestWriteback(writeback_id="w", operation="create_patient"),
        messages.CancelWriteback(writeback_id="w"),
        messages.RetryFailed(),
        messages.Pause(),
        messages.Tick(),
        messages.PracticeListed(practice_name="A", time_zone="Eastern Standard Time"),
    ]
    for m in msgs:
        raw = msgspec.json.encode(m)
        assert msgspec.json.decode(raw, type=messages.AnyCommand) == m
    assert b'"kind":"request_writeback"' in msgspec.json.encode(msgs[0])
    # inputs carrying an outcomes.Result encode (its Outcome union is untagged, so they are
    # passed in process, not decoded from the wire)
    assert b'"kind":"submit_outcome"' in msgspec.json.encode(messages.SubmitOutcome(writeback_id="w", result=ack()))


def test_after_a_restart_the_idle_key_checks_spread_over_one_interval():
    """Regression: every recovering actor counted the restart as its last keyed call, so the
    idle key checks of 20,000 practices all came due one interval after the restart."""
    interval = DEFAULT_SETTINGS.key_check_interval
    offices = [f"D{n}" for n in range(2000)]
    first = [(recovered_key_call_at(o, at(0), DEFAULT_SETTINGS) - at(0)).total_seconds() + interval for o in offices]
    assert all(0 < s <= interval for s in first)  # each within the interval after the restart
    tenths = {int(10 * s / interval) for s in first}
    assert tenths == set(range(10))  # spread over all of it
    assert recovered_key_call_at("D7", at(0), DEFAULT_SETTINGS) == recovered_key_call_at("D7", at(0), DEFAULT_SETTINGS)


def test_idle_key_check_notices_a_revoked_practice():
    p = given()
    assert isinstance(next_step(p, at(10), last_keyed_call_at=at(0)), messages.Sleep)
    assert next_step(p, at(10), last_keyed_call_at=at(0)).until == at(60)
    assert next_step(p, at(60), last_keyed_call_at=at(0)) == messages.KeyCheck()
    assert decide(p, messages.KeyCheckOutcome(result=ok(oc.KeyInfo(issued_to="D1111", status="active", expires_at=None))), at(60)) == []
    p, d = step(p, messages.KeyCheckOutcome(result=result(oc.Unauthorized(code="API2007"))), 61)
    assert types(d) == ["SetupRequired"] and p.state == "setup_required"
    assert not isinstance(next_step(p, at(200), last_keyed_call_at=at(61)), messages.KeyCheck)
    p2, d = step(given(), messages.KeyCheckOutcome(result=result(oc.ExpiredKey())), 61)
    assert types(d) == ["KeyRefused"] and next_step(p2, at(62)) == messages.Refresh(grant="refresh_key")
