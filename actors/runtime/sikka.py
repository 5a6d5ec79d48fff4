"""The Sikka API v4 client: one shared ``httpx.AsyncClient``, every call a ``Result`` value. Shell.

Every public method sends one request (or, for a list, one per page), then classifies the answer
into exactly one outcome (``actors.outcomes``) and parses the body of a 2xx. Nothing is raised
for anything Sikka or the network does; only a caller's mistake raises (``PayloadError`` for a bad
writeback payload, ``ValueError`` for a ``/writebacks`` range over 7 days), before sending.

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

"A writeback" means one of the six submits (``submit``): once its request may have left, a missing
or unusable answer is ``Unknown``, never a failure, because Sikka writebacks are not idempotent and
the caller must reconcile instead of re-sending. Around the network only ``httpx.HTTPError`` is
caught (and around parsing only msgspec's and ``ValueError``): a trio cancellation (the caller's
``move_on_after``) passes straight through, and a writeback cancelled in flight is the caller's to
treat as unknown. The ``AsyncClient`` passed in carries the HTTP timeout.

Every ``Result`` also carries the rate-limit headers (any case; unparseable is ``None``),
``Request-Key-Expires`` and ``Data-Insert: in progress``.

Authentication: App-Id/App-Key headers for app-level calls (``authorized_practices``,
``data_sync_status``, ``/writebacks``, ``DELETE /refresh_key`` with ``Refresh-Key``); the practice's
``Request-Key`` header for everything else; ``POST /request_key`` carries app_id/app_key in its
body. The client holds no tokens: the practice actor owns its key and passes it in.

Lists: Sikka's envelope (string-typed numbers, ``offset`` a PAGE index). ``_pages`` is the one
paginating loop: it asks for ``offset=0,1,2…`` with a fixed ``limit`` and the caller's filters,
never following ``pagination.next`` (which drops filters), and stops at the caller's limit, at a
short page, or when ``total_count`` is reached.

Secrets (App-Key, request/refresh/secret keys) and query values are never logged.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import msgspec
import structlog

from actors.core.operations import prepare
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
    Result,
    ServerError,
    SpuOffline,
    TokenGrant,
    TransportFailure,
    Unauthorized,
    Unknown,
    WritebackAck,
    WritebackListItem,
    WritebackStatus,
)

_log = structlog.get_logger("actors.sikka")

MAX_PAGE_SIZE = 5000  # Sikka's licence maximum per page
MAX_WRITEBACKS_RANGE = timedelta(days=7)  # GET /writebacks refuses wider ranges
DAILY_QUOTA_CODES = ("API2011", "API2012")

# Failures raised before any byte of the request left: safe to call "not sent" for writebacks.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError, httpx.UnsupportedProtocol)

T = TypeVar("T")


def user_agent(node_id: str) -> str:
    try:
        version = importlib.metadata.version("sikka-supervisor")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"sikka-supervisor/{version} node={node_id}"


# --- pure parsing ------------------------------------------------------------------------------


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


class _PracticeItem(msgspec.Struct):
    office_id: str
    secret_key: str
    practice_name: str | None = None
    practice_id: str | None = None
    practice_management_system_refresh_date_time_zone: str | None = None
    data_insert_date: str | None = None


class _StatusItem(msgspec.Struct):
    id: str
    is_completed: str | None = None
    has_error: str | None = None
    result: str | None = None
    status: str | None = None
    created_id: str | None = None
    completed_time: str | None = None
    request_time: str | None = None


class _WritebackItem(msgspec.Struct):
    id: str
    office_id: str | None = None
    method: str | None = None
    api_name: str | None = None
    result: str | None = None
    command_time: str | None = None
    completed_time: str | None = None
    api_request_body: str | None = None
    description: str | None = None


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


def rate_headers(headers: httpx.Headers) -> RateHeaders:
    """``X-Rate-Limit-Limit/Remaining/Reset`` in any case; absent or unparseable is ``None``."""
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


def parse_grant(content: bytes, header: datetime | None, now: datetime, sent_refresh_key: str | None) -> TokenGrant:
    """A new request key; its refresh key is the newest one known (the one sent if none came back)."""
    body = msgspec.json.decode(content, type=_KeyBody)
    expires_at = key_expiry(header, body, now)
    if not body.request_key or expires_at is None:
        raise ValueError("request_key answer without a key or an expiry")
    return TokenGrant(request_key=body.request_key, refresh_key=body.refresh_key or sent_refresh_key, expires_at=expires_at)


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


def to_authorized_practice(item: _PracticeItem) -> AuthorizedPractice:
    return AuthorizedPractice(
        office_id=item.office_id,
        secret_key=item.secret_key,
        practice_name=item.practice_name or "",
        practice_id=item.practice_id or "",
        time_zone=item.practice_management_system_refresh_date_time_zone or None,
        data_insert_date=item.data_insert_date or "",
    )


def to_writeback_status(item: _StatusItem) -> WritebackStatus:
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


def to_writeback_list_item(item: _WritebackItem) -> WritebackListItem:
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
        except (msgspec.DecodeError, ValueError):
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


def transport_outcome(exc: httpx.HTTPError, writeback: bool) -> Outcome:
    """A request that got no answer: "connect" when nothing was sent, else by kind (or Unknown)."""
    name = type(exc).__name__
    if isinstance(exc, _NOT_SENT):
        return TransportFailure(kind="connect", message=name)
    if isinstance(exc, httpx.TimeoutException):
        kind = "timeout"
    elif isinstance(exc, httpx.NetworkError):
        kind = "reset"
    else:
        kind = "protocol"
    return Unknown(reason=kind) if writeback else TransportFailure(kind=kind, message=name)


_PHONE = re.compile(r"\+?[\d\s().-]{7,}")


def phone_digits(query: str) -> str | None:
    """The national digits of a phone-looking query (a US leading 1 dropped), else ``None``."""
    if not _PHONE.fullmatch(query.strip()):
        return None
    digits = re.sub(r"\D", "", query)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) >= 7 else None


# --- the client ----------------------------------------------------------------------------------


class SikkaClient:
    """Sikka API v4 over a shared ``httpx.AsyncClient``; stateless about tokens."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        app_id: str,
        app_key: str,
        node_id: str,
        *,
        page_size: int = 500,
        on_call: Callable[[str, int | None, str], None] | None = None,
    ) -> None:
        if not app_id or not app_key:
            raise ValueError("Sikka app_id and app_key are required")
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._app_id = app_id
        self._app_key = app_key
        self._page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        self._on_call = on_call  # (path, HTTP status or None, outcome name): the metrics' request counter
        self._headers = {"User-Agent": user_agent(node_id), "Accept-Encoding": "gzip", "Accept": "application/json"}

    def __repr__(self) -> str:  # never show the key
        return f"SikkaClient({self._base_url!r}, app_id={self._app_id!r})"

    # -- authorization ---------------------------------------------------------------------------

    async def authorized_practices(self) -> Result:
        """Every practice that authorized the app (``show=all``, all pages): ``list[AuthorizedPractice]``."""
        return await self._pages(
            "/authorized_practices", self._app_auth(), {"show": "all"}, None, _PracticeItem, to_authorized_practice
        )

    async def issue_request_key(self, office_id: str, secret_key: str) -> Result:
        """``grant_type=request_key``: a ``TokenGrant``."""
        return await self._grant({"grant_type": "request_key", "office_id": office_id, "secret_key": secret_key}, None)

    async def refresh_request_key(self, refresh_key: str) -> Result:
        """``grant_type=refresh_key``: a ``TokenGrant`` whose ``refresh_key`` is the newest one."""
        return await self._grant({"grant_type": "refresh_key", "refresh_key": refresh_key}, refresh_key)

    async def request_key_info(self, request_key: str) -> Result:
        """The key's owner, status and expiry: ``KeyInfo``."""
        return await self._call(
            "GET",
            "/request_key_info",
            auth={"Request-Key": request_key},
            parse=lambda r: parse_key_info(r.content, http_date(r.headers.get("request-key-expires")), datetime.now(UTC)),
        )

    async def revoke_request_key(self, request_key: str) -> Result:
        return await self._call("DELETE", "/request_key", auth={"Request-Key": request_key}, parse=_nothing)

    async def revoke_refresh_key(self, refresh_key: str) -> Result:
        return await self._call("DELETE", "/refresh_key", auth={"Refresh-Key": refresh_key, **self._app_auth()}, parse=_nothing)

    # -- reads (lists are Sikka's items as given: dicts of strings) --------------------------------

    async def appointments(self, request_key: str, startdate: date, enddate: date, *, limit: int = 50, **filters: str) -> Result:
        params = {"startdate": startdate.isoformat(), "enddate": enddate.isoformat(), **filters}
        return await self._pages("/appointments", {"Request-Key": request_key}, params, limit)

    async def appointment(self, request_key: str, appointment_sr_no: str) -> Result:
        """One appointment (``dict``) or ``None``."""
        return await self._one("/appointments", request_key, {"appointment_sr_no": appointment_sr_no})

    async def available_slots(
        self, request_key: str, startdate: date, enddate: date, *, limit: int = 500, **filters: str
    ) -> Result:
        params = {"startdate": startdate.isoformat(), "enddate": enddate.isoformat(), **filters}
        return await self._pages("/appointments_available_slots", {"Request-Key": request_key}, params, limit)

    async def search_patients(self, request_key: str, query: str, *, limit: int = 50) -> Result:
        """By phone digits over cell, then homephone, then workphone; otherwise Sikka's ``search``."""
        digits = phone_digits(query)
        if digits is None:
            return await self._pages("/patients", {"Request-Key": request_key}, {"search": query.strip()}, limit)
        for field in ("cell", "homephone", "workphone"):
            result = await self._pages("/patients", {"Request-Key": request_key}, {field: digits}, limit)
            if not result.ok or result.value:
                break
        return result

    async def patient(self, request_key: str, patient_id: str) -> Result:
        """One patient (``dict``) or ``None``."""
        return await self._one("/patients", request_key, {"patient_id": patient_id})

    async def providers(self, request_key: str, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/providers", {"Request-Key": request_key}, filters, limit)

    async def practices(self, request_key: str, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/practices", {"Request-Key": request_key}, filters, limit)

    async def operatories(self, request_key: str, cust_id: str, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/operatories", {"Request-Key": request_key}, {"cust_id": cust_id, **filters}, limit)

    async def appointment_statuses(self, request_key: str, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/appointment_statuses", {"Request-Key": request_key}, filters, limit)

    async def practice_variables(self, request_key: str, *, limit: int = 500, **filters: str) -> Result:
        """E.g. ``service_name="Appointment Status"`` for the values a status PATCH accepts."""
        return await self._pages("/practice_variables", {"Request-Key": request_key}, filters, limit)

    async def practice_schedule(self, request_key: str, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/practice_schedule", {"Request-Key": request_key}, filters, limit)

    async def data_sync_status(self, **filters: str) -> Result:
        """App-level: every practice's refresh status (all pages)."""
        return await self._pages("/data_sync_status", self._app_auth(), filters, None)

    # -- writebacks ------------------------------------------------------------------------------

    async def submit(self, request_key: str, operation: str, payload: Mapping[str, object]) -> Result:
        """Send one of the six operations: ``WritebackAck`` or, once sent without a usable answer,
        ``Unknown``. Raises ``PayloadError`` before sending when the payload is not acceptable."""
        request = prepare(operation, payload)
        return await self._call(
            request.method,
            request.path,
            auth={"Request-Key": request_key},
            body=request.body,
            parse=lambda r: parse_ack(r.content),
            writeback=True,
        )

    async def writeback_status(self, request_key: str, sikka_writeback_id: str) -> Result:
        """``WritebackStatus`` of one writeback, or ``None`` when Sikka lists nothing for it."""

        def parse(response: httpx.Response) -> WritebackStatus | None:
            items, _ = parse_page(response.content, _StatusItem, to_writeback_status)
            return next((s for s in items if s.id == sikka_writeback_id), items[0] if items else None)

        return await self._call(
            "GET", "/writeback_status", auth={"Request-Key": request_key}, params={"id": sikka_writeback_id}, parse=parse
        )

    async def writebacks(self, startdate: date, enddate: date, *, sikka_writeback_id: str | None = None) -> Result:
        """App-wide ``list[WritebackListItem]`` for ``startdate..enddate`` (at most 7 days apart)."""
        if not timedelta(0) <= enddate - startdate <= MAX_WRITEBACKS_RANGE:
            raise ValueError(f"/writebacks takes 0 to 7 days, not {startdate}..{enddate}")
        params = {"startdate": startdate.isoformat(), "enddate": enddate.isoformat()}
        if sikka_writeback_id is not None:
            params["id"] = sikka_writeback_id
        return await self._pages("/writebacks", self._app_auth(), params, None, _WritebackItem, to_writeback_list_item)

    async def delete_writeback(self, sikka_writeback_id: str) -> Result:
        """Cancel a pending writeback at Sikka (``Ok(None)`` when Sikka accepted the delete)."""
        return await self._call(
            "DELETE", "/writebacks", auth=self._app_auth(), params={"id": sikka_writeback_id}, parse=_nothing
        )

    # -- plumbing ------------------------------------------------------------------------------------

    def _app_auth(self) -> dict[str, str]:
        return {"App-Id": self._app_id, "App-Key": self._app_key}

    async def _grant(self, fields: dict[str, str], sent_refresh_key: str | None) -> Result:
        body = {**fields, "app_id": self._app_id, "app_key": self._app_key}
        return await self._call(
            "POST",
            "/request_key",
            auth={},
            body=body,
            parse=lambda r: parse_grant(
                r.content, http_date(r.headers.get("request-key-expires")), datetime.now(UTC), sent_refresh_key
            ),
        )

    async def _one(self, path: str, request_key: str, params: dict[str, str]) -> Result:
        result = await self._pages(path, {"Request-Key": request_key}, params, 1)
        if not result.ok:
            return result
        return msgspec.structs.replace(result, outcome=Ok(result.value[0] if result.value else None))

    async def _pages(
        self,
        path: str,
        auth: dict[str, str],
        params: Mapping[str, str],
        limit: int | None,
        item_type: Any = dict[str, Any],
        convert: Callable[[Any], Any] | None = None,
    ) -> Result:
        """Every page of a list read (``offset`` = page index) up to ``limit`` items (None: all)."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be positive, not {limit}")
        per_page = min(limit, self._page_size) if limit is not None else self._page_size
        items: list[Any] = []
        data_insert = False
        page = 0
        while True:
            result = await self._call(
                "GET",
                path,
                auth=auth,
                params={**params, "offset": str(page), "limit": str(per_page)},
                parse=lambda r: parse_page(r.content, item_type, convert),
            )
            data_insert = data_insert or result.data_insert_in_progress
            if not result.ok:
                return msgspec.structs.replace(result, data_insert_in_progress=data_insert)
            batch, total = result.value
            items.extend(batch)
            page += 1
            if (
                (limit is not None and len(items) >= limit)
                or len(batch) < per_page
                or (total is not None and page * per_page >= total)
            ):
                break
        return msgspec.structs.replace(
            result, outcome=Ok(items[:limit] if limit is not None else items), data_insert_in_progress=data_insert
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        auth: dict[str, str],
        parse: Callable[[httpx.Response], Any],
        params: Mapping[str, str] | None = None,
        body: dict[str, str] | None = None,
        writeback: bool = False,
    ) -> Result:
        """Send, classify, parse: the only place that touches the network."""
        try:
            response = await self._http.request(
                method, self._base_url + path, params=params, json=body, headers={**self._headers, **auth}
            )
        except httpx.HTTPError as exc:
            result = Result(outcome=transport_outcome(exc, writeback))
        else:
            rate = rate_headers(response.headers)
            result = Result(
                outcome=classify(response.status_code, response.content, rate, lambda: parse(response), writeback),
                status=response.status_code,
                rate=rate,
                key_expires_at=http_date(response.headers.get("request-key-expires")),
                data_insert_in_progress=response.headers.get("data-insert", "").strip().lower() == "in progress",
            )
        outcome = type(result.outcome).__name__
        _log.debug("sikka_call", method=method, path=path, status=result.status, outcome=outcome)
        if self._on_call is not None:
            self._on_call(path, result.status, outcome.lower())
        return result


def _nothing(response: httpx.Response) -> None:
    return None
