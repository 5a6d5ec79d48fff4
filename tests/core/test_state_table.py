"""Interface section 4, the writeback state table: given events, when an input, then events.

One or more tests per row, in the table's order; the row is quoted in each test's docstring.
"""

from __future__ import annotations


import pytest

from actors.core.decide import decide, recover
from actors.core import messages
from actors.core.schedule import next_step, conditions, list_targets, bodies_needed
from actors.core.alerting import practice_alerts
from actors.core import events as ev
from actors.core import outcomes as oc
from actors.core.ratelimit import Budget, Lane
from actors.core.state import fold

from tests.support.core import (
    PAYLOADS,
    ack,
    at,
    base,
    given,
    list_item,
    listing,
    ok,
    pending,
    requested,
    result,
    step,
    submitting,
    types,
    unknown,
)

# --- — → queued -------------------------------------------------------------------------------


def test_accepted_request_is_queued():
    """— | accepted request | queued | requested"""
    p = base()
    d = decide(p, messages.RequestWriteback(writeback_id="wb1", operation="book_appointment"), at(0))
    assert types(d) == ["WritebackRequested"]
    assert d[0].deadline_at == at(21600)
    assert fold(p, d).writebacks["wb1"].state == "queued"


def test_request_with_its_own_deadline():
    """The request's fields were validated by the admin API (``SubmitBody``, ``normalize``: one
    place for each rule); the core takes the deadline as given."""
    p = base()
    d = decide(p, messages.RequestWriteback(writeback_id="w", operation="book_appointment", deadline_s=60), at(0))
    assert d[0].deadline_at == at(60)


def test_idempotency_same_payload_is_duplicate_different_is_conflict():
    p = given(requested("wb1", idempotency_key="k1", payload_digest="d1"))
    same = messages.RequestWriteback(
        writeback_id="wb2", operation="book_appointment", payload_digest="d1", idempotency_key="k1"
    )
    assert decide(p, same, at(1)) == messages.Duplicate("wb1")
    other = messages.RequestWriteback(
        writeback_id="wb2", operation="book_appointment", payload_digest="d2", idempotency_key="k1"
    )
    assert decide(p, other, at(1)).code == "idempotency_conflict"


# --- queued → submitting ----------------------------------------------------------------------


def test_queued_is_submitted_when_budget_allows_and_practice_active():
    """queued | budget allows, practice active and not paused | submitting | submit attempted"""
    p = given(requested("wb1"))
    s = next_step(p, at(1), Budget(200))
    assert isinstance(s, messages.Submit) and s.writeback_id == "wb1" and s.attempt == 1
    assert s.attempted == ev.SubmitAttempted(at=at(1), writeback_id="wb1", attempt=1)
    assert fold(p, [s.attempted]).writebacks["wb1"].state == "submitting"


def test_queued_waits_for_budget():
    p = given(requested("wb1"))
    b = Budget(3)
    for _ in range(3):
        b.take(Lane.TOKEN, at(0).timestamp())
    s = next_step(p, at(1), b)
    assert isinstance(s, messages.Sleep)
    assert s.until == at(60.5)


@pytest.mark.parametrize("blocker", ["paused", "setup_required", "deauthorized", "no_key"])
def test_queued_is_not_submitted_unless_active(blocker):
    p = given(requested("wb1"))
    if blocker == "paused":
        p = given(ev.PracticePaused(at=at(0)), p=p)
    elif blocker == "setup_required":
        p = given(ev.SetupRequired(at=at(0), code="API2007"), p=p)
    elif blocker == "deauthorized":
        p = given(ev.PracticeDeauthorized(at=at(0)), p=p)
    else:
        p = given(requested("wb1"), p=base(token=False))
    s = next_step(p, at(1))
    assert not isinstance(s, messages.Submit)
    if blocker == "no_key":
        assert s == messages.Refresh(grant="request_key")


# --- submitting → … ---------------------------------------------------------------------------


def test_acknowledgement_makes_it_pending_with_first_check_two_seconds_later():
    """submitting | acknowledgement with Sikka's id | pending | submitted"""
    p = given(*submitting())
    p2, d = step(p, messages.SubmitOutcome(writeback_id="wb1", result=ack("275495")), 3)
    assert types(d) == ["WritebackSubmitted"]
    wb = p2.writebacks["wb1"]
    assert (wb.state, wb.sikka_writeback_id, wb.next_check_at) == ("pending", "275495", at(5))


@pytest.mark.parametrize("outcome", [oc.ExpiredKey(), oc.InvalidKey()])
def test_key_refused_requeues_without_counting_an_attempt_and_refreshes(outcome):
    """submitting | key refused (API1025/API1004) | queued, not an attempt; the token is refreshed"""
    p = given(*submitting())
    p2, d = step(p, messages.SubmitOutcome(writeback_id="wb1", result=result(outcome, status=400)), 2)
    assert types(d) == ["SubmitRefused"]
    assert p2.writebacks["wb1"].state == "queued" and p2.writebacks["wb1"].attempts == 0
    assert next_step(p2, at(3)) == messages.Refresh(grant="refresh_key")


def test_unauthorized_requeues_and_practice_goes_to_setup_required():
    """submitting | key refused (401 API2007) | queued; the practice goes to setup_required"""
    p = given(*submitting())
    p2, d = step(p, messages.SubmitOutcome(writeback_id="wb1", result=result(oc.Unauthorized(), status=401)), 2)
    assert types(d) == ["SubmitRefused", "SetupRequired"]
    assert p2.state == "setup_required" and p2.writebacks["wb1"].state == "queued"
    assert not isinstance(next_step(p2, at(3)), (messages.Submit, messages.Refresh))


