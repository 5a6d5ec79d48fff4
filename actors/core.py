"""The pure core: every decision the supervisor makes about a practice and its writebacks.

Three functions, none of which imports trio, httpx or psycopg or reads a clock::

    decide(practice, message, now)   -> [events] | Refused | Duplicate
    next_step(practice, now, budget) -> Submit | Poll | Reconcile | Refresh | Cancel
                                        | KeyCheck | Record | Offboard | Sleep(until)
    recover(practice, now)           -> [events]          (once, after loading the stream)

``message`` is a command (what someone asked for) or an input (what a Sikka call came to, or
that time passed); both are msgspec structs in one tagged union (``Message``, tag ``kind``).
The actor shell only interprets: it runs the step ``next_step`` names (taking budget for it),
feeds the result back through ``decide``, appends the events, folds them with
``actors.state.evolve`` and asks again. Validation errors are values (``Refused``).

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

Practice: ``PracticeListed``/``PracticeUnlisted`` (onboarding), ``RefreshOutcome`` (grants: a
refused refresh key falls back to the secret key; API2007 or a refused request_key grant ─►
setup_required), ``Pause``/``Resume`` (paused:
nothing new is sent; pending writebacks are still checked and deadlines still run),
``OffboardPractice`` (refused while any writeback is submitting or unknown; cancels
queued/deferred, cancels pending at Sikka, then the ``Offboard`` step).

What ``next_step`` picks, in order: timer events due (``Record``: deadlines, deferrals ending,
late watches ending), ``Offboard`` when an offboarding has nothing left at Sikka, ``Refresh``
(token lane), ``Cancel`` (app-level DELETE: not on the practice budget), ``Poll`` (status lane;
only for created_id / error detail / after a DELETE), ``Reconcile`` (an app-level list the
app-level task should have fetched is overdue by ``list_fallback_grace_s``: fetch it yourself),
``KeyCheck`` (background lane; after ``key_check_interval`` without a keyed call), ``Submit``
(submission lane; the queued writeback first requested; one at a time), else ``Sleep(until)``
the earliest timer (``None``: until a message arrives).

Confirmation checks of pending writebacks and reconciliation of unknown ones are driven by the
app-level list task (``list_targets`` + ``policy.plan_list_call`` + ``policy.fan_out``), which
delivers ``ListOutcome`` messages; their ``next_check_at`` is the schedule it reads.

Times: ``now`` and every event time are aware UTC datetimes; the budget takes POSIX seconds
(``now.timestamp()``).
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import date, datetime, timedelta
from typing import Union

import msgspec

from actors import events as ev
from actors import outcomes as oc
from actors import policy
from actors import reconcile as rc
from actors.operations import OPERATIONS
from actors.policy import DEFAULT_SETTINGS, CoreSettings, ListTarget, seconds
from actors.ratelimit import Lane, Unlimited
from actors.state import Practice, Writeback, evolve


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# --- commands and inputs (one tagged union) --------------------------------------------------


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag=_snake):
    """Base of every command and input."""


class RequestWriteback(Message, frozen=True, kw_only=True):
    """Queue a writeback (payload already validated and encrypted by the caller)."""

    writeback_id: str
    operation: str
    payload: str
    payload_digest: str = ""
    idempotency_key: str | None = None
    deadline_s: float | None = None


class CancelWriteback(Message, frozen=True, kw_only=True):
    """``POST /writebacks/{id}/cancel``."""

    writeback_id: str


class RetryFailed(Message, frozen=True, kw_only=True):
    """Re-queue every retryable failure not retried before (new ids derived from the old)."""

    deadline_s: float | None = None


class Pause(Message, frozen=True, kw_only=True):
    """Operator pause."""


class Resume(Message, frozen=True, kw_only=True):
    """Operator resume."""


class RefreshToken(Message, frozen=True, kw_only=True):
    """Operator ``refresh-token``: refresh now, whatever the backoff."""


class OffboardPractice(Message, frozen=True, kw_only=True):
    """Operator ``offboard``."""


class PracticeListed(Message, frozen=True, kw_only=True):
    """Onboarding saw the practice in ``authorized_practices`` (``secret_changed``: with another
    secret key than the one stored)."""

    practice_name: str = ""
    practice_ids: tuple[str, ...] = ()
    time_zone: str | None = None
    secret_changed: bool = False


class PracticeUnlisted(Message, frozen=True, kw_only=True):
    """The practice left ``authorized_practices`` (de-authorized the app)."""

    reason: str = ""


class Tick(Message, frozen=True, kw_only=True):
    """Time passed: deadlines, deferrals ending, late watches ending."""


class SubmitOutcome(Message, frozen=True, kw_only=True):
    """What the writeback POST/PUT/PATCH came to."""

    writeback_id: str
    result: oc.Result


class StatusOutcome(Message, frozen=True, kw_only=True):
    """What ``writeback_status?id=`` came to (``Ok(WritebackStatus)``; ``Ok(None)``: no item)."""

    writeback_id: str
    result: oc.Result


class ListOutcome(Message, frozen=True, kw_only=True):
    """``GET /writebacks`` items of this office for ``ranges`` (all pages), fetched at ``fetched_at``.

    ``complete``: every page of every range was read (needed to prove anything absent).
    ``bodies``: the plaintext payloads of the writebacks being reconciled (``bodies_needed``),
    decrypted by the shell. ``claimed_ids``: Sikka ids our other writebacks hold beyond what the
    practice remembers (from the writebacks projection). ``failed``: the fetch failed.
    """

    items: tuple[oc.WritebackListItem, ...] = ()
    ranges: tuple[tuple[date, date], ...] = ()
    fetched_at: datetime
    complete: bool = True
    failed: bool = False
    bodies: dict[str, dict[str, str]] = {}
    claimed_ids: frozenset[str] = frozenset()


class RefreshOutcome(Message, frozen=True, kw_only=True):
    """What a key grant came to (``Ok(TokenGrant)``)."""

    result: oc.Result
    grant: str = "refresh_key"  # "refresh_key" | "request_key"


class DeleteOutcome(Message, frozen=True, kw_only=True):
    """What ``DELETE /writebacks?id=`` came to."""

    writeback_id: str
    result: oc.Result


class KeyCheckOutcome(Message, frozen=True, kw_only=True):
    """What ``GET /request_key_info`` (the idle key check) came to."""

    result: oc.Result


class OffboardOutcome(Message, frozen=True, kw_only=True):
    """The shell deleted the keys at Sikka and destroyed credentials and payloads."""

    ok: bool = True
    detail: str = ""


AnyCommand = Union[
    RequestWriteback,
    CancelWriteback,
    RetryFailed,
    Pause,
    Resume,
    RefreshToken,
    OffboardPractice,
    PracticeListed,
    PracticeUnlisted,
    Tick,
]
"""Commands: decodable from JSON (``msgspec.json.decode(raw, type=AnyCommand)``)."""

AnyInput = Union[
    SubmitOutcome, StatusOutcome, ListOutcome, RefreshOutcome, DeleteOutcome, KeyCheckOutcome, OffboardOutcome
]
"""Inputs: built in process by the shell (``outcomes.Result``'s union is untagged, so they encode
to JSON for logs but are not decoded from it)."""

AnyMessage = Union[AnyCommand, AnyInput]


# --- decision results that are not events ----------------------------------------------------


class Refused(msgspec.Struct, frozen=True):
    """A command that cannot be done; ``code`` is an admin API error code."""

    code: str
    detail: str
    field: str | None = None


class Duplicate(msgspec.Struct, frozen=True):
    """The request repeats one already accepted (same idempotency key, operation and payload)."""

    writeback_id: str


Decision = Union[list[ev.Event], Refused, Duplicate]


# --- steps -----------------------------------------------------------------------------------


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """Base of what ``next_step`` asks the shell to do."""


class Submit(Step, frozen=True, kw_only=True):
    """Append ``attempted``, take SUBMIT budget, send the writeback, feed ``SubmitOutcome``."""

    writeback_id: str
    operation: str
    attempt: int
    attempted: ev.SubmitAttempted


class Poll(Step, frozen=True, kw_only=True):
    """Read ``writeback_status?id=`` (STATUS lane), feed ``StatusOutcome``."""

    writeback_id: str
    sikka_writeback_id: str


class Reconcile(Step, frozen=True, kw_only=True):
    """Fetch ``GET /writebacks`` for ``ranges`` (app-level; every page), feed ``ListOutcome``."""

    writeback_ids: tuple[str, ...]
    ranges: tuple[tuple[date, date], ...]


class Refresh(Step, frozen=True, kw_only=True):
    """Obtain a key with ``grant`` (TOKEN lane), feed ``RefreshOutcome``."""

    grant: str


class Cancel(Step, frozen=True, kw_only=True):
    """``DELETE /writebacks?id=`` (app-level), feed ``DeleteOutcome``."""

    writeback_id: str
    sikka_writeback_id: str
    attempt: int


class KeyCheck(Step, frozen=True, kw_only=True):
    """``GET /request_key_info`` (BACKGROUND lane) after an idle interval; feed ``KeyCheckOutcome``."""


class Record(Step, frozen=True, kw_only=True):
    """Append these timer-driven events (no I/O)."""

    events: tuple[ev.Event, ...]


class Offboard(Step, frozen=True, kw_only=True):
    """Delete the keys at Sikka, destroy credentials, shred payloads; feed ``OffboardOutcome``."""


class Sleep(Step, frozen=True, kw_only=True):
    """Nothing to do before ``until`` (``None``: until a message arrives)."""

    until: datetime | None = None


AnyStep = Union[Submit, Poll, Reconcile, Refresh, Cancel, KeyCheck, Record, Offboard, Sleep]


# --- helpers ---------------------------------------------------------------------------------

CREATE_OPS = rc.CREATES
_RETRY_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e8f-9a0b-1c2d3e4f5a6b")


def retry_id(failed_writeback_id: str) -> str:
    """The id of the retry of ``failed_writeback_id`` (deterministic: one retry per failure)."""
    return str(uuid.uuid5(_RETRY_NAMESPACE, f"retry:{failed_writeback_id}"))


def _ordered(p: Practice) -> list[Writeback]:
    return sorted(p.writebacks.values(), key=lambda wb: wb.seq)


def key_usable(p: Practice, now: datetime) -> bool:
    """Whether the practice's request key may be used for a new call now."""
    return (
        p.token_expires_at is not None
        and not p.token_stale
        and not p.setup_required
        and p.authorized
        and now < p.token_expires_at - policy.key_safety(p.token_issued_at, p.token_expires_at)
    )


