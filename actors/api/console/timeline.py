"""A writeback's story from the event log, for the console's writeback page. Pure.

``timeline(office_id, records)`` turns the writeback's recorded events (``store``'s
``read_writeback``, in stream order) into ``Step`` rows: when it happened, what happened (a
title), its details (every field of the event but the writeback id and the payload, which is
ciphertext here and patient data once opened), the Sikka call the event records, if any, and the
writeback's state after it, by the production fold (``actors.core.state.evolve_writeback``), so
the page shows what the actor believed at each step. ``sikka_calls`` counts the calls made for
it: submits, status checks, lists that found it or proved it absent, deletes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

import msgspec

from actors.core import events as ev
from actors.core.state import Writeback, evolve_writeback
from store.eventlog import RecordedEvent

TITLES: dict[type[ev.Event], str] = {
    ev.WritebackRequested: "Requested",
    ev.SubmitAttempted: "Sent to Sikka",
    ev.WritebackSubmitted: "Acknowledged by Sikka",
    ev.SubmitRefused: "Key refused; queued again",
    ev.WritebackRejected: "Rejected by Sikka",
    ev.WritebackDeferred: "Deferred",
    ev.OutcomeUnknown: "Outcome unknown",
    ev.WritebackReconciled: "Found at Sikka (reconciled)",
    ev.ProvenAbsent: "Proven absent at Sikka; queued again",
    ev.RetryScheduled: "Queued again",
    ev.StatusChecked: "Status checked",
    ev.CancelRequested: "Cancel requested",
    ev.DeleteAnswered: "Sikka answered the DELETE",
    ev.DeleteFailed: "DELETE failed",
    ev.WritebackCompleted: "Completed",
    ev.WritebackFailed: "Failed",
    ev.WritebackCancelled: "Cancelled",
    ev.LateOutcomeFound: "Found at Sikka after failing",
    ev.LateWatchEnded: "Late matching ended",
    ev.PayloadPurged: "Payload purged",
}

# the Sikka call an event records: (kind, the request)
SUBMIT, CHECK, LIST, DELETE = "submit", "status check", "list", "delete"
CALLS: dict[type[ev.Event], tuple[str, str]] = {
    ev.SubmitAttempted: (SUBMIT, "POST /writebacks"),
    ev.StatusChecked: (CHECK, "GET /writebacks (app-level list) or writeback_status"),
    ev.WritebackReconciled: (LIST, "GET /writebacks (app-level list)"),
    ev.ProvenAbsent: (LIST, "GET /writebacks (app-level list)"),
    ev.LateOutcomeFound: (LIST, "GET /writebacks (app-level list)"),
    ev.DeleteAnswered: (DELETE, "DELETE /writebacks?id="),
    ev.DeleteFailed: (DELETE, "DELETE /writebacks?id="),
}
TROUBLE = (ev.SubmitRefused, ev.WritebackRejected, ev.WritebackDeferred, ev.OutcomeUnknown, ev.DeleteFailed,
           ev.WritebackFailed)
HIDDEN_FIELDS = frozenset({"at", "writeback_id", "payload", "payload_digest"})
Detail = str | int | datetime


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """One event of the writeback, as the timeline shows it."""

    position: int
    at: datetime  # when it was decided
    type: str  # the event's tag
    title: str
    details: tuple[tuple[str, Detail], ...]  # (field name, value), set fields only
    call: tuple[str, str] | None  # (kind, request) of the Sikka call it records
    trouble: bool  # an error, a refusal or a detour
    state: str | None  # the writeback's state after it


def details(event: ev.Event) -> tuple[tuple[str, Detail], ...]:
    """The event's fields worth showing: set, and neither its writeback id nor its payload."""
    shown: list[tuple[str, Detail]] = []
    for name in event.__struct_fields__:
        value = getattr(event, name)
        if name in HIDDEN_FIELDS or value is None or value == "" or value == ():
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        shown.append((name, value if isinstance(value, int | datetime) else str(value)))
    return tuple(shown)


def timeline(office_id: str, records: Iterable[RecordedEvent]) -> list[Step]:
    """The writeback's steps, oldest first (``records``: its events in stream order)."""
    steps: list[Step] = []
    wb: Writeback | None = None
    for record in records:
        event = record.event
        wb = evolve_writeback(wb, event, office_id)
        steps.append(
            Step(
                position=record.position,
                at=event.at,
                type=record.type,
                title=TITLES.get(type(event), record.type.replace("_", " ")),
                details=details(event),
                call=CALLS.get(type(event)),
                trouble=isinstance(event, TROUBLE),
                state=wb.state if wb is not None else None,
            )
        )
    return steps


def sikka_calls(steps: Iterable[Step]) -> dict[str, int]:
    """How many Sikka calls of each kind the events record for the writeback."""
    counted = Counter(step.call[0] for step in steps if step.call is not None)
    return {kind: counted.get(kind, 0) for kind in (SUBMIT, CHECK, LIST, DELETE)}
