"""What the pure core takes and gives: messages in, decisions and steps out.

- ``Message``: a command (what someone asked for: submit, cancel, pause, onboarding's listing,
  time passing) or an input (what a Sikka call came to). One msgspec tagged union (tag ``kind``);
  commands decode from JSON (``AnyCommand``), inputs are built in process by the shell.
- ``Decision``: what ``actors.core.decide.decide`` returns: the events to append, ``Refused``
  (an admin API error code, nothing recorded) or ``Duplicate`` (the request repeats one already
  accepted).
- ``Step``: what ``actors.core.schedule.next_step`` asks the shell to do next (``Submit``,
  ``Poll``, ``Reconcile``, ``Refresh``, ``Cancel``, ``KeyCheck``, ``Record``, ``Offboard``,
  ``Sleep``).

Pure: msgspec structs only.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Union

import msgspec

from actors.core import events as ev
from actors.core import outcomes as oc


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# --- commands and inputs (one tagged union) --------------------------------------------------


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag=_snake):
    """Base of every command and input."""


class RequestWriteback(Message, frozen=True, kw_only=True):
    """Queue a writeback whose fields the admin API validated (``actors.api.schemas``,
    ``actors.core.operations.normalize``). The payload itself never enters the core: it travels
    beside the command to the commit path (``actors.runtime.commit``), which seals it only once
    the core accepted the request; ``payload_digest`` (keyed) serves idempotency comparisons."""

    writeback_id: str
    operation: str
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
    secret key than the one stored; ``named``: an operator named it, ``onboard --office``, which
    brings an offboarded practice back)."""

    practice_name: str = ""
    practice_ids: tuple[str, ...] = ()
    time_zone: str | None = None
    secret_changed: bool = False
    named: bool = False


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


class CheckByStatus(Message, frozen=True, kw_only=True):
    """The app-level planner's choice for these pending writebacks: their next check is a
    ``writeback_status`` read on the practice's own budget, not a list round."""

    writeback_ids: tuple[str, ...]


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
    SubmitOutcome,
    StatusOutcome,
    ListOutcome,
    CheckByStatus,
    RefreshOutcome,
    DeleteOutcome,
    KeyCheckOutcome,
    OffboardOutcome,
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
    """Read ``writeback_status?id=`` (STATUS lane), feed ``StatusOutcome``: for ``created_id``,
    error detail, after a DELETE, or as a check the planner chose (``CheckByStatus``)."""

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