def refresh_grant(p: Practice) -> str:
    return p.refresh_grant or ("refresh_key" if p.token_issued_at is not None else "request_key")


def refresh_due_at(p: Practice, jitter: float | None = None) -> datetime | None:
    """When the next grant should be tried (the epoch: at once); ``None``: not now (no key can
    be had without an operator or a re-authorization, or the practice is leaving)."""
    if p.offboarded or p.offboarding:
        return None
    if p.refresh_requested:
        return _EPOCH
    if p.setup_required or not p.authorized:
        return None
    if p.refresh_retry_at is not None:
        return p.refresh_retry_at
    if p.token_expires_at is None or p.token_stale:
        return _EPOCH
    issued = p.token_issued_at or (p.token_expires_at - timedelta(days=1))
    return policy.token_refresh_at(
        issued, p.token_expires_at, policy.stable_jitter(p.office_id) if jitter is None else jitter
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=policy.UTC)


def can_submit(p: Practice, now: datetime) -> bool:
    """Practice-level conditions for sending a new writeback."""
    return (
        p.state == "active"
        and not p.offboarding
        and (p.submit_hold_until is None or now >= p.submit_hold_until)
        and key_usable(p, now)
        and not any(wb.state == "submitting" for wb in p.writebacks.values())
    )


def _anchor(wb: Writeback) -> datetime:
    return wb.attempted_at or wb.submitted_at or wb.requested_at