def test_other_4xx_fails_not_retryable_with_sikkas_code():
    """submitting | other 4xx rejection | failed (retryable: false, Sikka's code) | rejected"""
    p = given(*submitting())
    rej = oc.Rejected(status=400, code="API1026", message="patient_id is required")
    p2, d = step(p, messages.SubmitOutcome(writeback_id="wb1", result=result(rej, status=400)), 2)
    assert types(d) == ["WritebackRejected"]
    assert p2.finished == {"failed": 1} and "wb1" not in p2.writebacks and not p2.retryable_failed


def test_429_window_defers_until_the_servers_reset():
    """submitting | 429 window | deferred (retry at the server's reset)"""
    p = given(*submitting())
    p2, d = step(p, messages.SubmitOutcome(writeback_id="wb1", result=result(oc.RateLimited(reset_s=20), status=429)), 2)
    assert types(d) == ["WritebackDeferred"] and d[0].reason == "rate_limited"
    assert d[0].retry_at == at(23)
    wb = p2.writebacks["wb1"]
    assert wb.state == "deferred" and wb.attempts == 0
    assert conditions(p2, at(3)) == ["rate_limited"]


def test_412_spu_offline_backs_off_15s_doubling_to_15_min():
    """submitting | 412 SPU offline | deferred (15 s doubling to 15 min)"""
    p = given(requested("wb1"))
    delays = []
    t = 0.0
    for _ in range(9):
        p = given(ev.SubmitAttempted(at=at(t), writeback_id="wb1", attempt=1), p=p)
        p, d = step(p, messages.SubmitOutcome(writeback_id="wb1", result=result(oc.SpuOffline(), status=412)), t)
        delays.append((d[0].retry_at - at(t)).total_seconds())
        t = (d[0].retry_at - at(0)).total_seconds()
        p, d = step(p, messages.Tick(), t)
        assert types(d) == ["RetryScheduled"]
    assert delays == [15, 30, 60, 120, 240, 480, 900, 900, 900]
    p = given(ev.SubmitAttempted(at=at(t), writeback_id="wb1", attempt=1), p=p)
    p, _ = step(p, messages.SubmitOutcome(writeback_id="wb1", result=ack()), t)
    assert p.spu_offline_streak == 0 and p.submit_hold_until is None


def test_daily_quota_defers_to_practice_local_quiet_hours_after_utc_midnight():
    """submitting | daily quota | deferred; retried in quiet hours (practice-local)"""
    p = given(*submitting())  # Eastern, T0 = 2026-03-02 15:00 UTC
    p2, d = step(p, messages.SubmitOutcome(writeback_id="wb1", result=result(oc.DailyQuota(), status=429)), 2)
    assert d[0].reason == "daily_quota"
    assert d[0].retry_at.isoformat() == "2026-03-03T05:00:00+00:00"  # 00:00 EST
    assert conditions(p2, at(3)) == ["quota_exhausted"]
    s = next_step(given(requested("wb2"), p=p2), at(10))
    assert isinstance(s, messages.Sleep)  # the practice-wide hold stops other submissions too


def test_connect_failure_defers_briefly_and_is_not_an_attempt():
    p = given(*submitting())
    p2, d = step(
        p, messages.SubmitOutcome(writeback_id="wb1", result=result(oc.TransportFailure(kind="connect"))), 2
    )
    assert types(d) == ["WritebackDeferred"] and d[0].reason == "connect_failed" and d[0].retry_at == at(7)
    assert p2.writebacks["wb1"].attempts == 0


@pytest.mark.parametrize(
    "outcome",
    [
        oc.ServerError(status=503, code="API2002"),
        oc.ServerError(status=500),
        oc.Unknown(reason="timeout"),
        oc.Unknown(reason="connection cut"),
        oc.TransportFailure(kind="timeout"),
        oc.Ok(value={"unexpected": "body"}),
    ],
)
def test_5xx_timeout_cut_connection_make_it_unknown(outcome):
    """submitting | 5xx, timeout, cut connection, crash | unknown | outcome unknown"""
    p = given(*submitting())
    p2, d = step(p, messages.SubmitOutcome(writeback_id="wb1", result=result(outcome)), 31)
    assert types(d) == ["OutcomeUnknown"]
    assert p2.writebacks["wb1"].state == "unknown"
    assert d[0].next_check_at == at(36)


def test_crash_while_submitting_makes_it_unknown_on_recovery():
    """submitting | crash | unknown (recover)"""
    p = given(*submitting(), requested("wb2"))
    d = recover(p, at(100))
    assert types(d) == ["OutcomeUnknown"] and d[0].reason == "crash" and d[0].writeback_id == "wb1"
    p2 = fold(p, d)
    assert p2.writebacks["wb1"].state == "unknown"
    # never re-sent blindly: the next submit is the other writeback
    s = next_step(p2, at(100))
    assert isinstance(s, messages.Submit) and s.writeback_id == "wb2"


def test_stale_submit_outcome_is_ignored():
    p = given(*pending())
    assert decide(p, messages.SubmitOutcome(writeback_id="wb1", result=ack("9")), at(5)) == []


# --- unknown → … ------------------------------------------------------------------------------


