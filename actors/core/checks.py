"""Which status checks the log records: events that say what happened, not how often we looked.

A status check (a list round that covered a writeback, a ``writeback_status`` read) is decided
as a ``StatusChecked`` by ``actors.core.confirm`` and ``actors.core.answers``. ``record_checks``
then keeps it as a recorded ``StatusChecked`` only when it changes something:

- Sikka's result or ours (``pending`` → ``missing``, ``not_found`` → ``ambiguous``, a first
  ``error`` after answers, a ``status_404``, …; the acknowledgement already says ``pending``);
- a ``writeback_status`` read becoming due or done (``read_status``);
- the first check of a writeback this process took up from the log (after a restart or a
  takeover the history shows that checking resumed, and who resumed it; a writeback it sent
  itself needs no such mark: ``Writeback.seen_here``);
- or when the writeback's last recorded check is ``CHECK_RECORD_INTERVAL_S`` old (a long wait
  still shows in its history every ten minutes).

Any other check becomes a ``CheckNoted``: the owner's actor folds it (the next check moves on,
``Writeback.checks`` counts it) and the log never stores it. The count reaches the log with the
writeback's next recorded event: a recorded ``StatusChecked`` carries ``checks`` (the total so
far, itself included) and so does the event that ends the writeback (completed, failed,
cancelled, or rejected when a writeback proven absent is sent again), so replay and the
``writebacks`` projection know how many checks were made; checks noted since the last recorded
event are lost only with the process (a crash or a restart).

So a booking confirmed in seconds costs five events (requested, submit attempted, submitted,
the check that found it done and asked for ``created_id``, completed) however many list rounds
covered it. Checks of a failed ``outcome_unknown`` writeback's late watch (every 15 minutes) are
all recorded. Pure.
"""

from __future__ import annotations

from datetime import datetime

from msgspec.structs import asdict, replace

from actors.core import events as ev
from actors.core.policy import CHECK_RECORD_INTERVAL_S, seconds
from actors.core.state import FINAL_STATES, Practice, Writeback, evolve_writeback

_CHECKED_OR_ENDING = (ev.StatusChecked, *ev.ENDINGS)


def record_checks(p: Practice, events: list[ev.Event]) -> list[ev.Event]:
    """``events`` with each check that changed nothing noted instead of recorded, and the count
    of checks carried by the recorded events of the writebacks they concern."""
    if not any(isinstance(e, _CHECKED_OR_ENDING) for e in events):
        return events
    current: dict[str, Writeback] = {}
    out: list[ev.Event] = []
    for e in events:
        writeback_id = getattr(e, "writeback_id", None)
        wb = current.get(writeback_id) or p.writebacks.get(writeback_id) if writeback_id else None
        if wb is not None and wb.state not in FINAL_STATES:
            if isinstance(e, ev.StatusChecked) and not isinstance(e, ev.CheckNoted):
                e = ev.CheckNoted(**asdict(e)) if changes_nothing(wb, e) else replace(e, checks=wb.checks + 1)
            elif isinstance(e, ev.ENDINGS) and wb.checks and not e.checks:
                e = replace(e, checks=wb.checks)
            after = evolve_writeback(wb, e, p.office_id)
            if after is not None:
                current[writeback_id] = after
        out.append(e)
    return out


def changes_nothing(wb: Writeback, e: ev.StatusChecked) -> bool:
    """Whether check ``e`` of the open writeback ``wb`` only moves its schedule."""
    return (
        wb.seen_here
        and _same_result(wb.last_result, e.result)
        and e.read_status == wb.status_read_due
        and (e.result == "ambiguous") == wb.ambiguous
        and e.at < last_recorded_check(wb) + seconds(CHECK_RECORD_INTERVAL_S)
    )


def loaded(p: Practice) -> Practice:
    """The practice as a process takes it up (from the log): none of its open writebacks was
    sent or checked here yet, and no status read is planned (both only ever live in one process)."""
    if not any(wb.seen_here or wb.status_check_planned for wb in p.writebacks.values()):
        return p
    fresh = {w: replace(wb, seen_here=False, status_check_planned=False) for w, wb in p.writebacks.items()}
    return replace(p, writebacks=fresh)


def last_recorded_check(wb: Writeback) -> datetime:
    """When the log last heard of the writeback's checks (its acknowledgement before any)."""
    return wb.checked_at or wb.unknown_since or wb.submitted_at or wb.requested_at


def _same_result(before: str, now: str) -> bool:
    if not now or now == before:
        return True
    return now == "pending" and before == ""  # the acknowledgement already said pending
