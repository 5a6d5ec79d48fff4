"""Late duplicates (``actors.core.duplicates``): the original attempt of a writeback re-sent after
a proof of absence lands late (a proxy held it past the proof window). Pure, on T0's clock.

The story every test starts from: wb1's first POST (attempt 1, at 1 s) got no answer; a list
fetched after the proof window (attempt + 30 s HTTP timeout + 30 s lease TTL + 30 s grace) does
not hold it, so it is proven absent and sent again (attempt 2), which Sikka acknowledges as 6002.
"""

from __future__ import annotations

from datetime import timedelta

from actors.core import alerting, messages, policy
from actors.core import events as ev
from actors.core import outcomes as oc
from actors.core.policy import CoreSettings
from actors.core.schedule import bodies_needed, list_targets, next_step
from actors.core.state import fold
from tests.support.core import PAYLOADS, T0, ack, at, given, list_item, listing, ok, result, step, types, unknown

BODY = {"wb1": PAYLOADS["book_appointment"]}
LATE = at(120)  # when the held original reaches Sikka


def resent_pending(t: float = 100):
    p = given(*unknown())
    p, d = step(p, listing(t=t, bodies=BODY), t)
    assert types(d) == ["ProvenAbsent"]
    p = fold(p, [ev.SubmitAttempted(at=at(t + 1), writeback_id="wb1", attempt=2)])
    p, d = step(p, messages.SubmitOutcome(writeback_id="wb1", result=ack("6002")), t + 2)
    assert types(d) == ["WritebackSubmitted"]
    return p


def both(original: str, again: str = "pending", t: float = 130):
    """A list holding the re-send (6002) and the late original (6001)."""
    return listing(
        list_item("6002", result=again, when=at(101)), list_item("6001", result=original, when=LATE), t=t, bodies=BODY
    )


def test_a_proof_of_absence_starts_a_watch_over_the_attempt_it_proved_absent():
    p = resent_pending()
    (watch,) = p.resent_watch.values()
    assert (watch.writeback_id, watch.attempt, watch.attempted_at) == ("wb1", 1, at(1))
    assert "wb1" in p.payloads  # kept for matching
    assert [t.writeback_id for t in list_targets(p) if t.kind == "late"] == ["wb1/1"]
    assert "wb1" in bodies_needed(p)


def test_while_the_re_send_is_not_known_nothing_is_matched():
    """Before the re-send's own record is known, an item like the original could be the re-send
    itself: the watch waits (no list target, no match), and the writeback's reconciliation sees
    two candidates instead of taking the wrong one."""
    p = given(*unknown())
    p, _ = step(p, listing(t=100, bodies=BODY), 100)
    p = fold(p, [ev.SubmitAttempted(at=at(101), writeback_id="wb1", attempt=2),
                 ev.OutcomeUnknown(at=at(131), writeback_id="wb1", reason="timeout")])
    assert [t for t in list_targets(p) if t.writeback_id == "wb1/1"] == []
    _, d = step(p, both("pending", t=140), 140)
    assert not [e for e in d if type(e).__name__.startswith("Duplicate")]


def test_a_late_original_still_pending_is_deleted_at_sikka():
    p = resent_pending()
    p, d = step(p, both("pending"), 130)
    found = [e for e in d if isinstance(e, ev.DuplicateFound)]
    assert [(e.sikka_writeback_id, e.result, e.attempt) for e in found] == [("6001", "pending", 1)]
    s = next_step(p, at(131))
    assert s == messages.Cancel(writeback_id="wb1/1", sikka_writeback_id="6001", attempt=1)
    p, d = step(p, messages.DeleteOutcome(writeback_id="wb1/1", result=result(oc.Ok(None), status=200)), 132)
    assert types(d) == ["DuplicateDeleteTried"] and d[0].retry_at is None
    assert not isinstance(next_step(p, at(133)), messages.Cancel)  # the list tells what became of it
    p, d = step(p, both("deleted", t=140), 140)
    settled = [e for e in d if isinstance(e, ev.DuplicateSettled)]
    assert [(e.outcome, e.sikka_writeback_id, e.kept_sikka_writeback_id) for e in settled] == [("deleted", "6001", "6002")]
    assert p.resent_watch == {} and p.duplicates == ()
    assert "6001" in p.recent_sikka_ids  # never matched to another writeback