def test_unknown_found_in_list_is_reconciled_to_pending():
    """unknown | reconciliation finds it in GET /writebacks | pending | reconciled (Sikka's id)"""
    p = given(*unknown())
    item = list_item("777")
    p2, d = step(p, listing(item, t=40, bodies={"wb1": PAYLOADS["book_appointment"]}), 40)
    assert types(d) == ["WritebackReconciled"] and d[0].sikka_writeback_id == "777"
    assert p2.writebacks["wb1"].state == "pending"


def test_unknown_found_already_completed_reconciles_then_reads_created_id():
    p = given(*unknown())
    item = list_item("777", result="completed")
    p2, d = step(p, listing(item, t=40, bodies={"wb1": PAYLOADS["book_appointment"]}), 40)
    assert types(d) == ["WritebackReconciled", "StatusChecked"] and d[1].read_status
    assert next_step(p2, at(40)) == messages.Poll(writeback_id="wb1", sikka_writeback_id="777")


@pytest.mark.parametrize(
    "field,value",
    [("time", "10:30"), ("patient_id", "99"), ("operatory", "OP2")],
)
def test_unknown_does_not_match_an_item_with_a_different_key_field(field, value):
    p = given(*unknown())
    body = {**PAYLOADS["book_appointment"], field: value}
    p2, d = step(p, listing(list_item("777", body=body), t=40, bodies={"wb1": PAYLOADS["book_appointment"]}), 40)
    assert types(d) == ["StatusChecked"] and d[0].result == "not_found"


def test_unknown_matches_office_method_api_and_path_id():
    p = given(*unknown(op="update_appointment_status"))
    body = PAYLOADS["update_appointment_status"]
    wrong_office = list_item("1", "update_appointment_status", office="D2222")
    wrong_id = list_item("2", "update_appointment_status", body={**body, "appointment_sr_no": "375"})
    right = list_item("3", "update_appointment_status")
    assert right.request_body["id"] == "374" and right.request_body["op"] == "replace"
    _, d = step(p, listing(wrong_office, wrong_id, right, t=40, bodies={"wb1": body}), 40)
    assert types(d) == ["WritebackReconciled"] and d[0].sikka_writeback_id == "3"


def test_unknown_proven_absent_only_after_attempt_plus_timeout_lease_and_30s():
    """unknown | proven absent: attempt + SIKKA_HTTP_TIMEOUT + SIKKA_LEASE_TTL + 30 s, list lacks it | queued"""
    p = given(*unknown())  # attempted at 1 s: proof possible from 1 + 30 + 30 + 30 = 91 s
    bodies = {"wb1": PAYLOADS["book_appointment"]}
    _, early = step(p, listing(t=90, bodies=bodies), 90)
    assert types(early) == ["StatusChecked"] and early[0].result == "not_found"
    assert early[0].next_check_at == at(91)
    _, incomplete = step(p, listing(t=95, bodies=bodies, complete=False), 95)
    assert incomplete == []  # a partial list proves nothing (nor matches: it may hide a second candidate)
    p2, d = step(p, listing(t=91, bodies=bodies), 91)
    assert types(d) == ["ProvenAbsent"]
    wb = p2.writebacks["wb1"]
    assert wb.state == "queued"
    s = next_step(p2, at(92))
    assert isinstance(s, messages.Submit) and s.attempt == 2  # the second send, after the proof


def test_unknown_not_proven_by_a_list_that_does_not_cover_the_attempt_day_span():
    p = given(*unknown())
    day = at(0).date()
    narrow = ((day, day),)  # the ±1 day span is not covered
    _, d = step(p, listing(t=200, ranges=narrow, bodies={"wb1": PAYLOADS["book_appointment"]}), 200)
    assert d == []


def test_unknown_still_ambiguous_stays_unknown_with_alert():
    """unknown | still ambiguous | stays unknown, writeback_unknown alert"""
    p = given(*unknown())
    items = (list_item("777"), list_item("778"))
    p2, d = step(p, listing(*items, t=200, bodies={"wb1": PAYLOADS["book_appointment"]}), 200)
    assert types(d) == ["StatusChecked"] and d[0].result == "ambiguous"
    assert p2.writebacks["wb1"].state == "unknown" and p2.writebacks["wb1"].ambiguous
    assert [a.kind for a in practice_alerts(p2, at(201))] == ["writeback_unknown"]


def test_item_claimed_by_another_writeback_is_not_matched_twice():
    p = given(*pending("wbA", sikka_id="777"), *unknown("wbB", t=10))
    item = list_item("777")  # same payload as wbB, but it is wbA's
    _, d = step(p, listing(item, t=200, bodies={"wbB": PAYLOADS["book_appointment"]}), 200)
    assert "WritebackReconciled" not in types(d)
    assert any(isinstance(e, ev.ProvenAbsent) and e.writeback_id == "wbB" for e in d)
    # two unknown writebacks with the same payload and one item: it could be either's, so both
    # stay unknown (neither is proven absent, neither re-sent)
    p = given(*unknown("wbC", t=0), *unknown("wbD", t=5))
    bodies = {"wbC": PAYLOADS["book_appointment"], "wbD": PAYLOADS["book_appointment"]}
    _, d = step(p, listing(list_item("900"), t=200, bodies=bodies), 200)
    assert [(type(e).__name__, e.writeback_id, e.result) for e in d] == [
        ("StatusChecked", "wbC", "ambiguous"),
        ("StatusChecked", "wbD", "ambiguous"),
    ]
    # two items for two identical requests: paired in send order (see the table below)
    _, d = step(p, listing(list_item("901"), list_item("900"), t=200, bodies=bodies), 200)
    assert [(type(e).__name__, e.writeback_id, e.sikka_writeback_id) for e in d] == [
        ("WritebackReconciled", "wbC", "900"),
        ("WritebackReconciled", "wbD", "901"),
    ]
    # an item a failed-outcome_unknown writeback (still watched) could own is not taken either
    p = given(*unknown("wbE", t=0, deadline_s=100), *unknown("wbF", t=5))
    p, _ = step(p, messages.Tick(), 100)
    bodies = {"wbE": PAYLOADS["book_appointment"], "wbF": PAYLOADS["book_appointment"]}
    _, d = step(p, listing(list_item("902"), t=200, bodies=bodies), 200)
    assert {(type(e).__name__, e.result) for e in d} == {("StatusChecked", "ambiguous")}