def list_targets(p: Practice) -> list[ListTarget]:
    """What this practice needs from the app-level ``GET /writebacks`` task."""
    out = []
    for wb in _ordered(p):
        if wb.state == "pending" and wb.sikka_writeback_id and not wb.status_read_due:
            out.append(
                ListTarget(
                    office_id=p.office_id,
                    writeback_id=wb.writeback_id,
                    kind="pending",
                    anchor=_anchor(wb),
                    next_check_at=wb.next_check_at,
                    sikka_writeback_id=wb.sikka_writeback_id,
                )
            )
        elif wb.state == "unknown":
            out.append(
                ListTarget(
                    office_id=p.office_id,
                    writeback_id=wb.writeback_id,
                    kind="unknown",
                    anchor=_anchor(wb),
                    next_check_at=wb.next_check_at,
                )
            )
    for watch in p.late_watch.values():
        if watch.writeback_id in p.payloads:
            out.append(
                ListTarget(
                    office_id=p.office_id,
                    writeback_id=watch.writeback_id,
                    kind="late",
                    anchor=watch.attempted_at,
                    next_check_at=watch.next_check_at,
                )
            )
    return out


def bodies_needed(p: Practice) -> list[str]:
    """Writebacks whose plaintext payload a ``ListOutcome`` must carry (reconciliation)."""
    ids = [wb.writeback_id for wb in _ordered(p) if wb.state == "unknown"]
    return ids + [w for w in p.late_watch if w in p.payloads]


# --- decide ----------------------------------------------------------------------------------


