"""Which status checks the log records (``actors.core.checks``): only those that change something,
the first after a process took the writeback up, and one per ``CHECK_RECORD_INTERVAL_S`` of a long
wait; the rest are noted (folded, never stored) and counted in the next recorded event. Replay
of the thinned history still tells how many checks were made and when the last recorded one was."""

from __future__ import annotations

from actors.core import events as ev
from actors.core import messages
from actors.core import outcomes as oc
from actors.core.checks import loaded, record_checks
from actors.core.policy import CHECK_RECORD_INTERVAL_S
from actors.core.schedule import next_step
from actors.core.state import evolve_writeback
from tests.support.core import (
    OFFICE, PAYLOADS, at, given, list_item, listing, ok, pending, result, step, types, unknown,
)

STATUS_DONE = oc.WritebackStatus(id="5001", is_completed=True, has_error=False, created_id="C9")


def run(p, rounds):
    """Apply list rounds ``[(t, result)]``; return the practice and every decided event."""
    log = []
    for t, res in rounds:
        p, d = step(p, listing(list_item("5001", result=res), t=t), t)
        log += d
    return p, log


def test_a_booking_confirmed_after_many_rounds_leaves_five_events_and_counts_every_check():
    requested_to_submitted = pending()  # requested, submit attempted, submitted
    p, log = run(given(*requested_to_submitted), [(4, "pending"), (6, "pending"), (8, "pending"), (10, "completed")])
    assert types(log) == ["CheckNoted", "CheckNoted", "CheckNoted", "StatusChecked"]
    assert log[-1].read_status and log[-1].checks == 4  # the three noted ones reach the log with it
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(STATUS_DONE)), 11)
    assert types(d) == ["WritebackCompleted"] and d[0].checks == 4
    stored = requested_to_submitted + [e for e in log + d if ev.recorded(e)]
    assert len(stored) == 5
    assert "wb1" not in given(*stored).writebacks and "wb1" not in p.writebacks  # final in both


def test_a_changed_result_is_recorded_and_a_repeated_one_noted():
    p = given(*pending())
    p, d = step(p, listing(t=4), 4)  # a complete list without it: missing (a change)
    assert types(d) == ["StatusChecked"] and d[0].result == "missing" and d[0].checks == 1
    p, d = step(p, listing(t=6), 6)
    assert types(d) == ["CheckNoted"]  # missing again
    p, d = step(p, listing(list_item("5001"), t=8), 8)
    assert types(d) == ["StatusChecked"] and d[0].result == "pending" and d[0].checks == 3  # found again


def test_an_error_streak_is_recorded_once():
    p = given(*pending())
    p, d = step(p, listing(t=4, failed=True, complete=False), 4)
    assert types(d) == ["StatusChecked"] and d[0].result == "error"
    p, d = step(p, listing(t=14, failed=True, complete=False), 14)
    assert types(d) == ["CheckNoted"]
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=result(oc.ServerError(503))), 24)
    assert types(d) == ["CheckNoted"]  # a failed status read continues the streak
    p, d = step(p, listing(list_item("5001"), t=34), 34)
    assert types(d) == ["StatusChecked"] and d[0].result == "pending" and d[0].checks == 4


def test_a_long_wait_is_recorded_once_per_interval():
    p = given(*pending())
    t, recorded = 4.0, []
    while t < 3 * CHECK_RECORD_INTERVAL_S:
        p, d = step(p, listing(list_item("5001"), t=t), t)
        recorded += [e for e in d if ev.recorded(e)]
        t = (p.writebacks["wb1"].next_check_at - at(0)).total_seconds()
    assert len(recorded) == 2  # at least ten minutes apart, each carrying the count so far
    assert (recorded[1].at - recorded[0].at).total_seconds() >= CHECK_RECORD_INTERVAL_S
    assert recorded[-1].checks < p.writebacks["wb1"].checks


def test_a_process_that_takes_a_writeback_up_records_its_first_check():
    p = given(*pending())
    p, d = step(p, listing(list_item("5001"), t=4), 4)
    assert types(d) == ["CheckNoted"]  # the process that sent it knows
    taken_up = loaded(given(*pending()))  # another process (a restart, a takeover) reads the log
    _, d = step(taken_up, listing(list_item("5001"), t=4), 4)
    assert types(d) == ["StatusChecked"]


