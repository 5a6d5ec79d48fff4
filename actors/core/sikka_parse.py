"""What Sikka's HTTP answers mean, as values: bodies parsed, answers classified. Pure.

The shell (``actors.runtime.sikka``) sends a request and hands the status, headers and body
here; ``classify`` turns them into exactly one outcome (``actors.core.outcomes``) and the parsers
turn a 2xx body into values (Sikka's string-typed envelope, ``offset`` a page index):

| answer                                           | outcome                                      |
|--------------------------------------------------|----------------------------------------------|
| 2xx, body parses (JSON whatever the Content-Type)| Ok(value)                                    |
| 204, empty body or API2005 on a list read        | Ok([])                                       |
| 2xx, body does not parse                         | ServerError (a writeback: Unknown)           |
| 400 API1025 / 400 API1004                        | ExpiredKey / InvalidKey                      |
| 401 (API2003, API2004, API2007)                  | Unauthorized(code)                           |
| 429 API2011 / API2012                            | DailyQuota                                   |
| 429 otherwise                                    | RateLimited(reset_s = X-Rate-Limit-Reset)    |
| 412 (API2017; message from long_ or log_message) | SpuOffline                                   |
| other 4xx                                        | Rejected(status, code, message)              |
| 5xx (503 API2002 too), 1xx, 3xx                  | ServerError (a writeback: Unknown)           |
| ConnectError, ConnectTimeout, PoolTimeout (and   | TransportFailure("connect"): nothing was sent|
| proxy or URL-scheme errors)                      |                                              |
| read/write timeout, reset, protocol error        | TransportFailure (a writeback: Unknown)      |

Timeouts, resets and refused connections never reach an HTTP status: the shell classifies
them (``transport_outcome``).
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlsplit

import msgspec

from actors.core.outcomes import (
    AuthorizedPractice,
    DailyQuota,
    ExpiredKey,
    InvalidKey,
    KeyInfo,
    Ok,
    Outcome,
    RateHeaders,
    RateLimited,
    Rejected,
    ServerError,
    SpuOffline,
    TokenGrant,
    Unauthorized,
    Unknown,
    WritebackAck,
    WritebackListItem,
    WritebackStatus,
)
from actors.core.secret import Secret, optional

DAILY_QUOTA_CODES = ("API2011", "API2012")

T = TypeVar("T")


class Envelope(msgspec.Struct, Generic[T]):
    """Sikka's list envelope; only what the client uses (numbers arrive as strings)."""

    items: list[T] | None = None
    total_count: Any = None
    error_code: Any = None  # API2005 "no content" may come as a 200 message body


class _Message(msgspec.Struct):
    """Error and acknowledgement bodies (six string fields; ``log_message`` in one variant)."""

    error_code: str | None = None
    short_message: str | None = None
    long_message: str | None = None
    log_message: str | None = None
    more_information: str | None = None


class _KeyBody(msgspec.Struct):
    """``POST /request_key`` and ``GET /request_key_info`` (flat objects)."""

    request_key: str | None = None
    refresh_key: str | None = None
    end_time: str | None = None
    expires_in: str | int | None = None
    issued_to: str | None = None
    status: str | None = None


class PracticeItem(msgspec.Struct):
    office_id: str
    secret_key: str
    practice_name: str | None = None
    practice_id: str | None = None
    practice_management_system_refresh_date_time_zone: str | None = None
    data_insert_date: str | None = None


class StatusItem(msgspec.Struct):
    id: str
    is_completed: str | None = None
    has_error: str | None = None
    result: str | None = None
    status: str | None = None
    created_id: str | None = None
    completed_time: str | None = None
    request_time: str | None = None


class WritebackItem(msgspec.Struct):
    id: str
    office_id: str | None = None
    method: str | None = None
    api_name: str | None = None
    result: str | None = None
    command_time: str | None = None
    completed_time: str | None = None
    api_request_body: str | None = None
    description: str | None = None