def decide(p: Practice, msg: Message, now: datetime, settings: CoreSettings = DEFAULT_SETTINGS) -> Decision:
    """The events ``msg`` leads to (or why it is refused). Pure."""
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
            return _submit_outcome(p, msg, now, settings)
        case StatusOutcome():
            return _status_outcome(p, msg, now)
        case ListOutcome():
            return _list_outcome(p, msg, now, settings)
        case RefreshOutcome():
            return _refresh_outcome(p, msg, now)
        case DeleteOutcome():
            return _delete_outcome(p, msg, now)
        case KeyCheckOutcome():
            return _key_check_outcome(p, msg, now)
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
    if msg.operation not in OPERATIONS:
        return Refused("unknown_operation", f"unknown operation {msg.operation!r}", "operation")
    if msg.deadline_s is not None and not (math.isfinite(msg.deadline_s) and msg.deadline_s > 0):
        return Refused("invalid_field", "deadline_s must be a positive number of seconds", "deadline_s")
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
            payload=msg.payload,
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
            ev.WritebackRequested(
                at=now,
                writeback_id=new_id,
                operation=operation,
                payload=payload,
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
    for wb in _ordered(p):
        if wb.state in ("queued", "deferred"):
            out.append(ev.WritebackCancelled(at=now, writeback_id=wb.writeback_id))
        elif wb.state == "pending" and not wb.cancel_requested:
            out.append(ev.CancelRequested(at=now, writeback_id=wb.writeback_id, reason="offboard"))
    out.append(ev.OffboardRequested(at=now))
    return out


def _listed(p: Practice, msg: PracticeListed, now: datetime) -> list[ev.Event]:
    if p.offboarded:
        return []
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


# --- time ------------------------------------------------------------------------------------


def due_events(p: Practice, now: datetime, settings: CoreSettings = DEFAULT_SETTINGS) -> list[ev.Event]:
    """Timer-driven events due at ``now`` (deadlines, deferrals ending, late watches ending)."""
    out: list[ev.Event] = []
    for wb in _ordered(p):
        late = policy.past(wb.deadline_at, now)
        match wb.state:
            case "queued" | "deferred" if late:
                out.append(
                    ev.WritebackFailed(
                        at=now,
                        writeback_id=wb.writeback_id,
                        code="deadline_exceeded",
                        message="the deadline passed before Sikka accepted the writeback",
                        retryable=True,
                    )
                )
            case "deferred" if wb.retry_at is None or now >= wb.retry_at:
                out.append(ev.RetryScheduled(at=now, writeback_id=wb.writeback_id))
            case "unknown" if late:
                out.append(
                    ev.WritebackFailed(
                        at=now,
                        writeback_id=wb.writeback_id,
                        code="outcome_unknown",
                        message="the deadline passed while Sikka's answer was unknown; matching goes on for 7 days",
                        retryable=False,
                    )
                )
            case "pending" if late and not wb.cancel_requested:
                out.append(ev.CancelRequested(at=now, writeback_id=wb.writeback_id, reason="deadline"))
    for watch in p.late_watch.values():
        if now >= watch.failed_at + seconds(policy.LATE_WATCH_S) or watch.writeback_id not in p.payloads:
            out.append(ev.LateWatchEnded(at=now, writeback_id=watch.writeback_id, reason="expired"))
    return out


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
            next_check_at=policy.unknown_first_check_at(now, _anchor(wb), settings),
        )
        for wb in _ordered(p)
        if wb.state == "submitting"
    ]


# --- outcomes --------------------------------------------------------------------------------


def _code(outcome, default: str) -> str:
    return getattr(outcome, "code", "") or default


def _submit_outcome(p: Practice, msg: SubmitOutcome, now: datetime, settings: CoreSettings) -> list[ev.Event]:
    wb = p.writebacks.get(msg.writeback_id)
    if wb is None or wb.state != "submitting":
        return []  # stale or duplicated answer
    wid = wb.writeback_id
    outcome = msg.result.outcome
    match outcome:
        case oc.Ok(value=oc.WritebackAck() as ack) if ack.sikka_writeback_id:
            return [
                ev.WritebackSubmitted(
                    at=now,
                    writeback_id=wid,
                    sikka_writeback_id=ack.sikka_writeback_id,
                    next_check_at=policy.first_check_at(now),
                )
            ]
        case oc.ExpiredKey() | oc.InvalidKey():
            return [ev.SubmitRefused(at=now, writeback_id=wid, code=outcome.code)]
        case oc.Unauthorized():
            return [
                ev.SubmitRefused(at=now, writeback_id=wid, code=outcome.code),
                ev.SetupRequired(at=now, code=outcome.code, message=outcome.message),
            ]
        case oc.Rejected():
            return [
                ev.WritebackRejected(
                    at=now,
                    writeback_id=wid,
                    code=outcome.code or f"http_{outcome.status}",
                    message=outcome.message,
                    http_status=outcome.status,
                )
            ]
        case oc.RateLimited():
            reset = outcome.reset_s if outcome.reset_s is not None else msg.result.rate.reset_s
            return [
                ev.WritebackDeferred(
                    at=now, writeback_id=wid, reason="rate_limited", retry_at=policy.rate_limited_retry_at(now, reset)
                )
            ]
        case oc.DailyQuota():
            retry_at = policy.daily_quota_retry_at(now, p.time_zone, settings.quiet_hours)
            return [ev.WritebackDeferred(at=now, writeback_id=wid, reason="daily_quota", retry_at=retry_at)]
        case oc.SpuOffline():
            retry_at = now + seconds(policy.spu_offline_backoff(p.spu_offline_streak))
            return [ev.WritebackDeferred(at=now, writeback_id=wid, reason="spu_offline", retry_at=retry_at)]
        case oc.TransportFailure(kind="connect"):
            retry_at = now + seconds(policy.CONNECT_BACKOFF_S)
            return [ev.WritebackDeferred(at=now, writeback_id=wid, reason="connect_failed", retry_at=retry_at)]
    # 5xx, timeout, cut connection, an unusable 2xx: it may have been created
    match outcome:
        case oc.ServerError():
            reason = f"http_{outcome.status}" + (f" {outcome.code}" if outcome.code else "")
        case oc.TransportFailure():
            reason = outcome.kind
        case oc.Unknown():
            reason = outcome.reason
        case _:
            reason = "unparseable_acknowledgement"
    return [
        ev.OutcomeUnknown(
            at=now,
            writeback_id=wid,
            reason=reason,
            next_check_at=policy.unknown_first_check_at(now, _anchor(wb), settings),
        )
    ]


