"""The admin API's response bodies (interface section 4) as msgspec structs.

Every handler answers one of these types and ``/openapi.json`` publishes their JSON schemas
(``msgspec.json.schema_components``, ``actors.api.openapi``): the document and the answers come
from the same definitions and cannot drift. Enumerations (states, operations, alert kinds) are
``Literal`` types built from the core's own tables. ``writeback_view``, ``practice_view``,
``usage_view`` and ``alert_views`` build them from the core's state; ``Error`` is every
refusal's body (``actors.api.router.ApiError``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from actors.core import state
from actors.core.alerting import KINDS, SEVERITY
from actors.core.ids import OFFICE_ID, WRITEBACK_ID
from actors.core.operations import OPERATIONS, PATH_ID
from actors.core.ratelimit import BudgetStats
from actors.core.state import PRACTICE_STATES, WRITEBACK_STATES

OfficeId = Annotated[str, msgspec.Meta(pattern=f"^{OFFICE_ID.pattern}$", description="a practice's office id")]
WritebackId = Annotated[str, msgspec.Meta(pattern=f"^{WRITEBACK_ID.pattern}$", description="a writeback id (a UUID)")]
SikkaPathId = Annotated[
    str, msgspec.Meta(pattern=PATH_ID.pattern, description="Sikka's id: printable ASCII without spaces or : # ? / \\ % + =")
]
Operation = Literal[tuple(OPERATIONS)]  # type: ignore[valid-type]
WritebackState = Literal[WRITEBACK_STATES]  # type: ignore[valid-type]
PracticeState = Literal[PRACTICE_STATES]  # type: ignore[valid-type]
Condition = Literal["spu_offline", "quota_exhausted", "rate_limited"]
AlertKind = Literal[KINDS]  # type: ignore[valid-type]
Severity = Literal[tuple(sorted(set(SEVERITY.values())))]  # type: ignore[valid-type]
SikkaItem = dict[str, Any]  # as Sikka returns it (strings)
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]  # UTC, written with "Z"

ERROR_CODES = (
    "bad_json", "missing_field", "invalid_field", "unknown_field", "unknown_operation", "bad_parameter",
    "unauthorized", "unknown_practice", "unknown_writeback", "not_found", "method_not_allowed",
    "idempotency_conflict", "not_cancellable", "writebacks_in_flight", "too_large", "upstream_error",
    "practice_unavailable", "upstream_rate_limited", "upstream_quota", "upstream_spu_offline",
    "database_unavailable", "upstream_timeout", "internal_error",
)


class Error(msgspec.Struct):
    """Every refusal: a code, one sentence, and the field or parameter to blame (or null)."""

    error: Literal[ERROR_CODES]  # type: ignore[valid-type]
    detail: str
    field: str | None


class WritebackError(msgspec.Struct):
    code: str
    message: str


class Writeback(msgspec.Struct):
    """One writeback (its payload is never shown)."""

    writeback_id: WritebackId
    office_id: OfficeId
    operation: Operation
    state: WritebackState
    idempotency_key: str | None
    retry_of: WritebackId | None
    retryable: bool
    sikka_writeback_id: str | None
    created_id: str | None
    error: WritebackError | None
    requested_at: Timestamp
    submitted_at: Timestamp | None
    completed_at: Timestamp | None
    sikka_completed_time: str | None
    deadline_at: Timestamp
    attempts: int
    checks: int
    next_check_at: Timestamp | None


class Rate(msgspec.Struct):
    limit: int
    used_last_60s: int
    remaining: int


class WritebackCounts(msgspec.Struct):
    queued: int
    submitting: int
    pending: int
    deferred: int
    unknown: int
    completed: int
    failed: int
    cancelled: int


class PracticeStatus(msgspec.Struct):
    """One practice; ``offboarded`` is a state like the others (its endpoints answer 404)."""

    office_id: OfficeId
    practice_name: str
    practice_ids: list[str]
    state: PracticeState
    conditions: list[Condition]
    owner: str | None
    token_expires_at: Timestamp | None
    rate: Rate
    writebacks: WritebackCounts
    last_error: str | None
    restarts: int


class Practices(msgspec.Struct):
    practices: list[PracticeStatus]


class Writebacks(msgspec.Struct):
    writebacks: list[Writeback]


class Stats(msgspec.Struct):
    requested: int
    completed: int
    failed: int
    cancelled: int
    success_rate: float | None
    confirmation_p50_s: float | None
    confirmation_p95_s: float | None


class Retried(msgspec.Struct):
    retried: int
    writebacks: list[WritebackId]


class Items(msgspec.Struct):
    """Sikka's items as Sikka returns them, every page up to the limit."""

    items: list[SikkaItem]
    total: int


