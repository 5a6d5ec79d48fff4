"""The event vocabulary: everything that happens to a practice and its writebacks.

One stream per practice, ``practice-{office_id}``; its writebacks' events live in the same stream,
so one actor is the single writer of everything it decides on. Events are msgspec structs in one
tagged union (``type`` is the snake-case class name) and are the only thing the log stores.

Rules that keep stored events readable as the schema grows (msgspec schema evolution):
- a new field always has a default; never reorder, rename or retype a field;
- a changed meaning gets a new tag, and the fold handles both;
- never ``forbid_unknown_fields`` here (an older binary must read a newer log).

Secrets never appear in an event: a token refresh records only the expiry. A writeback payload
is patient data: ``WritebackRequested.payload`` holds it encrypted with a key of its own
(see ``store.credentials``), so destroying that key purges it without editing the log.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Union, get_args

import msgspec


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type", tag=_snake):
    """Base: every event carries the wall-clock time (UTC) at which it was decided."""

    at: datetime


# --- practice lifecycle --------------------------------------------------------------------


class PracticeRegistered(Event, frozen=True, kw_only=True):
    """Onboarding found the practice in ``authorized_practices`` for the first time."""

    office_id: str
    practice_name: str = ""
    practice_ids: tuple[str, ...] = ()
    time_zone: str | None = None


class PracticeUpdated(Event, frozen=True, kw_only=True):
    """Onboarding saw changed details (name, practice ids, time zone)."""

    practice_name: str = ""
    practice_ids: tuple[str, ...] = ()
    time_zone: str | None = None


class PracticeDeauthorized(Event, frozen=True, kw_only=True):
    """The practice left ``authorized_practices`` or its keys answer 401 API2007."""

    reason: str = ""


class PracticeReauthorized(Event, frozen=True, kw_only=True):
    """A de-authorized practice is listed again; its actor may get a new key."""


class TokenRefreshed(Event, frozen=True, kw_only=True):
    """A new request key was obtained (never the key itself: only its expiry and the grant)."""

    expires_at: datetime
    grant: str = "refresh_key"  # "request_key" | "refresh_key"


class TokenRefreshFailed(Event, frozen=True, kw_only=True):
    """A grant failed; ``code`` is Sikka's error code or a transport class."""

    code: str
    message: str = ""
    retry_at: datetime | None = None  # when the next grant may be tried (backoff)
    next_grant: str | None = None  # "request_key" after the refresh key itself was refused


class TokenRefreshRequested(Event, frozen=True, kw_only=True):
    """Operator asked for a refresh now (``refresh-token``); bypasses the failure backoff."""


class KeyRefused(Event, frozen=True, kw_only=True):
    """A keyed call (status read, …) answered API1025/API1004: the key must be refreshed first."""

    code: str


class SetupRequired(Event, frozen=True, kw_only=True):
    """No usable key can be obtained: an operator (or a re-authorization) must act."""

    code: str
    message: str = ""


class PracticePaused(Event, frozen=True, kw_only=True):
    """Operator pause: nothing new is sent; pending writebacks are still polled."""


class PracticeResumed(Event, frozen=True, kw_only=True):
    """Operator resume."""


class PracticeParked(Event, frozen=True, kw_only=True):
    """The supervisor stopped restarting the actor after too many crashes, until ``until``."""

    until: datetime
    error: str = ""


class PracticeUnparked(Event, frozen=True, kw_only=True):
    """The parking cool-down ended and the actor runs again."""


class OffboardRequested(Event, frozen=True, kw_only=True):
    """``offboard`` accepted: queued/deferred cancelled, pending ones cancelled at Sikka first."""


class PracticeOffboarded(Event, frozen=True, kw_only=True):
    """Keys deleted at Sikka, credentials destroyed and payloads shredded; the stream is closed
    until an operator brings the practice back (``PracticeReinstated``)."""


class PracticeReinstated(Event, frozen=True, kw_only=True):
    """An operator named an offboarded practice that Sikka still lists (``onboard --office``): it
    is served again and gets new keys through the authorization flow (the request-key grant)."""

    practice_name: str = ""
    practice_ids: tuple[str, ...] = ()
    time_zone: str | None = None


# --- writeback lifecycle (interface section 4) ---------------------------------------------


class WritebackRequested(Event, frozen=True, kw_only=True):
    """Accepted request → ``queued``. ``payload`` is the encrypted JSON payload: the core leaves
    it empty and the commit path (``actors.runtime.commit``) seals it before the append."""

    writeback_id: str
    operation: str
    deadline_at: datetime
    payload: str = ""
    idempotency_key: str | None = None
    retry_of: str | None = None
    payload_digest: str = ""  # digest of the plaintext payload, for idempotency comparisons