def _apply_remote(wb: Writeback, remote: rc.Remote, now: datetime, *, due: bool) -> list[ev.Event]:
    """Events for a pending writeback given what Sikka says about it."""
    wid = wb.writeback_id
    match remote.kind:
        case "pending":
            if not due and not wb.status_read_due:
                return []
            return [
                ev.StatusChecked(
                    at=now,
                    writeback_id=wid,
                    result="pending",
                    next_check_at=policy.next_poll_at(wb.submitted_at or _anchor(wb), now),
                )
            ]
        case "completed" | "failed" | "unclear" if rc.needs_status_read(wb.operation, remote) and (
            wb.last_result != "status_404" or remote.kind == "unclear"
        ):
            return [ev.StatusChecked(at=now, writeback_id=wid, result=remote.kind, read_status=True, next_check_at=now)]
        case "completed":
            return [
                ev.WritebackCompleted(
                    at=now, writeback_id=wid, created_id=remote.created_id, sikka_completed_time=remote.completed_time
                )
            ]
        case "failed":
            return [
                ev.WritebackFailed(
                    at=now,
                    writeback_id=wid,
                    code="sikka_error",
                    message=remote.message,
                    retryable=False,
                    sikka_completed_time=remote.completed_time,
                )
            ]
        case "deleted":
            if wb.cancel_requested and wb.cancel_reason == "deadline":
                return [
                    ev.WritebackFailed(
                        at=now,
                        writeback_id=wid,
                        code="deadline_exceeded",
                        message="deleted at Sikka after the deadline passed",
                        retryable=True,
                    )
                ]
            if wb.cancel_requested:
                return [ev.WritebackCancelled(at=now, writeback_id=wid)]
            return [
                ev.WritebackFailed(
                    at=now,
                    writeback_id=wid,
                    code="deleted_at_sikka",
                    message="deleted at Sikka without our asking; nothing was written",
                    retryable=True,
                )
            ]
    return [ev.StatusChecked(at=now, writeback_id=wid, result=remote.kind, read_status=True, next_check_at=now)]


def _status_outcome(p: Practice, msg: StatusOutcome, now: datetime) -> list[ev.Event]:
    wb = p.writebacks.get(msg.writeback_id)
    if wb is None or wb.state != "pending":
        return []
    outcome = msg.result.outcome
    match outcome:
        case oc.Ok(value=oc.WritebackStatus() as item):
            return _apply_remote(wb, rc.decode_status(item), now, due=True)
        case oc.Ok() | oc.Rejected(status=404):
            # unknown to writeback_status: stays pending; the list checks the id soon
            return [
                ev.StatusChecked(
                    at=now,
                    writeback_id=wb.writeback_id,
                    result="status_404",
                    next_check_at=policy.next_poll_at(wb.submitted_at or _anchor(wb), now),
                )
            ]
        case oc.ExpiredKey() | oc.InvalidKey():
            return [ev.KeyRefused(at=now, code=outcome.code)]
        case oc.Unauthorized():
            return [ev.SetupRequired(at=now, code=outcome.code, message=outcome.message)]
    retry = now + seconds(policy.STATUS_ERROR_BACKOFF_S)
    if isinstance(outcome, oc.RateLimited):
        retry = policy.rate_limited_retry_at(now, outcome.reset_s)
    return [
        ev.StatusChecked(
            at=now, writeback_id=wb.writeback_id, result="", read_status=wb.status_read_due, next_check_at=retry
        )
    ]


def _claimed(p: Practice, msg: ListOutcome) -> set[str]:
    claimed = set(p.recent_sikka_ids) | set(msg.claimed_ids)
    claimed.update(wb.sikka_writeback_id for wb in p.writebacks.values() if wb.sikka_writeback_id)
    return claimed


def _list_outcome(p: Practice, msg: ListOutcome, now: datetime, settings: CoreSettings) -> list[ev.Event]:
    fetched = msg.fetched_at
    out: list[ev.Event] = []
    if msg.failed:
        for t in list_targets(p):
            if policy.covers(msg.ranges, t.anchor) and (t.next_check_at or now) <= now:
                retry = now + seconds(policy.STATUS_ERROR_BACKOFF_S)
                out.append(ev.StatusChecked(at=now, writeback_id=t.writeback_id, next_check_at=retry))
        return out
    by_id = {item.id: item for item in msg.items}
    claimed = _claimed(p, msg)
    verdicts = _assign_unresolved(p, msg, claimed)
    for wb in _ordered(p):
        if not policy.covers(msg.ranges, _anchor(wb)):
            continue
        due = policy.check_due(wb.next_check_at, fetched, wb.submitted_at or _anchor(wb))
        if wb.state == "pending" and wb.sikka_writeback_id and not wb.status_read_due:
            item = by_id.get(wb.sikka_writeback_id)
            if item is None:
                if due and msg.complete:
                    nxt = policy.next_poll_at(wb.submitted_at or _anchor(wb), now)
                    out.append(ev.StatusChecked(at=now, writeback_id=wb.writeback_id, result="missing", next_check_at=nxt))
                continue
            if item.office_id.strip().lower() != p.office_id.strip().lower():
                continue
            out.extend(_apply_remote(wb, rc.decode_list_item(item), now, due=due))
        elif wb.state == "unknown":
            out.extend(_reconcile_unknown(p, wb, msg, now, due, verdicts, by_id, settings))
    for watch in p.late_watch.values():
        if watch.writeback_id not in verdicts:
            continue
        verdict = verdicts[watch.writeback_id]
        due = watch.next_check_at is None or watch.next_check_at <= fetched
        proven = msg.complete and fetched >= policy.proof_at(watch.attempted_at, settings)
        if verdict is not None and verdict != rc.AMBIGUOUS:
            item = by_id[verdict]
            out.append(
                ev.LateOutcomeFound(at=now, writeback_id=watch.writeback_id, sikka_writeback_id=item.id, result=item.result)
            )
        elif verdict is None and proven:
            out.append(ev.LateWatchEnded(at=now, writeback_id=watch.writeback_id, reason="proven_absent"))
        elif due:
            result = "ambiguous" if verdict == rc.AMBIGUOUS else "not_found"
            nxt = now + seconds(policy.LATE_WATCH_CHECK_S)
            out.append(ev.StatusChecked(at=now, writeback_id=watch.writeback_id, result=result, next_check_at=nxt))
    return out