class Slots(msgspec.Struct):
    """Open slots: Sikka's own (``sikka``) or computed from the schedule and the bookings."""

    items: list[SikkaItem]
    source: Literal["sikka", "computed"]


class Usage(msgspec.Struct):
    office_id: OfficeId
    practice_name: str
    limit: int
    requests_used: int
    requests_remaining: int
    percent_used: float
    window_start: Timestamp | None
    server_remaining: int | None
    server_reset_s: float | None
    requests_today: int


class UsageList(msgspec.Struct):
    practices: list[Usage]


class Alert(msgspec.Struct):
    kind: AlertKind
    severity: Severity
    office_id: OfficeId | None
    message: str
    since: Timestamp


class Alerts(msgspec.Struct):
    alerts: list[Alert]


class Health(msgspec.Struct):
    status: Literal["ok"]
    practices: int
    version: str
    node: str


class Degraded(msgspec.Struct):
    status: Literal["degraded"]
    detail: str


class Onboarded(msgspec.Struct):
    office_id: OfficeId
    practice_name: str
    action: Literal["registered", "updated", "unchanged", "deauthorized", "offboarded"]


class OnboardReport(msgspec.Struct):
    practices: list[Onboarded]


class Accepted(msgspec.Struct):
    status: Literal["accepted"]


def writeback_view(wb: state.Writeback) -> Writeback:
    return Writeback(
        writeback_id=wb.writeback_id,
        office_id=wb.office_id,
        operation=wb.operation,
        state=wb.state,
        idempotency_key=wb.idempotency_key,
        retry_of=wb.retry_of,
        retryable=wb.retryable,
        sikka_writeback_id=wb.sikka_writeback_id,
        created_id=wb.created_id,
        error=WritebackError(wb.error.code, wb.error.message) if wb.error else None,
        requested_at=wb.requested_at,
        submitted_at=wb.submitted_at,
        completed_at=wb.completed_at,
        sikka_completed_time=wb.sikka_completed_time,
        deadline_at=wb.deadline_at,
        attempts=wb.attempts,
        checks=wb.checks,
        next_check_at=wb.next_check_at,
    )


def practice_view(
    practice: state.Practice, *, owner: str | None, rate: Rate, writebacks: dict[str, int], conditions: list[str],
    restarts: int,
) -> PracticeStatus:
    return PracticeStatus(
        office_id=practice.office_id,
        practice_name=practice.practice_name,
        practice_ids=list(practice.practice_ids),
        state=practice.state,
        conditions=conditions,
        owner=owner,
        token_expires_at=practice.token_expires_at,
        rate=rate,
        writebacks=WritebackCounts(**writebacks),
        last_error=practice.last_error,
        restarts=restarts,
    )


def usage_view(office_id: str, practice_name: str, budget: BudgetStats) -> Usage:
    """One practice's row of ``GET /usage``."""
    return Usage(
        office_id=office_id,
        practice_name=practice_name,
        limit=budget.limit,
        requests_used=budget.used_last_60s,
        requests_remaining=budget.remaining,
        percent_used=round(100 * budget.used_last_60s / budget.limit, 1) if budget.limit else 100.0,
        window_start=datetime.fromtimestamp(budget.window_start, UTC) if budget.window_start else None,
        server_remaining=budget.server_remaining,
        server_reset_s=budget.server_reset_s,
        requests_today=budget.requests_today,
    )


def alert_views(listing: list[dict]) -> Alerts:
    """``GET /alerts`` from the monitor's listing (``actors.core.alerting.listing``)."""
    return Alerts(alerts=msgspec.convert(listing, list[Alert]))