class SubmitAttempted(Event, frozen=True, kw_only=True):
    """``queued`` → ``submitting``: recorded before the request leaves."""

    writeback_id: str
    attempt: int


class WritebackSubmitted(Event, frozen=True, kw_only=True):
    """``submitting`` → ``pending``: Sikka acknowledged with its writeback id."""

    writeback_id: str
    sikka_writeback_id: str
    next_check_at: datetime | None = None  # first confirmation check (about 2 s later)


class SubmitRefused(Event, frozen=True, kw_only=True):
    """``submitting`` → ``queued``: the key was refused, nothing was created (not an attempt)."""

    writeback_id: str
    code: str


class WritebackRejected(Event, frozen=True, kw_only=True):
    """``submitting`` → ``failed`` (not retryable): Sikka refused the input."""

    writeback_id: str
    code: str
    message: str = ""
    http_status: int = 400
    checks: int = 0  # as ``WritebackCompleted.checks`` (checks made before a resubmission)


class WritebackDeferred(Event, frozen=True, kw_only=True):
    """``submitting`` → ``deferred``: answered before anything was accepted (429, 412, quota)."""

    writeback_id: str
    reason: str
    retry_at: datetime


class OutcomeUnknown(Event, frozen=True, kw_only=True):
    """``submitting`` → ``unknown``: 5xx, timeout, cut connection or crash after sending."""

    writeback_id: str
    reason: str
    next_check_at: datetime | None = None  # first reconciliation check


class WritebackReconciled(Event, frozen=True, kw_only=True):
    """``unknown`` → ``pending``: found in ``GET /writebacks``."""

    writeback_id: str
    sikka_writeback_id: str
    next_check_at: datetime | None = None


class ProvenAbsent(Event, frozen=True, kw_only=True):
    """``unknown`` → ``queued``: Sikka's list for the attempt's range proves it was never created."""

    writeback_id: str


class RetryScheduled(Event, frozen=True, kw_only=True):
    """``deferred`` → ``queued``: the backoff elapsed (or quiet hours began)."""

    writeback_id: str


class StatusChecked(Event, frozen=True, kw_only=True):
    """A status check of an open writeback that did not end it but changed something (Sikka's
    result, an error, a status read becoming due), or the first for ``CHECK_RECORD_INTERVAL_S``
    (``actors.core.checks``). ``checks``: the writeback's checks so far, this one included
    (0 in events written before that count existed: each stood for one check)."""

    writeback_id: str
    next_check_at: datetime | None = None
    result: str = ""  # Sikka's (pending, completed, …) or ours (missing, not_found, ambiguous, error, …)
    read_status: bool = False  # a ``writeback_status`` read is due (created_id, error detail, after DELETE)
    checks: int = 0


class CheckNoted(StatusChecked, frozen=True, kw_only=True):
    """Transient: a status check that changed nothing. The owner's actor folds it (the writeback's
    next check moves on, ``checks`` counts it), the log never stores it; the count reaches the log
    with the writeback's next recorded event (``actors.core.checks``)."""


class StatusReadPlanned(Event, frozen=True, kw_only=True):
    """Transient: the app-level planner chose a ``writeback_status`` read (on the practice's own
    budget) as the pending writeback's next check, instead of a list round. Never stored."""

    writeback_id: str


class CancelRequested(Event, frozen=True, kw_only=True):
    """Cancel (or deadline) of a ``pending``/``unknown`` writeback: DELETE at Sikka follows."""

    writeback_id: str
    reason: str = "cancel"  # "cancel" | "deadline" | "offboard"


class DeleteAnswered(Event, frozen=True, kw_only=True):
    """Sikka answered our ``DELETE /writebacks?id=``; a status read decides what happened."""

    writeback_id: str
    deleted: bool = True  # False: Sikka refused (e.g. no longer pending)
    code: str = ""


class DeleteFailed(Event, frozen=True, kw_only=True):
    """The DELETE failed or timed out: still ``pending``, retried at ``retry_at`` (alert after 5)."""

    writeback_id: str
    code: str
    attempt: int
    retry_at: datetime


class WritebackCompleted(Event, frozen=True, kw_only=True):
    """→ ``completed``: Sikka reports it done."""

    writeback_id: str
    created_id: str | None = None
    sikka_completed_time: str | None = None
    checks: int = 0  # the writeback's checks in all (0: no change; see ``StatusChecked.checks``)


class WritebackFailed(Event, frozen=True, kw_only=True):
    """→ ``failed`` with a code (Sikka's, or ours: deadline_exceeded, outcome_unknown, …)."""

    writeback_id: str
    code: str
    message: str = ""
    retryable: bool = False
    sikka_completed_time: str | None = None
    checks: int = 0  # as ``WritebackCompleted.checks``


