"""State folded from events: ``evolve(practice, event) -> practice``. Pure; no I/O.

The same fold serves the live actor (recovery and every append), the projections and replay,
so what an operator replays is exactly what the actor believed.

The writeback lifecycle is drawn in ``actors.core.decide``; here final states absorb every
later event.

``Practice.writebacks`` holds only writebacks that are not final (plus their encrypted payloads
in ``payloads``); a final writeback leaves the actor's memory and lives on in the ``writebacks``
projection. ``evolve_writeback`` is the per-writeback fold that both use.

Two kinds of final writeback keep a little memory in the practice, because the core still acts
on them: a retryable failure keeps its payload (in ``payloads``) and operation (``failed_ops``)
until ``retry-failed`` re-queues it once; an ``outcome_unknown`` failure stays in ``late_watch``
(its payload in ``payloads``) for 7 days, so a late find at Sikka is recorded.
An attempt proven absent and sent again is watched 7 days for its original landing late (payload
kept; ``resent_watch``, ``duplicates``: ``actors.core.resent``, ``actors.core.duplicates``).
``recent_sikka_ids`` (bounded) remembers Sikka ids that final writebacks claimed, so
reconciliation never matches one Sikka item to two of ours. Practice-wide effects of writeback
events (a refused key, a submission hold after 429/412/quota) apply only while the writeback is
open, so the projection (which passes final rows) and the actor agree.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec.structs import replace

from actors.core import events as ev
from actors.core import resent
from actors.core.resent import Duplicate, ResentWatch

WRITEBACK_STATES = ("queued", "submitting", "pending", "deferred", "unknown", "completed", "failed", "cancelled")
FINAL_STATES = frozenset({"completed", "failed", "cancelled"})
PRACTICE_STATES = ("active", "setup_required", "paused", "parked", "offboarded")
RECENT_SIKKA_IDS = 128  # claimed Sikka ids of final writebacks the practice remembers


class WritebackError(msgspec.Struct, frozen=True):
    code: str
    message: str = ""


class Writeback(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One writeback as the admin API shows it (no payload), plus the fold's bookkeeping."""

    writeback_id: str
    office_id: str
    operation: str
    state: str = "queued"
    idempotency_key: str | None = None
    retry_of: str | None = None
    retryable: bool = False
    sikka_writeback_id: str | None = None
    created_id: str | None = None
    error: WritebackError | None = None
    requested_at: datetime
    submitted_at: datetime | None = None
    completed_at: datetime | None = None
    sikka_completed_time: str | None = None
    deadline_at: datetime
    attempts: int = 0
    checks: int = 0  # checks of Sikka's state that did not end it (``actors.core.checks``)
    next_check_at: datetime | None = None
    # bookkeeping, not part of the API shape
    seq: int = 0  # request order within the practice
    attempted_at: datetime | None = None  # when the last submit attempt began
    retry_at: datetime | None = None  # when a deferred writeback may be queued again
    deferred_reason: str | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None
    payload_digest: str = ""  # digest of the plaintext payload (idempotency comparisons)
    unknown_since: datetime | None = None  # when the outcome became unknown
    last_result: str = ""  # the last status seen (Sikka's, or ours: not_found, ambiguous, …)
    status_read_due: bool = False  # a writeback_status read is due (created_id, error, after DELETE)
    ambiguous: bool = False  # reconciliation found several candidates (writeback_unknown alert)
    delete_attempts: int = 0  # failed DELETEs so far (alert after 5)
    delete_retry_at: datetime | None = None
    delete_answered: bool = False  # Sikka answered the DELETE; a status read decides
    checked_at: datetime | None = None  # the last recorded check (``StatusChecked``)
    status_check_planned: bool = False  # transient: the next check is a writeback_status read
    seen_here: bool = False  # transient: this process sent or checked it (``actors.core.checks.loaded``)


class LateWatch(msgspec.Struct, frozen=True, kw_only=True):
    """A writeback failed as ``outcome_unknown``: still matched against Sikka's list for 7 days."""

    writeback_id: str
    operation: str
    attempted_at: datetime
    failed_at: datetime
    next_check_at: datetime | None = None


