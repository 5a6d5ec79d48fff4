"""A writeback's timeline (pure): every event of it, the state after each by the production fold,
the Sikka calls it records, and never its payload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.api.console.timeline import sikka_calls, timeline
from actors.core import events as ev
from store.eventlog import RecordedEvent

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
WID = "6f1c1d5e-3f43-4c55-9a4c-1f2b0c9d8e7a"


def recorded(events: list[ev.Event]) -> list[RecordedEvent]:
    return [RecordedEvent(position=10 + i, stream_id="practice-D1", version=i + 1, event=e, recorded_at=e.at)
            for i, e in enumerate(events)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


STORY = [
    ev.WritebackRequested(at=at(0), writeback_id=WID, operation="book_appointment", deadline_at=at(3600),
                          payload="gAAAAAsealed-patient-data", payload_digest="digest-of-patient-data",
                          idempotency_key="booking-7"),
    ev.SubmitAttempted(at=at(1), writeback_id=WID, attempt=1),
    ev.OutcomeUnknown(at=at(31), writeback_id=WID, reason="read_timeout", next_check_at=at(90)),
    ev.StatusChecked(at=at(90), writeback_id=WID, result="not_found", next_check_at=at(150)),
    ev.WritebackReconciled(at=at(150), writeback_id=WID, sikka_writeback_id="240891", next_check_at=at(152)),
    ev.CancelRequested(at=at(151), writeback_id=WID),
    ev.DeleteFailed(at=at(152), writeback_id=WID, code="http_503", attempt=1, retry_at=at(160)),
    ev.DeleteAnswered(at=at(160), writeback_id=WID, deleted=False, code="API4001"),
    ev.WritebackCompleted(at=at(170), writeback_id=WID, created_id="50100", sikka_completed_time="2026-03-10 09:02:49"),
    ev.PayloadPurged(at=at(9000), writeback_id=WID),
]


def test_each_event_is_a_step_with_the_state_after_it():
    steps = timeline("D1", recorded(STORY))
    assert [s.type for s in steps] == [ev.type_name(e) for e in STORY]
    assert [s.state for s in steps] == [
        "queued", "submitting", "unknown", "unknown", "pending", "pending", "pending", "pending", "completed",
        "completed",  # a final writeback absorbs what follows
    ]
    assert [s.position for s in steps] == list(range(10, 20))
    assert steps[0].title == "Requested" and steps[-2].title == "Completed"
    assert [s.trouble for s in steps][:4] == [False, False, True, False]


def test_the_details_carry_sikkas_ids_and_errors_never_the_payload():
    steps = timeline("D1", recorded(STORY))
    requested = dict(steps[0].details)
    assert requested == {"operation": "book_appointment", "deadline_at": at(3600), "idempotency_key": "booking-7"}
    assert dict(steps[4].details)["sikka_writeback_id"] == "240891"
    assert dict(steps[6].details) == {"code": "http_503", "attempt": 1, "retry_at": at(160)}
    assert dict(steps[7].details) == {"deleted": "no", "code": "API4001"}
    assert dict(steps[8].details)["created_id"] == "50100"
    shown = repr([s.details for s in steps])
    assert "sealed-patient-data" not in shown and "digest-of-patient-data" not in shown and WID not in shown


def test_the_sikka_calls_made_for_it_are_counted_from_the_events():
    steps = timeline("D1", recorded(STORY))
    assert [s.call[0] if s.call else None for s in steps] == [
        None, "submit", None, "status check", "list", None, "delete", "delete", None, None,
    ]
    assert sikka_calls(steps) == {"submit": 1, "status check": 1, "list": 1, "delete": 2}


def test_no_events_no_steps():
    assert timeline("D1", []) == [] and sikka_calls([]) == {"submit": 0, "status check": 0, "list": 0, "delete": 0}