def _late(wid: str, t: float) -> list[ev.Event]:
    """Unknown (attempt at t + 1), then failed outcome_unknown at t + 100: a late watch."""
    return unknown(wid, t=t, deadline_s=100) + [
        ev.WritebackFailed(at=at(t + 100), writeback_id=wid, code="outcome_unknown", retryable=False)
    ]


def _deferred_then_unknown(wid: str, t: float, resend: float) -> list[ev.Event]:
    """Requested at t, deferred by a 412, sent again at ``resend`` and cut: its attempt is late."""
    return [
        requested(wid, t=t),
        ev.SubmitAttempted(at=at(t + 1), writeback_id=wid, attempt=1),
        ev.WritebackDeferred(at=at(t + 2), writeback_id=wid, reason="spu_offline", retry_at=at(resend - 1)),
        ev.RetryScheduled(at=at(resend - 1), writeback_id=wid),
        ev.SubmitAttempted(at=at(resend), writeback_id=wid, attempt=2),
        ev.OutcomeUnknown(at=at(resend + 30), writeback_id=wid, reason="timeout"),
    ]


def _cut(wid: str, t: float) -> list[ev.Event]:
    """Requested at t, sent at t + 0.1, connection cut at t + 0.2 (after Sikka accepted)."""
    return [
        requested(wid, t=t),
        ev.SubmitAttempted(at=at(t + 0.1), writeback_id=wid, attempt=1),
        ev.OutcomeUnknown(at=at(t + 0.2), writeback_id=wid, reason="connection cut"),
    ]


def _write(sikka_id: str, t: float | None):
    """One of the identical book_appointment writes, as Sikka lists it (accepted at t; None:
    no command_time)."""
    item = list_item(sikka_id)
    when = "" if t is None else at(t).strftime("%Y-%m-%dT%H:%M:%S")
    return oc.WritebackListItem(**{**{f: getattr(item, f) for f in item.__struct_fields__}, "command_time": when})


# (case, given events (interleaved in time), Sikka's items (listed in this order), what each gets)
IDENTICAL_UNKNOWNS = [
    # the property-test failure: w1 cut after Sikka accepted, failed outcome_unknown (late
    # watch); w2, identical, cut after Sikka accepted; one list holds both writes. Request
    # order (unknowns first, then late watches) used to pair w2 with w1's write.
    ("late watch and unknown", _late("w1", 0) + unknown("w2", t=300),
     [_write("1000", 1.1), _write("1001", 301.1)], {"w1": "1000", "w2": "1001"}),
    # both unknown, requested w1 then w2 but w1 was deferred and sent after w2: attempt order
    ("sent out of request order", _deferred_then_unknown("w1", 0, 100) + unknown("w2", t=5),
     [_write("900", 6), _write("901", 100.5)], {"w1": "901", "w2": "900"}),
    # Sikka's command_time, not its id, says which it accepted first
    ("command_time over id", unknown("w1", t=0) + unknown("w2", t=50),
     [_write("1000", 51), _write("1001", 1)], {"w1": "1001", "w2": "1000"}),
    # accepted within the same second: id order breaks the tie
    ("same second", _cut("w1", 0) + _cut("w2", 0.3),
     [_write("901", 0.4), _write("900", 0.15)], {"w1": "900", "w2": "901"}),
    # no command_time at all (or on one of them): id order
    ("no command_time", unknown("w1", t=0) + unknown("w2", t=50),
     [_write("901", None), _write("900", None)], {"w1": "900", "w2": "901"}),
    ("one without command_time", unknown("w1", t=0) + unknown("w2", t=50),
     [_write("901", 51), _write("900", None)], {"w1": "900", "w2": "901"}),
    # two late watches whose attempts began at the same instant (their request order is gone):
    # no faithful pairing, so neither is taken (both stay watched, nothing is proven absent)
    ("attempts indistinguishable", _late("w1", 0) + _late("w2", 0),
     [_write("900", 1), _write("901", 2)], {"w1": "ambiguous", "w2": "ambiguous"}),
    # one write visible for two identical attempts: could be either's
    ("one write for two", unknown("w1", t=0) + unknown("w2", t=50),
     [_write("900", 1)], {"w1": "ambiguous", "w2": "ambiguous"}),
]