class Practice(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A practice as its actor knows it. Secrets live only in the credentials store. Encoded, as
    ``Writeback``, without the fields at their defaults (snapshots, projection folds: 0007)."""

    office_id: str
    registered: bool = False
    practice_name: str = ""
    practice_ids: tuple[str, ...] = ()
    time_zone: str | None = None
    authorized: bool = True
    setup_required: bool = False
    setup_code: str | None = None  # Sikka's code that made setup required (API2007: de-authorized)
    paused: bool = False
    parked_until: datetime | None = None
    offboarded: bool = False
    token_expires_at: datetime | None = None
    last_error: str | None = None
    updated_at: datetime | None = None
    next_seq: int = 1
    writebacks: dict[str, Writeback] = {}
    payloads: dict[str, str] = {}
    finished: dict[str, int] = {}  # final state → count
    retryable_failed: tuple[str, ...] = ()  # failed, retryable, not yet retried
    # --- added for the pure core (all defaulted; see actors.core) ---
    token_issued_at: datetime | None = None
    token_stale: bool = False  # a keyed call was refused (API1025/API1004): refresh before use
    refresh_requested: bool = False
    refresh_failures: int = 0  # consecutive failed grants
    refresh_retry_at: datetime | None = None
    refresh_grant: str | None = None  # forced next grant; None: refresh_key if we ever had a key
    submit_hold_until: datetime | None = None  # no submissions before (429, 412, quota, connect)
    submit_hold_reason: str | None = None
    spu_offline_streak: int = 0  # consecutive 412 deferrals (15 s doubling to 15 min)
    offboarding: bool = False
    failed_ops: dict[str, str] = {}  # retryable failed writeback → operation (for retry-failed)
    late_watch: dict[str, LateWatch] = {}
    recent_sikka_ids: tuple[str, ...] = ()
    resent_watch: dict[str, ResentWatch] = {}
    duplicates: tuple[Duplicate, ...] = ()

    @property
    def state(self) -> str:
        if self.offboarded:
            return "offboarded"
        if self.parked_until is not None:
            return "parked"
        if self.setup_required or not self.authorized:
            return "setup_required"
        if self.paused:
            return "paused"
        return "active"


def empty(office_id: str) -> Practice:
    return Practice(office_id=office_id)


def evolve_writeback(wb: Writeback | None, e: ev.Event, office_id: str) -> Writeback | None:
    """The writeback after ``e`` (``None`` before it was requested). Final states absorb."""
    if isinstance(e, ev.WritebackRequested):
        return wb if wb is not None else _requested_writeback(e, office_id)
    if wb is None or wb.state in FINAL_STATES:
        return wb
    changed = _submission(wb, e)
    if changed is None:
        changed = _confirmation(wb, e)
    return wb if changed is None else changed


def _requested_writeback(e: ev.WritebackRequested, office_id: str) -> Writeback:
    return Writeback(
        writeback_id=e.writeback_id,
        office_id=office_id,
        operation=e.operation,
        idempotency_key=e.idempotency_key,
        retry_of=e.retry_of,
        requested_at=e.at,
        deadline_at=e.deadline_at,
        payload_digest=e.payload_digest,
    )


def _submission(wb: Writeback, e: ev.Event) -> Writeback | None:
    """Sending and its immediate answers: queued, submitting, pending, deferred, unknown."""
    match e:
        case ev.SubmitAttempted():
            return replace(wb, state="submitting", attempts=e.attempt, attempted_at=e.at, retry_at=None)
        case ev.WritebackSubmitted():
            return replace(
                wb, state="pending", sikka_writeback_id=e.sikka_writeback_id, submitted_at=e.at,
                next_check_at=e.next_check_at, seen_here=True,
            )
        case ev.SubmitRefused():
            return replace(wb, state="queued", attempts=max(0, wb.attempts - 1))
        case ev.WritebackRejected():
            return _final(wb, e.at, "failed", e.checks, error=WritebackError(e.code, e.message), retryable=False)
        case ev.WritebackDeferred():  # answered before Sikka accepted anything: not an attempt
            return replace(
                wb, state="deferred", retry_at=e.retry_at, deferred_reason=e.reason, attempts=max(0, wb.attempts - 1)
            )
        case ev.OutcomeUnknown():
            return replace(wb, state="unknown", unknown_since=e.at, next_check_at=e.next_check_at, seen_here=True)
        case ev.WritebackReconciled():
            return replace(
                wb, state="pending", sikka_writeback_id=e.sikka_writeback_id, next_check_at=e.next_check_at,
                submitted_at=wb.submitted_at or wb.attempted_at or e.at, ambiguous=False, unknown_since=None,
            )
        case ev.ProvenAbsent():
            return replace(
                wb, state="queued", retry_at=None, deferred_reason=None, next_check_at=None, ambiguous=False,
                unknown_since=None, last_result="",
            )
        case ev.RetryScheduled():
            return replace(wb, state="queued", retry_at=None, deferred_reason=None)
    return None


def _confirmation(wb: Writeback, e: ev.Event) -> Writeback | None:
    """Checks, cancels and the final outcome."""
    match e:
        case ev.CheckNoted():  # changed nothing but the schedule and the count
            return replace(
                wb, checks=wb.checks + 1, next_check_at=e.next_check_at, status_check_planned=False, seen_here=True
            )
        case ev.StatusChecked():
            return replace(
                wb, checks=e.checks or wb.checks + 1, next_check_at=e.next_check_at,
                last_result=e.result or wb.last_result, status_read_due=e.read_status,
                ambiguous=e.result == "ambiguous", checked_at=e.at, status_check_planned=False, seen_here=True,
            )
        case ev.StatusReadPlanned():
            return replace(wb, status_check_planned=True) if wb.state == "pending" else wb
        case ev.CancelRequested():
            return wb if wb.cancel_requested else replace(wb, cancel_requested=True, cancel_reason=e.reason)
        case ev.DeleteAnswered():
            return replace(wb, delete_answered=True, status_read_due=True, next_check_at=e.at, delete_retry_at=None)
        case ev.DeleteFailed():
            return replace(wb, delete_attempts=e.attempt, delete_retry_at=e.retry_at)
        case ev.WritebackCompleted():
            return _final(
                wb, e.at, "completed", e.checks, created_id=e.created_id, sikka_completed_time=e.sikka_completed_time
            )
        case ev.WritebackFailed():
            return _final(
                wb, e.at, "failed", e.checks, error=WritebackError(e.code, e.message), retryable=e.retryable,
                sikka_completed_time=e.sikka_completed_time,
            )
        case ev.WritebackCancelled():
            return _final(wb, e.at, "cancelled", e.checks)
    return None


def _final(wb: Writeback, at: datetime, state: str, checks: int = 0, **changes) -> Writeback:
    """``checks``: the final event's count of every check (0 in events recorded before it was kept)."""
    return replace(
        wb, state=state, completed_at=at, checks=checks or wb.checks, next_check_at=None, retry_at=None,
        status_read_due=False, status_check_planned=False, delete_retry_at=None, **changes,
    )


def _without(d: dict, key) -> dict:
    d = dict(d)
    d.pop(key, None)
    return d


def evolve(p: Practice, e: ev.Event) -> Practice:
    """The practice after ``e``. Total: an event that does not apply leaves the state as it is."""
    writeback_id = getattr(e, "writeback_id", None)
    wb = p.writebacks.get(writeback_id) if writeback_id is not None else None
    return step(p, e, wb)[0]


def step(p: Practice, e: ev.Event, wb: Writeback | None) -> tuple[Practice, Writeback | None]:
    """One fold step: the practice after ``e`` and the writeback ``e`` concerns (given as ``wb``).

    ``evolve`` looks ``wb`` up in the practice's open writebacks; the ``writebacks`` projection
    passes its stored row instead, so both apply exactly the same rules.
    """
    if ev.recorded(e):  # the time of the last recorded event (a noted check changes nothing here)
        p = replace(p, updated_at=e.at)
    match e:
        case ev.WritebackRequested():
            return _requested(p, e, wb)
        case ev.StatusChecked() if e.writeback_id in p.late_watch:
            watch = replace(p.late_watch[e.writeback_id], next_check_at=e.next_check_at)
            return replace(p, late_watch={**p.late_watch, e.writeback_id: watch}), wb
        case ev.StatusChecked() if e.writeback_id in p.resent_watch:
            return resent.changed(p, p.resent_watch[e.writeback_id], next_check_at=e.next_check_at), wb
        case ev.DuplicateFound() | ev.DuplicateDeleteTried() | ev.DuplicateSettled():
            return resent.folded(p, e, remember=_remember), wb
    changed = _authorization(p, e)
    if changed is None:
        changed = _practice_lifecycle(p, e)
    if changed is not None:
        return changed, wb
    if wb is not None:
        after = evolve_writeback(wb, e, p.office_id)
        if after is not wb:  # a final writeback absorbs the event and stays the same object
            if isinstance(e, ev.ProvenAbsent):
                p = resent.watch(p, wb, e)
            return _writeback_changed(_practice_side(p, e), after, e)
    return p, wb


def _authorization(p: Practice, e: ev.Event) -> Practice | None:
    """Registration, authorization and the request key."""
    match e:
        case ev.PracticeRegistered():
            return replace(
                p, registered=True, practice_name=e.practice_name, practice_ids=e.practice_ids,
                time_zone=e.time_zone, authorized=True,
            )
        case ev.PracticeUpdated():
            return replace(p, practice_name=e.practice_name, practice_ids=e.practice_ids, time_zone=e.time_zone)
        case ev.PracticeDeauthorized():
            return replace(p, authorized=False, last_error=e.reason or "practice de-authorized the application")
        case ev.PracticeReauthorized():
            return replace(
                p, authorized=True, setup_required=False, setup_code=None, refresh_grant="request_key",
                refresh_retry_at=None,
            )
        case ev.TokenRefreshed():
            return replace(
                p,
                token_expires_at=e.expires_at,
                token_issued_at=e.at,
                token_stale=False,
                refresh_requested=False,
                refresh_failures=0,
                refresh_retry_at=None,
                refresh_grant=None,
                setup_required=False,
                setup_code=None,
                last_error=None,
            )
        case ev.TokenRefreshFailed():
            return replace(
                p,
                last_error=_error_text(e.code, e.message),
                refresh_failures=p.refresh_failures + 1,
                refresh_retry_at=e.retry_at,
                refresh_grant=e.next_grant or p.refresh_grant,
                refresh_requested=False,
            )
        case ev.TokenRefreshRequested():
            return replace(p, refresh_requested=True, refresh_retry_at=None)
        case ev.KeyRefused():
            return replace(p, token_stale=True)
        case ev.SetupRequired():
            return replace(
                p,
                setup_required=True,
                setup_code=e.code,
                token_expires_at=None,
                token_stale=False,
                refresh_requested=False,
                refresh_grant="request_key",
                last_error=_error_text(e.code, e.message),
            )
    return None


def _practice_lifecycle(p: Practice, e: ev.Event) -> Practice | None:
    """Pause, parking, offboarding, and the payloads kept after a writeback ended."""
    match e:
        case ev.PracticePaused():
            return replace(p, paused=True)
        case ev.PracticeResumed():
            return replace(p, paused=False)
        case ev.PracticeParked():
            return replace(p, parked_until=e.until, last_error=e.error or p.last_error)
        case ev.PracticeUnparked():
            return replace(p, parked_until=None)
        case ev.OffboardRequested():
            return replace(p, offboarding=True)
        case ev.PracticeOffboarded():
            return replace(
                p, offboarded=True, offboarding=False, token_expires_at=None, payloads={}, late_watch={},
                resent_watch={},
            )
        case ev.PracticeReinstated():  # its keys were deleted: a new grant from the secret key
            return replace(
                p, offboarded=False, practice_name=e.practice_name, practice_ids=e.practice_ids, time_zone=e.time_zone,
                authorized=True, setup_required=False, setup_code=None, token_issued_at=None, token_stale=False,
                refresh_grant="request_key", refresh_failures=0, refresh_retry_at=None, last_error=None,
            )
        case ev.PayloadPurged() | ev.LateWatchEnded():
            return _forget_payload(p, e.writeback_id, purged=isinstance(e, ev.PayloadPurged))
        case ev.LateOutcomeFound():
            p = _forget_payload(p, e.writeback_id)
            return replace(p, recent_sikka_ids=_remember(p.recent_sikka_ids, e.sikka_writeback_id))
    return None


def _forget_payload(p: Practice, writeback_id: str, purged: bool = False) -> Practice:
    payloads = p.payloads if resent.watched(p, writeback_id) and not purged else _without(p.payloads, writeback_id)
    return replace(p, payloads=payloads, late_watch=_without(p.late_watch, writeback_id))


def _practice_side(p: Practice, e: ev.Event) -> Practice:
    """Practice-wide effects of an event on an open writeback (refused key, submission holds)."""
    match e:
        case ev.SubmitRefused() if e.code != "API2007":
            return replace(p, token_stale=True)
        case ev.WritebackDeferred():
            hold = e.retry_at if p.submit_hold_until is None else max(p.submit_hold_until, e.retry_at)
            streak = p.spu_offline_streak + 1 if e.reason == "spu_offline" else p.spu_offline_streak
            return replace(p, submit_hold_until=hold, submit_hold_reason=e.reason, spu_offline_streak=streak)
        case ev.WritebackSubmitted():
            if p.submit_hold_until is None and p.spu_offline_streak == 0:
                return p
            return replace(p, submit_hold_until=None, submit_hold_reason=None, spu_offline_streak=0)
    return p


def _remember(ids: tuple[str, ...], sikka_id: str) -> tuple[str, ...]:
    if not sikka_id or sikka_id in ids:
        return ids
    return (ids + (sikka_id,))[-RECENT_SIKKA_IDS:]


def _writeback_changed(p: Practice, wb: Writeback, e: ev.Event) -> tuple[Practice, Writeback]:
    if wb.state not in FINAL_STATES:
        return replace(p, writebacks={**p.writebacks, wb.writeback_id: wb}), wb
    finished = dict(p.finished)
    finished[wb.state] = finished.get(wb.state, 0) + 1
    retryable_failed = p.retryable_failed
    failed_ops = p.failed_ops
    keep_payload = False
    late_watch = p.late_watch
    if wb.state == "failed" and wb.retryable:
        retryable_failed = retryable_failed + (wb.writeback_id,)
        failed_ops = {**failed_ops, wb.writeback_id: wb.operation}
        keep_payload = True  # until retried or purged
    if resent.watched(p, wb.writeback_id):  # matched against Sikka's list for a late original
        keep_payload = True
        p = resent.ended(p, wb)
    if wb.state == "failed" and wb.error is not None and wb.error.code == "outcome_unknown":
        watch = LateWatch(
            writeback_id=wb.writeback_id,
            operation=wb.operation,
            attempted_at=wb.attempted_at or wb.requested_at,
            failed_at=e.at,
            next_check_at=e.at,
        )
        late_watch = {**late_watch, wb.writeback_id: watch}
        keep_payload = True  # matched against Sikka's list for 7 days
    p = replace(
        p,
        writebacks=_without(p.writebacks, wb.writeback_id),
        payloads=p.payloads if keep_payload else _without(p.payloads, wb.writeback_id),
        finished=finished,
        retryable_failed=retryable_failed,
        failed_ops=failed_ops,
        late_watch=late_watch,
        recent_sikka_ids=_remember(p.recent_sikka_ids, wb.sikka_writeback_id or ""),
    )
    return p, wb


def _requested(p: Practice, e: ev.WritebackRequested, wb: Writeback | None) -> tuple[Practice, Writeback]:
    if wb is not None:
        return p, wb
    wb = evolve_writeback(None, e, p.office_id)
    assert wb is not None
    wb = replace(wb, seq=p.next_seq)
    retryable_failed = p.retryable_failed
    failed_ops = p.failed_ops
    payloads = p.payloads
    if e.retry_of is not None:
        retryable_failed = tuple(i for i in retryable_failed if i != e.retry_of)
        failed_ops = _without(failed_ops, e.retry_of)
        payloads = _without(payloads, e.retry_of)
    p = replace(
        p,
        next_seq=p.next_seq + 1,
        writebacks={**p.writebacks, wb.writeback_id: wb},
        payloads={**payloads, wb.writeback_id: e.payload},
        retryable_failed=retryable_failed,
        failed_ops=failed_ops,
    )
    return p, wb


def _error_text(code: str, message: str) -> str:
    return f"{code}: {message}" if message else code


def fold(p: Practice, events) -> Practice:
    for e in events:
        p = evolve(p, e)
    return p


def writeback_counts(p: Practice) -> dict[str, int]:
    """Counts by state, for ``PracticeStatus.writebacks`` (final ones from ``finished``)."""
    counts = {s: 0 for s in WRITEBACK_STATES}
    for wb in p.writebacks.values():
        counts[wb.state] += 1
    for s, n in p.finished.items():
        counts[s] += n
    return counts