def test_unknown_not_found_again_is_noted_and_a_turn_to_ambiguous_recorded():
    p = given(*unknown())  # unknown since 31 s, first check at 36 s
    bodies = {"wb1": PAYLOADS["book_appointment"]}
    p, d = step(p, listing(t=40, bodies=bodies), 40)
    assert types(d) == ["StatusChecked"] and d[0].result == "not_found"
    p, d = step(p, listing(t=50, bodies=bodies), 50)
    assert types(d) == ["CheckNoted"] and d[0].result == "not_found"
    twins = listing(list_item("7001", when=at(1)), list_item("7002", when=at(1)), t=60, bodies=bodies)
    p, d = step(p, twins, 60)
    assert types(d) == ["StatusChecked"] and d[0].result == "ambiguous" and d[0].checks == 3


def test_a_status_read_the_planner_chose_goes_out_once_and_its_quiet_answer_is_noted():
    p = given(*pending())
    p, d = step(p, messages.CheckByStatus(writeback_ids=("wb1", "nope")), 4)
    assert types(d) == ["StatusReadPlanned"] and not any(ev.recorded(e) for e in d)
    assert p.updated_at == at(2)  # a transient event does not touch the practice's recorded time
    assert step(p, messages.CheckByStatus(writeback_ids=("wb1",)), 4)[1] == []  # already planned
    s = next_step(p, at(4))
    assert isinstance(s, messages.Poll) and s.writeback_id == "wb1"
    pending_now = oc.WritebackStatus(id="5001", is_completed=False, has_error=False)
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(pending_now)), 4.2)
    assert types(d) == ["CheckNoted"] and p.writebacks["wb1"].checks == 1
    assert not p.writebacks["wb1"].status_check_planned and not isinstance(next_step(p, at(4.2)), messages.Poll)
    p, d = step(p, messages.CheckByStatus(writeback_ids=("wb1",)), 6.2)
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(STATUS_DONE)), 6.4)
    assert types(d) == ["WritebackCompleted"] and d[0].created_id == "C9"
    assert d[0].checks == 2  # the quiet read and the one that found it done: both planned checks


def test_a_writeback_proven_absent_then_rejected_carries_its_checks_to_the_log():
    """Regression (found by the state-machine property): an outcome-unknown writeback checked
    twice (the second noted), proven absent, sent again and refused: its rejection carries the
    count, so the log's replay ends it with both checks as the actor did."""
    p = given(*unknown())  # unknown since 31 s, first check at 36 s
    bodies = {"wb1": PAYLOADS["book_appointment"]}
    p, first = step(p, listing(t=40, bodies=bodies), 40)
    p, second = step(p, listing(t=50, bodies=bodies), 50)
    assert types(first + second) == ["StatusChecked", "CheckNoted"] and p.writebacks["wb1"].checks == 2
    resent = [ev.ProvenAbsent(at=at(60), writeback_id="wb1"), ev.SubmitAttempted(at=at(61), writeback_id="wb1",
                                                                                attempt=2)]
    p = given(*resent, p=p)
    [rejected] = record_checks(p, [ev.WritebackRejected(at=at(62), writeback_id="wb1", code="invalid_input")])
    assert rejected.checks == 2
    replayed = None
    for e in [*unknown(), *first, *resent, rejected]:  # the recorded log: the noted check is not in it
        replayed = evolve_writeback(replayed, e, OFFICE)
    assert replayed.state == "failed" and replayed.checks == 2


def test_a_planned_status_read_that_finds_the_writeback_done_counts_as_its_check():
    """Regression (``checks`` 0 for a booking confirmed by its first check, a status read the
    planner chose: the admin API's writeback showed no check at all)."""
    p = given(*pending())
    p, _ = step(p, messages.CheckByStatus(writeback_ids=("wb1",)), 4)
    p, d = step(p, messages.StatusOutcome(writeback_id="wb1", result=ok(STATUS_DONE)), 4.2)
    assert types(d) == ["WritebackCompleted"] and d[0].checks == 1
    _, d = step(given(*pending()), messages.StatusOutcome(writeback_id="wb1", result=ok(STATUS_DONE)), 4.2)
    assert types(d) == ["WritebackCompleted"] and d[0].checks == 0  # a read for created_id alone is no check