@pytest.mark.parametrize("case,given_events,items,owns", IDENTICAL_UNKNOWNS, ids=[c[0] for c in IDENTICAL_UNKNOWNS])
def test_identical_unknowns_pair_in_send_order(case, given_events, items, owns):
    """unknown | reconciliation finds it in GET /writebacks | pending (with *its own* Sikka id)"""
    p = given(*sorted(given_events, key=lambda e: e.at))
    bodies = {w: PAYLOADS["book_appointment"] for w in owns}
    _, d = step(p, listing(*items, t=1000, bodies=bodies), 1000)
    got = {}
    for e in d:
        if isinstance(e, (ev.WritebackReconciled, ev.LateOutcomeFound)):
            got[e.writeback_id] = e.sikka_writeback_id
        elif isinstance(e, ev.StatusChecked):
            got[e.writeback_id] = e.result
        else:
            assert not isinstance(e, (ev.ProvenAbsent, ev.LateWatchEnded)), e
    assert got == owns


def test_claimed_ids_from_final_writebacks_are_remembered():
    p = given(*pending("wbA", op="update_appointment_status", sikka_id="777"))
    p, _ = step(p, listing(list_item("777", "update_appointment_status", result="completed"), t=10), 10)
    assert "777" in p.recent_sikka_ids
    p = given(*unknown("wbB", op="update_appointment_status", t=20), p=p)
    body = PAYLOADS["update_appointment_status"]
    _, d = step(p, listing(list_item("777", "update_appointment_status", result="completed"), t=200, bodies={"wbB": body}), 200)
    assert types(d) == ["ProvenAbsent"]


def test_unknown_past_deadline_fails_outcome_unknown_and_late_find_is_recorded():
    """unknown | deadline passed | failed (outcome_unknown, not retryable); matching goes on 7 days"""
    p = given(*unknown(deadline_s=600))
    p, d = step(p, messages.Tick(), 600)
    assert types(d) == ["WritebackFailed"] and d[0].code == "outcome_unknown" and not d[0].retryable
    assert "wb1" in p.late_watch and "wb1" in p.payloads and p.finished == {"failed": 1}
    assert [t.kind for t in list_targets(p)] == ["late"]
    assert bodies_needed(p) == ["wb1"]
    # later (same day span), a list holds it after all
    late = list_item("4242", result="completed")
    p2, d = step(p, listing(late, t=3000, bodies={"wb1": PAYLOADS["book_appointment"]}), 3000)
    assert types(d) == ["LateOutcomeFound"] and d[0].sikka_writeback_id == "4242" and d[0].result == "completed"
    assert not p2.late_watch and "wb1" not in p2.payloads
    # or nobody finds it: the watch ends after 7 days
    p3, d = step(p, messages.Tick(), 600 + 7 * 86400)
    assert types(d) == ["LateWatchEnded"] and not p3.late_watch


def test_late_watch_proven_absent_ends_the_watch():
    p = given(*unknown(deadline_s=60))
    p, _ = step(p, messages.Tick(), 60)
    _, d = step(p, listing(t=500, bodies={"wb1": PAYLOADS["book_appointment"]}), 500)
    assert types(d) == ["LateWatchEnded"] and d[0].reason == "proven_absent"


# --- pending → … ------------------------------------------------------------------------------


def test_pending_completed_update_is_recorded_from_the_list_alone():
    """pending | Sikka: completed | completed"""
    p = given(*pending(op="update_appointment_status"))
    item = list_item("5001", "update_appointment_status", result="completed", completed_time="2026-03-02T15:01:00")
    p2, d = step(p, listing(item, t=30), 30)
    assert types(d) == ["WritebackCompleted"] and d[0].sikka_completed_time == "2026-03-02T15:01:00"
    assert p2.finished == {"completed": 1}


@pytest.mark.parametrize("op", ["book_appointment", "create_patient"])
def test_pending_completed_create_reads_writeback_status_for_created_id(op):
    """pending | Sikka: completed | completed (created_id)"""
    p = given(*pending(op=op))
    p, d = step(p, listing(list_item("5001", op, result="completed"), t=30), 30)
    assert types(d) == ["StatusChecked"] and d[0].read_status
    assert next_step(p, at(30)) == messages.Poll(writeback_id="wb1", sikka_writeback_id="5001")
    status = oc.WritebackStatus(id="5001", is_completed=True, has_error=False, created_id="A-99", completed_time="x")
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(status)), 31)
    assert types(d) == ["WritebackCompleted"] and d[0].created_id == "A-99"


def test_pending_has_error_fails_not_retryable_with_sikkas_message():
    """pending | Sikka: has_error | failed (retryable: false, Sikka's message)"""
    p = given(*pending())
    status = oc.WritebackStatus(id="5001", is_completed=True, has_error=True, result="Provider not found")
    p2, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(status)), 30)
    assert types(d) == ["WritebackFailed"] and d[0].message == "Provider not found" and not d[0].retryable
    # from the list: without error text a status read comes first
    p = given(*pending(op="update_appointment_status"))
    _, d = step(p, listing(list_item("5001", "update_appointment_status", result="failed"), t=30), 30)
    assert types(d) == ["StatusChecked"] and d[0].read_status
    with_text = list_item("5001", "update_appointment_status", result="failed", description="Invalid status")
    _, d = step(p, listing(with_text, t=30), 30)
    assert types(d) == ["WritebackFailed"] and d[0].message == "Invalid status"


