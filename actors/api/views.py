"""The admin API's response shapes (interface section 4), built from plain values.

``writeback_view`` is the ``Writeback`` object; ``practice_view`` is the ``PracticeStatus``
object, from the practice's folded state and the figures ``actors.api.access`` gathers for it
(from its running actor, or from the shared tables when it runs elsewhere); ``usage_view`` is
one practice's row of ``GET /usage`` (its actor's rate budget).
"""

from __future__ import annotations

from datetime import UTC, datetime

from actors.core.ratelimit import BudgetStats
from actors.core.state import Practice, Writeback


def writeback_view(wb: Writeback) -> dict:
    """The ``Writeback`` shape of interface section 4."""
    return {
        "writeback_id": wb.writeback_id,
        "office_id": wb.office_id,
        "operation": wb.operation,
        "state": wb.state,
        "idempotency_key": wb.idempotency_key,
        "retry_of": wb.retry_of,
        "retryable": wb.retryable,
        "sikka_writeback_id": wb.sikka_writeback_id,
        "created_id": wb.created_id,
        "error": {"code": wb.error.code, "message": wb.error.message} if wb.error else None,
        "requested_at": wb.requested_at,
        "submitted_at": wb.submitted_at,
        "completed_at": wb.completed_at,
        "sikka_completed_time": wb.sikka_completed_time,
        "deadline_at": wb.deadline_at,
        "attempts": wb.attempts,
        "checks": wb.checks,
        "next_check_at": wb.next_check_at,
    }


def rate_view(limit: int, used_last_60s: int, remaining: int) -> dict:
    return {"limit": limit, "used_last_60s": used_last_60s, "remaining": remaining}


def practice_view(
    practice: Practice, *, owner: str | None, rate: dict, writebacks: dict[str, int], conditions: list[str],
    restarts: int,
) -> dict:
    """The ``PracticeStatus`` shape of interface section 4."""
    return {
        "office_id": practice.office_id,
        "practice_name": practice.practice_name,
        "practice_ids": list(practice.practice_ids),
        "state": practice.state,
        "conditions": conditions,
        "owner": owner,
        "token_expires_at": practice.token_expires_at,
        "rate": rate,
        "writebacks": writebacks,
        "last_error": practice.last_error,
        "restarts": restarts,
    }


def usage_view(office_id: str, practice_name: str, budget: BudgetStats) -> dict:
    """One practice's row of ``GET /usage``."""
    return {
        "office_id": office_id,
        "practice_name": practice_name,
        "limit": budget.limit,
        "requests_used": budget.used_last_60s,
        "requests_remaining": budget.remaining,
        "percent_used": round(100 * budget.used_last_60s / budget.limit, 1) if budget.limit else 100.0,
        "window_start": datetime.fromtimestamp(budget.window_start, UTC) if budget.window_start else None,
        "server_remaining": budget.server_remaining,
        "server_reset_s": budget.server_reset_s,
        "requests_today": budget.requests_today,
    }