class WritebackCancelled(Event, frozen=True, kw_only=True):
    """→ ``cancelled``."""

    writeback_id: str
    checks: int = 0  # as ``WritebackCompleted.checks``


ENDINGS = (WritebackCompleted, WritebackFailed, WritebackRejected, WritebackCancelled)  # each carries ``checks``


class LateOutcomeFound(Event, frozen=True, kw_only=True):
    """A writeback failed as ``outcome_unknown`` was found at Sikka after all (alerted)."""

    writeback_id: str
    sikka_writeback_id: str
    result: str = ""  # the list item's result when found


class LateWatchEnded(Event, frozen=True, kw_only=True):
    """Matching of an ``outcome_unknown`` failure stopped: 7 days passed, or proven absent."""

    writeback_id: str
    reason: str = "expired"  # "expired" | "proven_absent"


class DuplicateFound(Event, frozen=True, kw_only=True):
    """The attempt ``attempt`` of a writeback, proven absent and sent again, reached Sikka after
    all (held somewhere past the proof window): its record ``sikka_writeback_id`` is ``result``
    there (``pending``: it is deleted at Sikka next; see ``actors.core.duplicates``)."""

    writeback_id: str
    attempt: int
    sikka_writeback_id: str
    result: str = ""


class DuplicateDeleteTried(Event, frozen=True, kw_only=True):
    """The DELETE of a late original was sent: Sikka answered (``retry_at`` None: the list tells
    what became of it, deleted or written meanwhile), or it failed or timed out (retried then)."""

    writeback_id: str
    attempt: int
    code: str
    tries: int
    retry_at: datetime | None = None


class DuplicateSettled(Event, frozen=True, kw_only=True):
    """The watch over a proven-absent attempt ended: ``deleted`` (its late original removed at
    Sikka while pending), ``written`` (two records at Sikka: ``sikka_writeback_id`` the late one,
    ``kept_sikka_writeback_id`` the writeback's own; ``writeback_duplicate`` alerts),
    ``not_written`` (it failed at Sikka), ``expired`` (7 days, nothing found)."""

    writeback_id: str
    attempt: int
    outcome: str
    sikka_writeback_id: str = ""
    kept_sikka_writeback_id: str = ""


class PayloadPurged(Event, frozen=True, kw_only=True):
    """The payload's key was destroyed (retention or offboarding); the ciphertext is now noise."""

    writeback_id: str


AnyEvent = Union[
    PracticeRegistered,
    PracticeUpdated,
    PracticeDeauthorized,
    PracticeReauthorized,
    TokenRefreshed,
    TokenRefreshFailed,
    TokenRefreshRequested,
    KeyRefused,
    SetupRequired,
    PracticePaused,
    PracticeResumed,
    PracticeParked,
    PracticeUnparked,
    OffboardRequested,
    PracticeOffboarded,
    PracticeReinstated,
    WritebackRequested,
    SubmitAttempted,
    WritebackSubmitted,
    SubmitRefused,
    WritebackRejected,
    WritebackDeferred,
    OutcomeUnknown,
    WritebackReconciled,
    ProvenAbsent,
    RetryScheduled,
    StatusChecked,
    CancelRequested,
    DeleteAnswered,
    DeleteFailed,
    WritebackCompleted,
    WritebackFailed,
    WritebackCancelled,
    LateOutcomeFound,
    LateWatchEnded,
    DuplicateFound,
    DuplicateDeleteTried,
    DuplicateSettled,
    PayloadPurged,
]

EVENT_TYPES: tuple[type[Event], ...] = get_args(AnyEvent)
TRANSIENT: tuple[type[Event], ...] = (CheckNoted, StatusReadPlanned)
"""Folded by the owner's actor, never stored (not in ``AnyEvent``: the log could not read them back)."""
TYPE_NAMES: dict[type[Event], str] = {cls: _snake(cls.__name__) for cls in EVENT_TYPES + TRANSIENT}

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode(event: Event) -> bytes:
    """JSON bytes of one event, ``type`` tag included."""
    return _encoder.encode(event)


def decode(data: bytes | str) -> Event:
    """The event encoded in ``data`` (unknown fields ignored, new fields defaulted)."""
    return _decoder.decode(data)


def type_name(event: Event) -> str:
    return TYPE_NAMES[type(event)]


def recorded(event: Event) -> bool:
    """Whether ``event`` belongs in the log (transient events are only folded)."""
    return not isinstance(event, TRANSIENT)


def stream_id(office_id: str) -> str:
    return f"practice-{office_id}"


def office_of(stream: str) -> str:
    if not stream.startswith("practice-"):
        raise ValueError(f"not a practice stream: {stream!r}")
    return stream[len("practice-") :]