def test_a_failed_delete_is_retried_with_backoff():
    p = resent_pending()
    p, _ = step(p, both("pending"), 130)
    p, d = step(p, messages.DeleteOutcome(writeback_id="wb1/1", result=result(oc.TransportFailure("timeout"))), 131)
    assert types(d) == ["DuplicateDeleteTried"] and d[0].retry_at == at(131 + policy.delete_backoff(1))
    assert isinstance(next_step(p, at(132)), messages.Sleep)
    assert next_step(p, at(131 + policy.delete_backoff(1))).attempt == 2


def test_a_late_original_already_written_records_both_ids_and_alerts():
    p = resent_pending()
    p, d = step(p, both("completed", again="completed"), 130)
    settled = [e for e in d if isinstance(e, ev.DuplicateSettled)]
    assert [(e.outcome, e.sikka_writeback_id, e.kept_sikka_writeback_id) for e in settled] == [("written", "6001", "6002")]
    alerts = [a for a in alerting.practice_alerts(p, at(140)) if a.kind == "writeback_duplicate"]
    assert len(alerts) == 1 and alerts[0].severity == "critical" and alerts[0].writeback_id == "wb1"
    assert "6001" in alerts[0].message and "6002" in alerts[0].message
    later = T0 + alerting.DUPLICATE_ALERT_FOR + timedelta(minutes=5)
    assert not [a for a in alerting.practice_alerts(p, later) if a.kind == "writeback_duplicate"]


def test_the_watch_goes_on_after_the_writeback_completed_with_its_payload_kept():
    p = resent_pending()
    p, _ = step(p, listing(list_item("6002", result="completed", when=at(101)), t=130, bodies=BODY), 130)
    done = oc.WritebackStatus(id="6002", is_completed=True, has_error=False, result="completed", created_id="77")
    p, _ = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(done)), 131)
    assert "wb1" not in p.writebacks and "wb1" in p.payloads  # final, yet still watched
    (watch,) = p.resent_watch.values()
    assert watch.kept_sikka_writeback_id == "6002"
    p, d = step(p, both("completed", again="completed", t=400), 400)
    assert [e.outcome for e in d if isinstance(e, ev.DuplicateSettled)] == ["written"]
    assert "wb1" not in p.payloads  # nothing needs it any more


def test_not_found_is_checked_again_quickly_at_first_then_every_15_minutes():
    p = resent_pending()
    p, d = step(p, listing(list_item("6002", when=at(101)), t=130, bodies=BODY), 130)
    checks = [e for e in d if isinstance(e, ev.StatusChecked) and e.writeback_id == "wb1/1"]
    assert len(checks) == 1 and checks[0].result == "not_found"
    assert checks[0].next_check_at - at(130) <= timedelta(seconds=policy.POLL_CAP_S)
    hour = 100 + 3600 + 10
    p, d = step(p, listing(list_item("6002", when=at(101)), t=hour, bodies=BODY), hour)
    (check,) = [e for e in d if isinstance(e, ev.StatusChecked) and e.writeback_id == "wb1/1"]
    assert check.next_check_at == at(hour) + timedelta(seconds=policy.LATE_WATCH_CHECK_S)


def test_the_watch_ends_after_7_days():
    p = resent_pending()
    end = 100 + policy.LATE_WATCH_S
    s = next_step(p, at(end), jitter=0.0)
    assert isinstance(s, messages.Record)
    assert [(e.outcome, e.attempt) for e in s.events if isinstance(e, ev.DuplicateSettled)] == [("expired", 1)]


def test_the_proof_window_includes_the_absence_grace():
    strict = CoreSettings(absence_grace=0)
    assert policy.proof_at(at(1), strict) == at(61)
    assert policy.proof_at(at(1)) == at(91)