def _assign_unresolved(p: Practice, msg: ListOutcome, claimed: set[str]) -> dict[str, str | None]:
    """Candidates of every unresolved writeback (unknown, or failed outcome_unknown and still
    watched) that this list covers and whose body we have, assigned jointly (``rc.assign``):
    identical ones are paired with Sikka's items in send order (attempt start, then request
    order; a late watch no longer knows its request order), items in ``command_time`` order."""
    claims: dict[str, frozenset[str]] = {}
    sent: dict[str, tuple[datetime, int | None]] = {}
    unresolved = [(wb.writeback_id, wb.operation, _anchor(wb), wb.seq) for wb in _ordered(p) if wb.state == "unknown"]
    unresolved += [
        (w.writeback_id, w.operation, w.attempted_at, None)
        for w in p.late_watch.values()
        if w.writeback_id in p.payloads
    ]
    for wid, operation, attempted, seq in unresolved:
        sent[wid] = (attempted, seq)
        body = msg.bodies.get(wid)
        if body is None or not policy.covers(msg.ranges, attempted):
            continue
        found = rc.candidates(
            operation=operation,
            office_id=p.office_id,
            payload=body,
            attempted_at=attempted,
            items=msg.items,
            claimed=claimed,
        )
        if found is not None:
            claims[wid] = frozenset(item.id for item in found)
    written = {item.id: rc.command_datetime(item) for item in msg.items}
    return rc.assign(claims, sent=sent, written=written)


def _reconcile_unknown(
    p: Practice,
    wb: Writeback,
    msg: ListOutcome,
    now: datetime,
    due: bool,
    verdicts: dict[str, str | None],
    by_id: dict,
    settings: CoreSettings,
) -> list[ev.Event]:
    wid = wb.writeback_id
    attempted = _anchor(wb)
    if wid not in verdicts:  # no body given (or an unusable payload): cannot match
        if not due:
            return []
        nxt = now + seconds(policy.AMBIGUOUS_RECHECK_S)
        return [ev.StatusChecked(at=now, writeback_id=wid, result="no_body", next_check_at=nxt)]
    verdict = verdicts[wid]
    if verdict is not None and verdict != rc.AMBIGUOUS:
        item = by_id[verdict]
        reconciled = ev.WritebackReconciled(
            at=now,
            writeback_id=wid,
            sikka_writeback_id=item.id,
            next_check_at=policy.next_poll_at(attempted, now),
        )
        after = evolve(p, reconciled).writebacks[wid]
        remote = rc.decode_list_item(item)
        return [reconciled] + ([] if remote.kind == "pending" else _apply_remote(after, remote, now, due=True))
    if verdict is None and msg.complete and msg.fetched_at >= policy.proof_at(attempted, settings):
        out: list[ev.Event] = [ev.ProvenAbsent(at=now, writeback_id=wid)]
        if wb.cancel_requested:
            out.append(ev.WritebackCancelled(at=now, writeback_id=wid))
        return out
    if verdict == rc.AMBIGUOUS:
        if wb.ambiguous and not due:
            return []
        nxt = now + seconds(policy.AMBIGUOUS_RECHECK_S)
        return [ev.StatusChecked(at=now, writeback_id=wid, result="ambiguous", next_check_at=nxt)]
    if not due:
        return []
    nxt = policy.unknown_next_check_at(now, attempted, wb.unknown_since or now, settings)
    return [ev.StatusChecked(at=now, writeback_id=wid, result="not_found", next_check_at=nxt)]