def test_pending_deleted_without_our_asking_fails_retryable():
    """pending | Sikka: deleted that we did not ask for | failed (deleted_at_sikka, retryable)"""
    p = given(*pending())
    p2, d = step(p, listing(list_item("5001", result="deleted"), t=30), 30)
    assert types(d) == ["WritebackFailed"] and d[0].code == "deleted_at_sikka" and d[0].retryable
    assert p2.retryable_failed == ("wb1",)


def test_pending_status_404_stays_pending_and_is_checked_against_the_list():
    """pending | writeback_status answers 404 | stays pending; the id is checked against GET /writebacks"""
    p = given(*pending())
    p, _ = step(p, listing(list_item("5001", result="completed"), t=30), 30)  # created_id wanted
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=result(oc.Rejected(status=404))), 31)
    assert types(d) == ["StatusChecked"] and d[0].result == "status_404"
    wb = p.writebacks["wb1"]
    assert wb.state == "pending" and not wb.status_read_due
    assert [t.writeback_id for t in list_targets(p)] == ["wb1"]
    # the list says completed again: recorded without created_id rather than looping on 404s
    p, d = step(p, listing(list_item("5001", result="completed"), t=40), 40)
    assert types(d) == ["WritebackCompleted"] and d[0].created_id is None


def test_pending_list_pending_records_a_check_only_when_due():
    p = given(*pending())  # next check at 4 s
    _, d = step(p, listing(list_item("5001"), t=1.5), 1.5)
    assert d == []  # a check 2.5 s early is not taken (slack: one gap, here 2 s)
    _, d = step(p, listing(list_item("5001"), t=2.5), 2.5)
    assert types(d) == ["CheckNoted"] and d[0].next_check_at == at(4.5)  # 1.5 s early: taken
    p2, d = step(p, listing(list_item("5001"), t=4), 4)
    assert types(d) == ["CheckNoted"] and d[0].next_check_at == at(6)  # still pending: noted, not recorded
    assert p2.writebacks["wb1"].checks == 1


# --- deferred → queued ------------------------------------------------------------------------


def test_deferred_requeued_when_backoff_elapsed():
    """deferred | backoff elapsed | queued | retry scheduled"""
    p = given(*submitting())
    p, _ = step(p, messages.SubmitOutcome(writeback_id="wb1", result=result(oc.RateLimited(reset_s=10))), 2)
    assert decide(p, messages.Tick(), at(12)) == []
    s = next_step(p, at(12))
    assert isinstance(s, messages.Sleep) and s.until == at(13)
    s = next_step(p, at(13))
    assert isinstance(s, messages.Record) and types(list(s.events)) == ["RetryScheduled"]
    p = fold(p, s.events)
    assert p.writebacks["wb1"].state == "queued"
    assert isinstance(next_step(p, at(13)), messages.Submit)


# --- deadlines --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["queued", "deferred"])
def test_queued_or_deferred_past_deadline_fails_retryable(state):
    """queued/deferred | deadline passed | failed (deadline_exceeded, retryable: true)"""
    events = [requested(deadline_s=100)]
    if state == "deferred":
        events += [
            ev.SubmitAttempted(at=at(1), writeback_id="wb1", attempt=1),
            ev.WritebackDeferred(at=at(2), writeback_id="wb1", reason="spu_offline", retry_at=at(500)),
        ]
    p = given(*events)
    assert decide(p, messages.Tick(), at(99)) == []
    p2, d = step(p, messages.Tick(), 100)
    assert types(d) == ["WritebackFailed"] and d[0].code == "deadline_exceeded" and d[0].retryable
    assert p2.retryable_failed == ("wb1",)


def test_deadline_runs_while_paused():
    p = given(requested(deadline_s=100), ev.PracticePaused(at=at(1)))
    s = next_step(p, at(100))
    assert isinstance(s, messages.Record) and s.events[0].code == "deadline_exceeded"


def _cancel_flow(p, t):
    s = next_step(p, at(t))
    assert s == messages.Cancel(writeback_id="wb1", sikka_writeback_id="5001", attempt=1)
    p, d = step(p, messages.DeleteOutcome(writeback_id="wb1", result=ok()), t + 1)
    assert types(d) == ["DeleteAnswered"]
    assert next_step(p, at(t + 1)) == messages.Poll(writeback_id="wb1", sikka_writeback_id="5001")
    return p


def test_pending_past_deadline_is_deleted_then_a_status_read_decides():
    """pending | deadline passed | DELETE, then a status read: deleted → failed (deadline_exceeded)"""
    p = given(*pending(deadline_s=600))
    s = next_step(p, at(600))
    assert isinstance(s, messages.Record) and s.events == (ev.CancelRequested(at=at(600), writeback_id="wb1", reason="deadline"),)
    p = _cancel_flow(fold(p, s.events), 600)
    deleted = oc.WritebackStatus(id="5001", is_completed=False, has_error=False, status="Deleted")
    p2, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(deleted)), 602)
    assert types(d) == ["WritebackFailed"] and d[0].code == "deadline_exceeded" and d[0].retryable


def test_pending_past_deadline_that_completed_meanwhile_keeps_its_real_outcome():
    """pending | deadline passed | … done → its real outcome"""
    p = given(*pending(deadline_s=600))
    p = fold(p, next_step(p, at(600)).events)
    p, d = step(p, messages.DeleteOutcome(writeback_id="wb1", result=result(oc.Rejected(status=400, code="API4007"))), 601)
    assert types(d) == ["DeleteAnswered"] and not d[0].deleted
    done = oc.WritebackStatus(id="5001", is_completed=True, has_error=False, created_id="A-1")
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(done)), 602)
    assert types(d) == ["WritebackCompleted"] and d[0].created_id == "A-1"


