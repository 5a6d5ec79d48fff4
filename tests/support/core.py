"""Shared builders for the pure-core tests (no trio, no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from actors.core import messages
from actors.core.decide import decide
from actors.core import events as ev
from actors.core import outcomes as oc
from actors.core.state import Practice, empty, fold
from msgspec.structs import replace

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday afternoon, UTC
OFFICE = "D1111"

PAYLOADS = {
    "book_appointment": {
        "patient_id": "17",
        "date": "2026-03-10",
        "time": "09:30",
        "length": "30",
        "provider_id": "DOC1",
        "operatory": "OP1",
        "practice_id": "1",
    },
    "update_appointment_status": {"appointment_sr_no": "374", "practice_id": "1-1", "value": "Confirmed"},
    "create_patient": {"firstname": "Ann", "lastname": "Lee", "provider_id": "DOC1", "practice_id": "1"},
    "reschedule_appointment": {"appointment_sr_no": "375", "practice_id": "1", "time": "10:00"},
    "update_patient": {"patient_id": "18", "practice_id": "1", "cell": "5551234"},
    "add_medical_note": {
        "date": "2026-03-02",
        "patient_id": "17",
        "type": "General",
        "text": "note",
        "provider_id": "DOC1",
        "practice_id": "1",
    },
}


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def result(outcome, **kw) -> oc.Result:
    return oc.Result(outcome=outcome, **kw)


def ok(value=None) -> oc.Result:
    return oc.Result(outcome=oc.Ok(value), status=200)


def ack(sikka_id: str = "5001") -> oc.Result:
    return ok(oc.WritebackAck(sikka_writeback_id=sikka_id, code="API2016"))


def base(*, token: bool = True, time_zone: str | None = "Eastern Standard Time") -> Practice:
    """A registered practice with a fresh 24 h key issued an hour before T0."""
    events = [ev.PracticeRegistered(at=at(-7200), office_id=OFFICE, practice_name="Smile", time_zone=time_zone)]
    if token:
        events.append(ev.TokenRefreshed(at=at(-3600), expires_at=at(-3600 + 86400), grant="request_key"))
    return fold(empty(OFFICE), events)


def requested(wid: str = "wb1", op: str = "book_appointment", t: float = 0, deadline_s: float = 21600, **kw):
    return ev.WritebackRequested(
        at=at(t), writeback_id=wid, operation=op, payload=f"enc:{wid}", deadline_at=at(t + deadline_s), **kw
    )


def given(*events, p: Practice | None = None) -> Practice:
    return fold(p if p is not None else base(), events)


def submitting(wid="wb1", op="book_appointment", t=0.0, **kw) -> list[ev.Event]:
    return [requested(wid, op, t, **kw), ev.SubmitAttempted(at=at(t + 1), writeback_id=wid, attempt=1)]


def pending(wid="wb1", op="book_appointment", t=0.0, sikka_id="5001", **kw) -> list[ev.Event]:
    return submitting(wid, op, t, **kw) + [
        ev.WritebackSubmitted(at=at(t + 2), writeback_id=wid, sikka_writeback_id=sikka_id, next_check_at=at(t + 4))
    ]


def unknown(wid="wb1", op="book_appointment", t=0.0, **kw) -> list[ev.Event]:
    return submitting(wid, op, t, **kw) + [
        ev.OutcomeUnknown(at=at(t + 31), writeback_id=wid, reason="timeout", next_check_at=at(t + 36))
    ]


def list_item(sikka_id="5001", op="book_appointment", result="pending", *, office=OFFICE, body=None, when=None, **kw):
    from actors.core.operations import OPERATIONS, prepare

    spec = OPERATIONS[op]
    payload = PAYLOADS[op] if body is None else body
    request = prepare(op, payload)
    request_body = {"request_key": "6ae9***", **request.body}
    if spec.path_field:
        request_body["id"] = request.path.rsplit("/", 1)[-1]
    return oc.WritebackListItem(
        id=sikka_id,
        office_id=office,
        method=spec.method,
        api_name=spec.resource,
        result=result,
        command_time=(when or at(1)).strftime("%Y-%m-%dT%H:%M:%S"),
        request_body=request_body,
        **kw,
    )


def listing(*items, t: float, ranges=None, bodies=None, complete=True, **kw) -> messages.ListOutcome:
    from actors.core.listplan import target_dates

    if ranges is None:
        lo, hi = target_dates(T0)
        ranges = ((lo, hi),)
    return messages.ListOutcome(
        items=tuple(items), ranges=ranges, fetched_at=at(t), complete=complete, bodies=bodies or {}, **kw
    )


def types(decision) -> list[str]:
    assert isinstance(decision, list), decision
    return [type(e).__name__ for e in decision]


def step(p: Practice, msg, t: float):
    """decide then fold; returns (practice, events)."""
    d = decide(p, msg, at(t))
    assert isinstance(d, list), d
    return fold(p, d), d


def without_schedule(p: Practice) -> Practice:
    """The practice without what noted checks (never stored) change in its open writebacks: their
    schedule and count, and the marks that live in one process only. A fold of the recorded log
    equals the live state up to this."""
    return replace(
        p,
        writebacks={
            w: replace(wb, checks=0, next_check_at=None, status_check_planned=False, seen_here=False)
            for w, wb in p.writebacks.items()
        },
    )