def _refresh_outcome(p: Practice, msg: RefreshOutcome, now: datetime) -> list[ev.Event]:
    if p.offboarded:
        return []
    outcome = msg.result.outcome
    match outcome:
        case oc.Ok(value=oc.TokenGrant() as grant):
            return [ev.TokenRefreshed(at=now, expires_at=grant.expires_at, grant=msg.grant)]
        case oc.Ok() if msg.result.key_expires_at is not None:
            return [ev.TokenRefreshed(at=now, expires_at=msg.result.key_expires_at, grant=msg.grant)]
        case oc.Unauthorized() if msg.grant != "refresh_key" or outcome.code == "API2007":
            # the secret key refused, or the practice de-authorized the app (API2007)
            return [ev.SetupRequired(at=now, code=outcome.code, message=outcome.message)]
        case oc.Unauthorized() | oc.ExpiredKey() | oc.InvalidKey() | oc.Rejected():
            code = _code(outcome, "rejected")
            # a refresh key refused (401 API2003 "Refresh key is invalid or deleted", 4xx): try the secret key
            if msg.grant == "refresh_key":
                return [
                    ev.TokenRefreshFailed(
                        at=now, code=code, message=outcome.message, retry_at=now, next_grant="request_key"
                    )
                ]
            return [ev.SetupRequired(at=now, code=code, message=outcome.message)]
        case oc.RateLimited():
            retry = policy.rate_limited_retry_at(now, outcome.reset_s)
        case oc.DailyQuota():
            retry = policy.next_utc_midnight(now)
        case _:
            retry = now + seconds(policy.refresh_backoff(p.refresh_failures + 1))
    return [ev.TokenRefreshFailed(at=now, code=_code(outcome, type(outcome).__name__), retry_at=retry)]


def _key_check_outcome(p: Practice, msg: KeyCheckOutcome, now: datetime) -> list[ev.Event]:
    if p.offboarded or p.setup_required:
        return []
    outcome = msg.result.outcome
    match outcome:
        case oc.Unauthorized():
            return [ev.SetupRequired(at=now, code=outcome.code, message=outcome.message)]
        case oc.ExpiredKey() | oc.InvalidKey():
            return [] if p.token_stale else [ev.KeyRefused(at=now, code=outcome.code)]
    return []


def _delete_outcome(p: Practice, msg: DeleteOutcome, now: datetime) -> list[ev.Event]:
    wb = p.writebacks.get(msg.writeback_id)
    if wb is None or wb.state != "pending" or not wb.cancel_requested or wb.delete_answered:
        return []
    outcome = msg.result.outcome
    match outcome:
        case oc.Ok():
            return [ev.DeleteAnswered(at=now, writeback_id=wb.writeback_id, deleted=True)]
        case oc.Rejected():
            return [ev.DeleteAnswered(at=now, writeback_id=wb.writeback_id, deleted=False, code=outcome.code)]
    attempt = wb.delete_attempts + 1
    return [
        ev.DeleteFailed(
            at=now,
            writeback_id=wb.writeback_id,
            code=_code(outcome, type(outcome).__name__),
            attempt=attempt,
            retry_at=now + seconds(policy.delete_backoff(attempt)),
        )
    ]


# --- next_step -------------------------------------------------------------------------------


def next_step(
    p: Practice,
    now: datetime,
    budget=None,
    settings: CoreSettings = DEFAULT_SETTINGS,
    *,
    jitter: float | None = None,
    last_keyed_call_at: datetime | None = None,
) -> AnyStep:
    """The one thing the practice's actor should do next (see the module docstring).

    ``last_keyed_call_at``: when the shell last used the practice's key (any call); after
    ``key_check_interval`` of quiet it asks for a ``KeyCheck`` so a revoked key is noticed
    within that interval plus a call. ``None``: no idle checks.
    """
    budget = budget if budget is not None else Unlimited()
    if p.offboarded:
        return Sleep(until=None)
    due = due_events(p, now, settings)
    if due:
        return Record(events=tuple(due))
    t = now.timestamp()
    wake: list[datetime] = []

    def budget_wait(lane: Lane) -> bool:
        at = budget.allowed_at(lane, t)
        if at <= t:
            return False
        wake.append(datetime.fromtimestamp(at, policy.UTC))
        return True

    writebacks = _ordered(p)
    if p.offboarding and not any(wb.state in ("pending", "submitting", "unknown") for wb in writebacks):
        return Offboard()

    refresh_at = refresh_due_at(p, jitter)
    if refresh_at is not None:
        if refresh_at <= now:
            if not budget_wait(Lane.TOKEN):
                return Refresh(grant=refresh_grant(p))
        else:
            wake.append(refresh_at)

    for wb in writebacks:
        if wb.state == "pending" and wb.cancel_requested and not wb.delete_answered and wb.sikka_writeback_id:
            if wb.delete_retry_at is None or wb.delete_retry_at <= now:
                return Cancel(
                    writeback_id=wb.writeback_id,
                    sikka_writeback_id=wb.sikka_writeback_id,
                    attempt=wb.delete_attempts + 1,
                )
            wake.append(wb.delete_retry_at)

    key_ok = key_usable(p, now)
    for wb in writebacks:
        if wb.state == "pending" and wb.status_read_due and wb.sikka_writeback_id:
            at = wb.next_check_at or now
            if at > now:
                wake.append(at)
            elif key_ok and not budget_wait(Lane.STATUS):
                return Poll(writeback_id=wb.writeback_id, sikka_writeback_id=wb.sikka_writeback_id)

    grace = seconds(settings.list_fallback_grace_s)
    overdue = []
    for target in list_targets(p):
        at = (target.next_check_at or now) + grace
        if at <= now:
            overdue.append(target)
        else:
            wake.append(at)
    if overdue:
        dates = set()
        for target in overdue:
            lo, hi = policy.target_dates(target.anchor)
            dates.update(lo + timedelta(days=i) for i in range((hi - lo).days + 1))
        return Reconcile(writeback_ids=tuple(t.writeback_id for t in overdue), ranges=policy.date_ranges(dates))

    if last_keyed_call_at is not None and key_ok and not p.offboarding:
        check_at = last_keyed_call_at + seconds(settings.key_check_interval)
        if check_at <= now:
            if not budget_wait(Lane.BACKGROUND):
                return KeyCheck()
        else:
            wake.append(check_at)

    queued = [wb for wb in writebacks if wb.state == "queued"]
    if queued:
        if can_submit(p, now):
            if not budget_wait(Lane.SUBMIT):
                head = queued[0]
                attempt = head.attempts + 1
                return Submit(
                    writeback_id=head.writeback_id,
                    operation=head.operation,
                    attempt=attempt,
                    attempted=ev.SubmitAttempted(at=now, writeback_id=head.writeback_id, attempt=attempt),
                )
        elif p.submit_hold_until is not None and p.submit_hold_until > now:
            wake.append(p.submit_hold_until)

    for wb in writebacks:
        if wb.state in ("queued", "deferred", "unknown", "pending") and not (
            wb.state == "pending" and wb.cancel_requested
        ):
            wake.append(wb.deadline_at)
        if wb.state == "deferred" and wb.retry_at is not None:
            wake.append(wb.retry_at)
    for watch in p.late_watch.values():
        wake.append(watch.failed_at + seconds(policy.LATE_WATCH_S))
    future = [w for w in wake if w > now]
    return Sleep(until=min(future) if future else None)


