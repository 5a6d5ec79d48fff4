"""What a Sikka call came to, as values (never exceptions): the contract between the HTTP client
(``actors.runtime.sikka``) and the pure core (``actors.core``). Pure; imports no I/O library.

Every call returns a ``Result``: the outcome class, the parsed value when it is ``Ok``, and the
rate-limit and key-expiry headers the response carried (for the rate budget and token schedule).

Outcome classes (Sikka codes per ``sikka-api.md`` section 3):

| class            | when                                                                  |
|------------------|-----------------------------------------------------------------------|
| Ok               | 2xx with a parseable body                                             |
| ExpiredKey       | 400 API1025                                                           |
| InvalidKey       | 400 API1004                                                           |
| Unauthorized     | 401 API2003 / API2004 / API2007                                       |
| RateLimited      | 429 for the per-minute window (``reset_s`` from X-Rate-Limit-Reset)   |
| DailyQuota       | 429 API2011 / API2012                                                 |
| SpuOffline       | 412 API2017                                                           |
| Rejected         | any other 4xx (Sikka's code and message)                              |
| ServerError      | 5xx (503 API2002 included), or a 2xx whose body cannot be parsed      |
| TransportFailure | no answer: any call that never connected (kind "connect"), or a       |
|                  | request that was not a writeback (timeout, reset, protocol)           |
| Unknown          | a writeback request was sent and no usable answer came back (5xx,     |
|                  | timeout, cut connection, a 2xx without a writeback id)                |
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Union

import msgspec

from actors.core.secret import Secret


class RateHeaders(msgspec.Struct, frozen=True):
    """``X-Rate-Limit-Limit/Remaining/Reset`` as sent (``None`` when absent or unparseable)."""

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None


class Ok(msgspec.Struct, frozen=True):
    value: Any = None


class ExpiredKey(msgspec.Struct, frozen=True):
    code: str = "API1025"
    message: str = ""


class InvalidKey(msgspec.Struct, frozen=True):
    code: str = "API1004"
    message: str = ""


class Unauthorized(msgspec.Struct, frozen=True):
    code: str = "API2007"
    message: str = ""


class RateLimited(msgspec.Struct, frozen=True):
    reset_s: float | None = None
    code: str = ""
    message: str = ""


class DailyQuota(msgspec.Struct, frozen=True):
    code: str = "API2012"
    message: str = ""


class SpuOffline(msgspec.Struct, frozen=True):
    code: str = "API2017"
    message: str = ""


class Rejected(msgspec.Struct, frozen=True):
    status: int
    code: str = ""
    message: str = ""


class ServerError(msgspec.Struct, frozen=True):
    status: int
    code: str = ""
    message: str = ""


class TransportFailure(msgspec.Struct, frozen=True):
    kind: str  # "timeout" | "connect" | "reset" | "protocol"
    message: str = ""


class Unknown(msgspec.Struct, frozen=True):
    """A writeback left and its fate is not known (5xx, timeout or cut connection after sending)."""

    reason: str
    status: int | None = None


Outcome = Union[
    Ok,
    ExpiredKey,
    InvalidKey,
    Unauthorized,
    RateLimited,
    DailyQuota,
    SpuOffline,
    Rejected,
    ServerError,
    TransportFailure,
    Unknown,
]

KEY_REFUSED = (ExpiredKey, InvalidKey)


class Result(msgspec.Struct, frozen=True):
    outcome: Outcome
    status: int | None = None
    rate: RateHeaders = RateHeaders()
    key_expires_at: datetime | None = None  # from Request-Key-Expires
    data_insert_in_progress: bool = False

    @property
    def ok(self) -> bool:
        return isinstance(self.outcome, Ok)

    @property
    def value(self) -> Any:
        if not isinstance(self.outcome, Ok):
            raise ValueError(f"no value: the call ended {type(self.outcome).__name__}")
        return self.outcome.value


# --- parsed values the core consumes ---------------------------------------------------------


class TokenGrant(msgspec.Struct, frozen=True):
    """A ``POST /request_key`` answer. Its keys are ``Secret``s: printed, they show ``[redacted]``;
    never put them in an event."""

    request_key: Secret
    refresh_key: Secret | None
    expires_at: datetime


class KeyInfo(msgspec.Struct, frozen=True):
    """``GET /request_key_info``: the key's owner and expiry (no secrets)."""

    issued_to: str
    status: str
    expires_at: datetime | None


class AuthorizedPractice(msgspec.Struct, frozen=True):
    """One item of ``GET /authorized_practices``."""

    office_id: str
    secret_key: Secret
    practice_name: str = ""
    practice_id: str = ""
    time_zone: str | None = None  # Windows zone name as Sikka gives it
    data_insert_date: str = ""


class WritebackAck(msgspec.Struct, frozen=True):
    """A writeback was accepted by Sikka with this id (its text ``Id:N``)."""

    sikka_writeback_id: str
    code: str = ""


class WritebackStatus(msgspec.Struct, frozen=True):
    """One ``writeback_status`` item; booleans already compared case-insensitively."""

    id: str
    is_completed: bool
    has_error: bool
    result: str = ""
    status: str = ""
    created_id: str = ""
    completed_time: str = ""
    request_time: str = ""


class WritebackListItem(msgspec.Struct, frozen=True):
    """One ``GET /writebacks`` item; ``request_body`` is ``api_request_body`` decoded to a dict."""

    id: str
    office_id: str
    method: str
    api_name: str
    result: str  # "pending" | "completed" | "failed" | "deleted" | other text
    command_time: str = ""  # yyyy-MM-ddTHH:mm:ss (UTC per the simulator contract)
    completed_time: str = ""
    request_body: dict[str, str] = {}
    description: str = ""
