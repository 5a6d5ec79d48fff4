"""``decide(practice, message, now) -> [events] | Refused | Duplicate``: every decision the
supervisor makes about a practice and its writebacks, and ``recover`` (what an actor records as
it starts).

``message`` is a command (what someone asked for) or an input (what a Sikka call came to, or
that time passed): ``actors.core.messages``. Commands are decided here; what Sikka's answers
mean is in ``actors.core.answers`` (single calls) and ``actors.core.confirm`` (the app-level
``GET /writebacks`` list). The shell appends the events and folds them with
``actors.core.state.evolve``, the same fold replay uses. Validation errors are values
(``Refused``).

Writeback lifecycle (interface section 4; each arrow names the input that drives it)::

                 RequestWriteback
                        │
                        ▼            Submit step records SubmitAttempted first
      ┌──────────────► queued ───────────────────────────────► submitting
      │ ProvenAbsent    ▲  ▲                                      │
      │ (list, after    │  │ SubmitOutcome: key refused           │ SubmitOutcome
      │  attempt+T+L+30)│  └──────────────────────────────────────┤ ├─ Ok(ack) ─────────► pending
      │                 │ Tick: retry_at                          │ ├─ 4xx ─────────────► failed
      │              deferred ◄── 429 / 412 / quota / connect ────┤ └─ 5xx/timeout/cut ─► unknown
      │                                                           │    (recover: crash ─► unknown)
      └── unknown ── ListOutcome: one candidate ──► pending ◄─────┘
            │  several ─► stays unknown (ambiguous, alert)
            └─ Tick: deadline ─► failed outcome_unknown ── 7 days of matching ─► LateOutcomeFound

      pending ── ListOutcome / StatusOutcome ─► completed | failed | failed deleted_at_sikka
          │       (a completed create, or a failure without text: writeback_status first)
          └─ CancelWriteback / Tick: deadline ─► cancel_requested ─► Cancel step (DELETE)
                 ├─ DeleteOutcome ok/4xx ─► status read (Poll) ─► cancelled | failed
                 │                          deadline_exceeded | the real outcome
                 └─ DeleteOutcome failed ─► DeleteFailed, retried 5 s doubling to 5 min;
                                            alert from the 5th failure (``delete_attempts``)

      queued/deferred ── CancelWriteback ─► cancelled;  ── Tick: deadline ─► failed
      deadline_exceeded (retryable);  RetryFailed ─► a new writeback with retry_of, once.

Practice: ``PracticeListed``/``PracticeUnlisted`` (onboarding; an offboarded practice stays
offboarded unless an operator names it, then it is reinstated), ``RefreshOutcome`` (grants: a
refused refresh key falls back to the secret key; API2007 or a refused request_key grant ─►
setup_required), ``Pause``/``Resume`` (paused: nothing new is sent; pending writebacks are still
checked and deadlines still run), ``OffboardPractice`` (refused while any writeback is
submitting or unknown; cancels queued/deferred, cancels pending at Sikka, then the ``Offboard``
step).

Times: ``now`` and every event time are aware UTC datetimes. Pure.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from actors.core import answers, confirm, policy
from actors.core import events as ev
from actors.core.checks import record_checks
from actors.core.messages import (
    CancelWriteback,
    CheckByStatus,
    Decision,
    DeleteOutcome,
    Duplicate,
    KeyCheckOutcome,
    ListOutcome,
    Message,
    OffboardOutcome,
    OffboardPractice,
    Pause,
    PracticeListed,
    PracticeUnlisted,
    RefreshOutcome,
    RefreshToken,
    Refused,
    RequestWriteback,
    Resume,
    RetryFailed,
    StatusOutcome,
    SubmitOutcome,
    Tick,
)
from actors.core.policy import DEFAULT_SETTINGS, CoreSettings
from actors.core.schedule import anchor_of, due_events, ordered
from actors.core.state import Practice, evolve

_RETRY_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e8f-9a0b-1c2d3e4f5a6b")


def retry_id(failed_writeback_id: str) -> str:
    """The id of the retry of ``failed_writeback_id`` (deterministic: one retry per failure)."""
    return str(uuid.uuid5(_RETRY_NAMESPACE, f"retry:{failed_writeback_id}"))


# --- decide ----------------------------------------------------------------------------------


def decide(p: Practice, msg: Message, now: datetime, settings: CoreSettings = DEFAULT_SETTINGS) -> Decision:
    """The events ``msg`` leads to (or why it is refused); checks that changed nothing are only
    noted (``actors.core.checks``). Pure."""
    decision = _decide(p, msg, now, settings)
    return record_checks(p, decision) if isinstance(decision, list) else decision


def _decide(p: Practice, msg: Message, now: datetime, settings: CoreSettings) -> Decision:
    match msg:
        case RequestWriteback():
            return _request(p, msg, now, settings)
        case CancelWriteback():
            return _cancel(p, msg.writeback_id, now)
        case RetryFailed():
            return _retry_failed(p, msg, now, settings)
        case Pause():
            if p.offboarded:
                return _offboarded()
            return [] if p.paused else [ev.PracticePaused(at=now)]
        case Resume():
            if p.offboarded:
                return _offboarded()
            return [ev.PracticeResumed(at=now)] if p.paused else []
        case RefreshToken():
            if p.offboarded or p.offboarding:
                return _offboarded()
            return [ev.TokenRefreshRequested(at=now)]
        case OffboardPractice():
            return _offboard(p, now)
        case PracticeListed():
            return _listed(p, msg, now)
        case PracticeUnlisted():
            if p.offboarded or not p.authorized:
                return []
            return [ev.PracticeDeauthorized(at=now, reason=msg.reason or "left authorized_practices")]
        case Tick():
            return due_events(p, now, settings)
        case SubmitOutcome():
            return answers.submit_outcome(p, msg, now, settings)
        case StatusOutcome():
            return answers.status_outcome(p, msg, now)
        case ListOutcome():
            return confirm.list_outcome(p, msg, now, settings)
        case CheckByStatus():
            return answers.plan_status_reads(p, msg, now)
        case RefreshOutcome():
            return answers.refresh_outcome(p, msg, now)
        case DeleteOutcome():
            return answers.delete_outcome(p, msg, now)
        case KeyCheckOutcome():
            return answers.key_check_outcome(p, msg, now)
        case OffboardOutcome():
            if p.offboarding and msg.ok:
                return [ev.PracticeOffboarded(at=now)]
            return []
    raise TypeError(f"not a core message: {type(msg).__name__}")


def _offboarded() -> Refused:
    return Refused("unknown_practice", "the practice was offboarded")


def _request(p: Practice, msg: RequestWriteback, now: datetime, settings: CoreSettings) -> Decision:
    if p.offboarded or p.offboarding:
        return _offboarded()
    if msg.writeback_id in p.writebacks:
        return Duplicate(msg.writeback_id)
    if msg.idempotency_key is not None:
        for wb in p.writebacks.values():
            if wb.idempotency_key == msg.idempotency_key:
                if wb.operation == msg.operation and wb.payload_digest == msg.payload_digest:
                    return Duplicate(wb.writeback_id)
                return Refused(
                    "idempotency_conflict",
                    "this idempotency key was used with a different operation or payload",
                    "idempotency_key",
                )
    return [
        ev.WritebackRequested(
            at=now,
            writeback_id=msg.writeback_id,
            operation=msg.operation,
            payload_digest=msg.payload_digest,
            deadline_at=policy.deadline_at(now, msg.deadline_s, settings),
            idempotency_key=msg.idempotency_key,
        )
    ]


def _cancel(p: Practice, writeback_id: str, now: datetime) -> Decision:
    wb = p.writebacks.get(writeback_id)
    if wb is None:
        return Refused("unknown_writeback", "no open writeback has this id (final ones cannot be cancelled)")
    match wb.state:
        case "queued" | "deferred":
            return [ev.WritebackCancelled(at=now, writeback_id=writeback_id)]
        case "pending" | "unknown":
            if wb.cancel_requested:
                return []
            return [ev.CancelRequested(at=now, writeback_id=writeback_id, reason="cancel")]
    return Refused("not_cancellable", f"a {wb.state} writeback cannot be cancelled")


def _retry_failed(p: Practice, msg: RetryFailed, now: datetime, settings: CoreSettings) -> Decision:
    if p.offboarded or p.offboarding:
        return _offboarded()
    out: list[ev.Event] = []
    for failed_id in p.retryable_failed:
        payload = p.payloads.get(failed_id)
        operation = p.failed_ops.get(failed_id)
        new_id = retry_id(failed_id)
        if payload is None or operation is None or new_id in p.writebacks:
            continue  # purged payload, or (impossible by the fold) already retried
        out.append(
            ev.WritebackRequested(  # the commit path seals the failed writeback's payload anew
                at=now,
                writeback_id=new_id,
                operation=operation,
                deadline_at=policy.deadline_at(now, msg.deadline_s, settings),
                retry_of=failed_id,
            )
        )
    return out


def _offboard(p: Practice, now: datetime) -> Decision:
    if p.offboarded:
        return _offboarded()
    busy = [wb.writeback_id for wb in p.writebacks.values() if wb.state in ("submitting", "unknown")]
    if busy:
        return Refused("writebacks_in_flight", f"{len(busy)} writeback(s) are submitting or unknown; try again later")
    if p.offboarding:
        return []
    out: list[ev.Event] = []
    for wb in ordered(p):
        if wb.state in ("queued", "deferred"):
            out.append(ev.WritebackCancelled(at=now, writeback_id=wb.writeback_id))
        elif wb.state == "pending" and not wb.cancel_requested:
            out.append(ev.CancelRequested(at=now, writeback_id=wb.writeback_id, reason="offboard"))
    out.append(ev.OffboardRequested(at=now))
    return out


def _listed(p: Practice, msg: PracticeListed, now: datetime) -> list[ev.Event]:
    if p.offboarded:
        if not msg.named:
            return []
        return [
            ev.PracticeReinstated(
                at=now, practice_name=msg.practice_name, practice_ids=msg.practice_ids, time_zone=msg.time_zone
            )
        ]
    out: list[ev.Event] = []
    if not p.registered:
        out.append(
            ev.PracticeRegistered(
                at=now,
                office_id=p.office_id,
                practice_name=msg.practice_name,
                practice_ids=msg.practice_ids,
                time_zone=msg.time_zone,
            )
        )
    elif (msg.practice_name, msg.practice_ids, msg.time_zone) != (p.practice_name, p.practice_ids, p.time_zone):
        out.append(
            ev.PracticeUpdated(
                at=now, practice_name=msg.practice_name, practice_ids=msg.practice_ids, time_zone=msg.time_zone
            )
        )
    if p.registered and (not p.authorized or _listing_lifts_setup(p, msg)):
        out.append(ev.PracticeReauthorized(at=now))
    return out


def _listing_lifts_setup(p: Practice, msg: PracticeListed) -> bool:
    """A practice in ``setup_required`` that Sikka lists again gets a new grant when the listing
    contradicts the reason: it was de-authorized (API2007) but authorizes the app now (a revoke
    seen by a key call, and lifted before an onboarding saw the practice unlisted), or its
    secret key was refused and the listing brings another one. The same refused secret is not
    tried again at every onboarding."""
    return p.setup_required and (p.setup_code == "API2007" or msg.secret_changed)


def recover(p: Practice, now: datetime, settings: CoreSettings = DEFAULT_SETTINGS) -> list[ev.Event]:
    """What an actor records as it starts. A writeback left ``submitting`` by a crash may or may
    not have reached Sikka, so it becomes ``unknown`` (reconciled through the list; never re-sent
    blindly). A practice whose actor runs is not parked: a parking still open in the log (its end
    is recorded here, not by the supervisor, whose append may fail) is closed."""
    unparked = [ev.PracticeUnparked(at=now)] if p.parked_until is not None else []
    return unparked + [
        ev.OutcomeUnknown(
            at=now,
            writeback_id=wb.writeback_id,
            reason="crash",
            next_check_at=policy.unknown_first_check_at(now, anchor_of(wb), settings),
        )
        for wb in ordered(p)
        if wb.state == "submitting"
    ]



def apply(p: Practice, decision: Decision) -> Practice:
    """Fold a decision's events into ``p`` (a convenience for tests and the shell)."""
    if isinstance(decision, list):
        for e in decision:
            p = evolve(p, e)
    return p