# --- status helpers for the shell ------------------------------------------------------------


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    severity: str
    message: str
    since: datetime | None = None
    writeback_id: str | None = None


def conditions(p: Practice, now: datetime) -> list[str]:
    """``PracticeStatus.conditions``."""
    out = []
    hold = p.submit_hold_until is not None and p.submit_hold_until > now
    if hold and p.submit_hold_reason == "spu_offline":
        out.append("spu_offline")
    if hold and p.submit_hold_reason == "daily_quota":
        out.append("quota_exhausted")
    if hold and p.submit_hold_reason == "rate_limited":
        out.append("rate_limited")
    return out


def alerts(p: Practice, now: datetime, *, jitter: float | None = None) -> list[Alert]:
    """The writeback and token alerts that hold for this practice at ``now`` (interface §4)."""
    out: list[Alert] = []
    if p.state == "setup_required":
        out.append(Alert(kind="setup_required", severity="critical", message=p.last_error or "setup required"))
    if p.token_expires_at is not None and not p.setup_required:
        refresh_at = refresh_due_at(p, jitter)
        overdue = refresh_at is not None and now - refresh_at > timedelta(minutes=5) and refresh_at != _EPOCH
        if overdue or p.token_expires_at - now < timedelta(minutes=30):
            out.append(Alert(kind="token_expiring", severity="warning", message="the request key expires soon"))
    if p.refresh_failures:
        out.append(
            Alert(kind="token_refresh_failed", severity="critical", message=p.last_error or "token refresh failed")
        )
    for c, kind, severity in (("spu_offline", "spu_offline", "warning"), ("quota_exhausted", "quota_exhausted", "critical")):
        if c in conditions(p, now):
            out.append(Alert(kind=kind, severity=severity, message=c.replace("_", " ")))
    for wb in _ordered(p):
        if wb.state == "unknown" and (
            wb.ambiguous or (wb.unknown_since is not None and now - wb.unknown_since > timedelta(minutes=10))
        ):
            out.append(
                Alert(
                    kind="writeback_unknown",
                    severity="critical",
                    message="ambiguous match at Sikka" if wb.ambiguous else "outcome unknown for over 10 minutes",
                    since=wb.unknown_since,
                    writeback_id=wb.writeback_id,
                )
            )
        if wb.state == "pending" and wb.submitted_at is not None and now - wb.submitted_at > timedelta(minutes=30):
            out.append(
                Alert(
                    kind="writeback_stuck",
                    severity="warning",
                    message="pending at Sikka for over 30 minutes",
                    since=wb.submitted_at,
                    writeback_id=wb.writeback_id,
                )
            )
        if wb.delete_attempts >= policy.DELETE_ALERT_AFTER:
            out.append(
                Alert(
                    kind="writeback_stuck",
                    severity="warning",
                    message=f"DELETE at Sikka failed {wb.delete_attempts} times",
                    writeback_id=wb.writeback_id,
                )
            )
    return out


def apply(p: Practice, decision: Decision) -> Practice:
    """Fold a decision's events into ``p`` (a convenience for tests and the shell)."""
    if isinstance(decision, list):
        for e in decision:
            p = evolve(p, e)
    return p

