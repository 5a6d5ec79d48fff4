"""What a handler reads from a request's query string and path, each value checked.

Every reader answers the value (or its default when the parameter is absent), or raises the
admin API's 400 ``bad_parameter`` naming the parameter; ``path_id`` refuses a path id holding a
character Sikka forbids in paths (400 ``invalid_field``). A repeated parameter counts by its
last value. No value may hold a control character (a NUL reaches no database, no Sikka call),
numbers are ASCII digits, and ``before`` is a writeback id (``actors.core.ids``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from actors.api.http import Request
from actors.api.router import ApiError
from actors.core.ids import is_writeback_id
from actors.core.operations import FORBIDDEN_PATH_CHARS


def values(request: Request, name: str) -> list[str]:
    """Every value of the parameter (none when absent); 400 if one holds a control character."""
    found = request.query.get(name, [])
    if any(not value.isprintable() for value in found):
        raise ApiError(400, "bad_parameter", f"{name} holds a control character", name)
    return found


def last(request: Request, name: str) -> str | None:
    """The parameter's last value, or ``None`` when absent."""
    found = values(request, name)
    return found[-1] if found else None


def int_parameter(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = last(request, name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be a whole number from {low} to {high}", name)
    return int(raw)


def seconds_parameter(request: Request, name: str, high: float) -> float:
    """A number of seconds from 0 to ``high`` (0 when absent)."""
    raw = last(request, name)
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be a number of seconds from 0 to {high:g}", name)
    return seconds


def date_parameter(request: Request, name: str) -> date | None:
    raw = last(request, name)
    if raw is None or raw == "":
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be a date yyyy-mm-dd", name) from None


def datetime_parameter(request: Request, name: str) -> datetime | None:
    """An ISO-8601 time; one without a zone is UTC."""
    raw = last(request, name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ApiError(400, "bad_parameter", f"{name} must be an ISO-8601 time", name) from None


def writeback_id_parameter(request: Request, name: str) -> str | None:
    """A writeback id (a UUID, as the supervisor makes them), or ``None`` when absent."""
    raw = last(request, name)
    if raw is not None and not is_writeback_id(raw):
        raise ApiError(400, "bad_parameter", f"{name} must be a writeback id (a UUID)", name)
    return raw


def path_id(value: str, field: str) -> None:
    """Refuse a path id Sikka could not take as a path segment."""
    if not value or any(c in FORBIDDEN_PATH_CHARS for c in value) or not value.isprintable():
        raise ApiError(400, "invalid_field", f"{field} holds a character Sikka forbids in paths", field)