class WritebackKey(msgspec.Struct):
    """What a list round looks at in every ``GET /writebacks`` item (the rest is decoded only
    for the items it wants: ``writeback_item``)."""

    id: str
    office_id: str | None = None


class WritebackPage(msgspec.Struct, frozen=True):
    """One page of ``GET /writebacks``: Sikka's items undecoded (JSON views into the answer: a
    page of 5,000 costs 5,000 small objects, not 5,000 decoded items) and its ``total_count``
    (which the examples show can disagree with the items: only a short page ends a list)."""

    items: list[msgspec.Raw]
    total: int | None = None


_key_decoder = msgspec.json.Decoder(WritebackKey)
_item_decoder = msgspec.json.Decoder(WritebackItem)


def writeback_key(raw: msgspec.Raw) -> WritebackKey:
    return _key_decoder.decode(raw)


def writeback_item(raw: msgspec.Raw) -> WritebackListItem:
    """One undecoded ``GET /writebacks`` item, decoded (``to_writeback_list_item``)."""
    return to_writeback_list_item(_item_decoder.decode(raw))


def _int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _seconds(value: object) -> float | None:
    try:
        seconds = float(str(value).strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def rate_headers(headers: Mapping[str, str]) -> RateHeaders:
    """``X-Rate-Limit-Limit/Remaining/Reset`` (``headers`` looks names up in any case, as
    httpx's do); absent or unparseable is ``None``."""
    return RateHeaders(
        limit=_int(headers.get("x-rate-limit-limit")),
        remaining=_int(headers.get("x-rate-limit-remaining")),
        reset_s=_seconds(headers.get("x-rate-limit-reset")),
    )


def http_date(value: str | None) -> datetime | None:
    """An RFC 1123 date (``Request-Key-Expires``) as aware UTC, or ``None``."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def key_expiry(header: datetime | None, body: _KeyBody, now: datetime) -> datetime | None:
    """``Request-Key-Expires``, else ``end_time`` (no zone: UTC), else now + ``expires_in``."""
    if header is not None:
        return header
    try:
        end = datetime.fromisoformat((body.end_time or "").strip())
    except ValueError:
        end = None
    if end is not None:
        return end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    seconds = re.match(r"\s*(\d+)", str(body.expires_in or ""))  # "85603 second(s)"
    return now + timedelta(seconds=int(seconds.group(1))) if seconds else None


def parse_grant(
    content: bytes, header: datetime | None, now: datetime, sent_refresh_key: Secret | None
) -> TokenGrant:
    """A new request key; its refresh key is the newest one known (the one sent if none came back)."""
    body = msgspec.json.decode(content, type=_KeyBody)
    expires_at = key_expiry(header, body, now)
    if not body.request_key or expires_at is None:
        raise ValueError("request_key answer without a key or an expiry")
    return TokenGrant(
        request_key=Secret(body.request_key),
        refresh_key=optional(body.refresh_key) or sent_refresh_key,
        expires_at=expires_at,
    )


def parse_key_info(content: bytes, header: datetime | None, now: datetime) -> KeyInfo:
    body = msgspec.json.decode(content, type=_KeyBody)
    return KeyInfo(issued_to=body.issued_to or "", status=body.status or "", expires_at=key_expiry(header, body, now))


def parse_page(
    content: bytes, item_type: Any = dict[str, Any], convert: Callable[[Any], Any] | None = None
) -> tuple[list[Any], int | None]:
    """(items, total_count) of a list envelope, also inside writeback_status's top-level array.
    An empty body or an API2005 message is an empty list; an object without ``items`` is an error."""
    if not content.strip():
        return [], 0
    decoded = msgspec.json.decode(content, type=Envelope[item_type] | list[Envelope[item_type]])
    envelope = (decoded[0] if decoded else Envelope(items=[])) if isinstance(decoded, list) else decoded
    if envelope.items is None:
        if str(envelope.error_code or "").strip().upper() == "API2005":
            return [], 0
        raise ValueError("list answer without items")
    items = [convert(item) for item in envelope.items] if convert else envelope.items
    return items, _int(envelope.total_count)


def to_authorized_practice(item: PracticeItem) -> AuthorizedPractice:
    return AuthorizedPractice(
        office_id=item.office_id,
        secret_key=Secret(item.secret_key),
        practice_name=item.practice_name or "",
        practice_id=item.practice_id or "",
        time_zone=item.practice_management_system_refresh_date_time_zone or None,
        data_insert_date=item.data_insert_date or "",
    )


def to_writeback_status(item: StatusItem) -> WritebackStatus:
    return WritebackStatus(
        id=item.id,
        is_completed=(item.is_completed or "").strip().lower() == "true",
        has_error=(item.has_error or "").strip().lower() == "true",
        result=item.result or "",
        status=item.status or "",
        created_id=item.created_id or "",
        completed_time=item.completed_time or "",
        request_time=item.request_time or "",
    )


def to_writeback_list_item(item: WritebackItem) -> WritebackListItem:
    """``api_request_body`` (``key=value&…``) decoded; its masked ``request_key`` is dropped."""
    body = dict(parse_qsl(item.api_request_body or "", keep_blank_values=True))
    body.pop("request_key", None)
    return WritebackListItem(
        id=item.id,
        office_id=item.office_id or "",
        method=item.method or "",
        api_name=item.api_name or "",
        result=item.result or "",
        command_time=item.command_time or "",
        completed_time=item.completed_time or "",
        request_body=body,
        description=item.description or "",
    )


_ACK_ID = re.compile(r"Id:(\d+)")


def parse_ack(content: bytes) -> WritebackAck:
    """Sikka's writeback id: ``long_message`` "Id:N", else ``id`` in ``more_information``'s query."""
    message = msgspec.json.decode(content, type=_Message)
    found = _ACK_ID.fullmatch((message.long_message or "").strip())
    if found:
        return WritebackAck(sikka_writeback_id=found.group(1), code=message.error_code or "")
    ids = parse_qs(urlsplit((message.more_information or "").strip()).query).get("id", [])
    if len(ids) == 1 and ids[0].isdigit():
        return WritebackAck(sikka_writeback_id=ids[0], code=message.error_code or "")
    raise ValueError("acknowledgement without a writeback id")


def error_message(content: bytes) -> tuple[str, str]:
    """(code, message) of an error body, empty when it is not one."""
    try:
        message = msgspec.json.decode(content, type=_Message)
    except msgspec.DecodeError:
        return "", ""
    text = message.long_message or message.log_message or message.short_message or ""
    return (message.error_code or "").strip().upper(), text


def classify(status: int, content: bytes, rate: RateHeaders, parse: Callable[[], Any], writeback: bool) -> Outcome:
    """The outcome of an HTTP answer (the table in the module docstring)."""
    if 200 <= status < 300:
        try:
            return Ok(parse())
        except (msgspec.DecodeError, ValueError, OverflowError):  # an absurd date or expiry too
            return Unknown(reason="unparseable", status=status) if writeback else ServerError(status, message="unparseable body")
    code, message = error_message(content)
    if not 400 <= status < 500:
        if writeback:
            return Unknown(reason="server_error" if status >= 500 else "unexpected_status", status=status)
        return ServerError(status, code, message)
    if code == "API1025":
        return ExpiredKey(code, message)
    if code == "API1004":
        return InvalidKey(code, message)
    if status == 401:
        return Unauthorized(code or "API2007", message)
    if status == 429:
        return DailyQuota(code, message) if code in DAILY_QUOTA_CODES else RateLimited(rate.reset_s, code, message)
    if status == 412:
        return SpuOffline(code or "API2017", message)
    return Rejected(status, code, message)


_PHONE = re.compile(r"\+?[\d\s().-]{7,}")


def phone_digits(query: str) -> str | None:
    """The national digits of a phone-looking query (a US leading 1 dropped), else ``None``."""
    if not _PHONE.fullmatch(query.strip()):
        return None
    digits = re.sub(r"\D", "", query)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) >= 7 else None