def test_pending_cancel_deletes_then_cancelled():
    """pending | cancel | DELETE at Sikka, then a status read: deleted → cancelled"""
    p = given(*pending())
    p, d = step(p, messages.CancelWriteback(writeback_id="wb1"), 10)
    assert types(d) == ["CancelRequested"]
    assert decide(p, messages.CancelWriteback(writeback_id="wb1"), at(10)) == []  # idempotent
    p = _cancel_flow(p, 10)
    deleted = oc.WritebackStatus(id="5001", is_completed=False, has_error=False, result="Writeback deleted")
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(deleted)), 12)
    assert types(d) == ["WritebackCancelled"] and p.finished == {"cancelled": 1}


def test_pending_cancel_decided_by_the_list_too():
    p = given(*pending())
    p, _ = step(p, messages.CancelWriteback(writeback_id="wb1"), 10)
    _, d = step(p, listing(list_item("5001", result="deleted"), t=11), 11)
    assert types(d) == ["WritebackCancelled"]


def test_failed_delete_stays_pending_retried_with_backoff_alert_after_5():
    """pending | DELETE fails or times out | stays pending; retried with backoff, alerting after 5 tries"""
    p = given(*pending())
    p, _ = step(p, messages.CancelWriteback(writeback_id="wb1"), 10)
    t = 10.0
    gaps = []
    for n in range(1, 7):
        s = next_step(p, at(t))
        assert isinstance(s, messages.Cancel) and s.attempt == n
        p, d = step(p, messages.DeleteOutcome(writeback_id="wb1", result=result(oc.ServerError(status=503))), t)
        assert types(d) == ["DeleteFailed"] and d[0].attempt == n
        assert p.writebacks["wb1"].state == "pending"
        gap = (d[0].retry_at - at(t)).total_seconds()
        gaps.append(gap)
        s = next_step(p, at(t + gap - 0.5))
        assert not isinstance(s, messages.Cancel)
        kinds = [a.message for a in practice_alerts(p, at(t)) if a.writeback_id == "wb1" and "DELETE" in a.message]
        assert bool(kinds) == (n >= 5)
        t += gap
    assert gaps == [5, 10, 20, 40, 80, 160]
    assert p.writebacks["wb1"].delete_attempts == 6


@pytest.mark.parametrize("state", ["queued", "deferred"])
def test_queued_or_deferred_cancel_is_cancelled(state):
    """queued/deferred | cancel | cancelled"""
    events = [requested()]
    if state == "deferred":
        events += [
            ev.SubmitAttempted(at=at(1), writeback_id="wb1", attempt=1),
            ev.WritebackDeferred(at=at(2), writeback_id="wb1", reason="spu_offline", retry_at=at(500)),
        ]
    p, d = step(given(*events), messages.CancelWriteback(writeback_id="wb1"), 3)
    assert types(d) == ["WritebackCancelled"] and p.finished == {"cancelled": 1}


def test_cancel_of_unknown_takes_effect_once_the_outcome_is_known():
    """unknown → the cancel is recorded and takes effect once the outcome is known"""
    p = given(*unknown())
    p, d = step(p, messages.CancelWriteback(writeback_id="wb1"), 40)
    assert types(d) == ["CancelRequested"] and p.writebacks["wb1"].state == "unknown"
    bodies = {"wb1": PAYLOADS["book_appointment"]}
    # absent → cancelled (never re-sent)
    _, d = step(p, listing(t=200, bodies=bodies), 200)
    assert types(d) == ["ProvenAbsent", "WritebackCancelled"]
    # found → pending with the cancel pending: DELETE follows
    p2, d = step(p, listing(list_item("777"), t=200, bodies=bodies), 200)
    assert types(d) == ["WritebackReconciled"]
    assert next_step(p2, at(200)) == messages.Cancel(writeback_id="wb1", sikka_writeback_id="777", attempt=1)


@pytest.mark.parametrize("final", ["completed", "failed", "cancelled"])
def test_cancel_refused_while_submitting_and_for_final(final):
    """submitting and final states → 409 not_cancellable (final ones are not in the actor)"""
    p = given(*submitting())
    assert decide(p, messages.CancelWriteback(writeback_id="wb1"), at(2)).code == "not_cancellable"
    finish = {
        "completed": ev.WritebackCompleted(at=at(3), writeback_id="wb1"),
        "failed": ev.WritebackFailed(at=at(3), writeback_id="wb1", code="x"),
        "cancelled": ev.WritebackCancelled(at=at(3), writeback_id="wb1"),
    }[final]
    p = given(*pending(), finish)
    assert decide(p, messages.CancelWriteback(writeback_id="wb1"), at(4)).code == "unknown_writeback"


# --- the whole table at a glance: (row, given, when at t, then event types, then state) -------

_BOOK = PAYLOADS["book_appointment"]
_NOTE = oc.WritebackStatus


def _deferred(reason="spu_offline", retry=100.0):
    return submitting() + [ev.WritebackDeferred(at=at(2), writeback_id="wb1", reason=reason, retry_at=at(retry))]


TABLE = [
    ("requested", [], messages.RequestWriteback(writeback_id="wb1", operation="book_appointment"), 0,
     ["WritebackRequested"], "queued"),
    ("ack", submitting(), messages.SubmitOutcome(writeback_id="wb1", result=ack()), 3, ["WritebackSubmitted"], "pending"),
    ("key refused", submitting(), messages.SubmitOutcome(writeback_id="wb1", result=result(oc.ExpiredKey())), 3,
     ["SubmitRefused"], "queued"),
    ("rejected", submitting(), messages.SubmitOutcome(writeback_id="wb1", result=result(oc.Rejected(status=400, code="API1026"))), 3,
     ["WritebackRejected"], "failed"),
    ("429", submitting(), messages.SubmitOutcome(writeback_id="wb1", result=result(oc.RateLimited(reset_s=5))), 3,
     ["WritebackDeferred"], "deferred"),
    ("412", submitting(), messages.SubmitOutcome(writeback_id="wb1", result=result(oc.SpuOffline())), 3,
     ["WritebackDeferred"], "deferred"),
    ("quota", submitting(), messages.SubmitOutcome(writeback_id="wb1", result=result(oc.DailyQuota())), 3,
     ["WritebackDeferred"], "deferred"),
    ("5xx", submitting(), messages.SubmitOutcome(writeback_id="wb1", result=result(oc.ServerError(status=502))), 3,
     ["OutcomeUnknown"], "unknown"),
    ("timeout", submitting(), messages.SubmitOutcome(writeback_id="wb1", result=result(oc.Unknown(reason="timeout"))), 3,
     ["OutcomeUnknown"], "unknown"),
    ("reconciled", unknown(), listing(list_item("9"), t=40, bodies={"wb1": _BOOK}), 40, ["WritebackReconciled"], "pending"),
    ("proven absent", unknown(), listing(t=91, bodies={"wb1": _BOOK}), 91, ["ProvenAbsent"], "queued"),
    ("not yet provable", unknown(), listing(t=60, bodies={"wb1": _BOOK}), 60, ["StatusChecked"], "unknown"),
    ("ambiguous", unknown(), listing(list_item("9"), list_item("8"), t=99, bodies={"wb1": _BOOK}), 99,
     ["StatusChecked"], "unknown"),
    ("unknown deadline", unknown(deadline_s=500), messages.Tick(), 500, ["WritebackFailed"], "failed"),
    ("completed (list)", pending(op="update_appointment_status"),
     listing(list_item("5001", "update_appointment_status", result="completed"), t=9), 9, ["WritebackCompleted"], "completed"),
    ("completed (status)", pending(), messages.StatusOutcome(writeback_id="wb1", result=ok(_NOTE(id="5001", is_completed=True, has_error=False, created_id="7"))), 9,
     ["WritebackCompleted"], "completed"),
    ("has_error", pending(), messages.StatusOutcome(writeback_id="wb1", result=ok(_NOTE(id="5001", is_completed=True, has_error=True, result="bad"))), 9,
     ["WritebackFailed"], "failed"),
    ("deleted unasked", pending(), listing(list_item("5001", result="deleted"), t=9), 9, ["WritebackFailed"], "failed"),
    ("status 404", pending(), messages.StatusOutcome(writeback_id="wb1", result=result(oc.Rejected(status=404))), 9,
     ["StatusChecked"], "pending"),
    ("backoff elapsed", _deferred(), messages.Tick(), 100, ["RetryScheduled"], "queued"),
    ("queued deadline", [requested(deadline_s=50)], messages.Tick(), 50, ["WritebackFailed"], "failed"),
    ("deferred deadline", _deferred(retry=9999) , messages.Tick(), 21600, ["WritebackFailed"], "failed"),
    ("pending deadline", pending(deadline_s=50), messages.Tick(), 50, ["CancelRequested"], "pending"),
    ("pending cancel", pending(), messages.CancelWriteback(writeback_id="wb1"), 9, ["CancelRequested"], "pending"),
    ("DELETE ok", pending() + [ev.CancelRequested(at=at(5), writeback_id="wb1")],
     messages.DeleteOutcome(writeback_id="wb1", result=ok()), 9, ["DeleteAnswered"], "pending"),
    ("DELETE failed", pending() + [ev.CancelRequested(at=at(5), writeback_id="wb1")],
     messages.DeleteOutcome(writeback_id="wb1", result=result(oc.TransportFailure(kind="timeout"))), 9, ["DeleteFailed"], "pending"),
    ("cancelled after DELETE", pending() + [ev.CancelRequested(at=at(5), writeback_id="wb1"), ev.DeleteAnswered(at=at(6), writeback_id="wb1")],
     messages.StatusOutcome(writeback_id="wb1", result=ok(_NOTE(id="5001", is_completed=False, has_error=False, status="Deleted"))), 9,
     ["WritebackCancelled"], "cancelled"),
    ("queued cancel", [requested()], messages.CancelWriteback(writeback_id="wb1"), 9, ["WritebackCancelled"], "cancelled"),
    ("deferred cancel", _deferred(), messages.CancelWriteback(writeback_id="wb1"), 9, ["WritebackCancelled"], "cancelled"),
]


@pytest.mark.parametrize("row,given_events,when,t,then,state", TABLE, ids=[r[0] for r in TABLE])
def test_state_table(row, given_events, when, t, then, state):
    p = given(*given_events)
    d = decide(p, when, at(t))
    assert types(d) == then
    p2 = fold(p, d)
    wb = p2.writebacks.get("wb1")
    if state in ("completed", "failed", "cancelled"):
        assert wb is None and p2.finished.get(state) == 1
    else:
        assert wb is not None and wb.state == state
