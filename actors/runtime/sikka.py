"""The Sikka API v4 client: one shared ``httpx.AsyncClient``, every call a ``Result`` value. Shell.

Every public method sends one request (or, for a list, one per page), then classifies the answer
into exactly one outcome and parses the body of a 2xx, both with the pure
``actors.core.sikka_parse`` (its docstring has the table of answers and outcomes). Nothing is raised
for anything Sikka or the network does; only a caller's mistake raises (``PayloadError`` for a bad
writeback payload, ``ValueError`` for a ``/writebacks`` range over 7 days), before sending.

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
body. The client holds no tokens: the practice actor owns its key and passes it in. Keys are
``Secret`` values (``actors.core.secret``) up to ``_call``, the one place that reveals them, into
the request's headers and body.

Lists: Sikka's envelope (string-typed numbers, ``offset`` a PAGE index). ``_pages`` is the one
paginating loop: it asks for ``offset=0,1,2…`` with a fixed ``limit`` and the caller's filters,
never following ``pagination.next`` (which drops filters), and stops at the caller's limit, at a
short page, or when ``total_count`` is reached. ``GET /writebacks`` is the exception: the app-wide list
can hold a whole fleet's day, so ``writebacks_page`` fetches one page (5,000 items, the licence's
maximum) and the caller pays each page on the app-level budget and stops reading once it has what
it came for (``actors.runtime.calls``).

Secrets (App-Key, request/refresh/secret keys) and query values are never logged.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import msgspec
import structlog
import trio

from actors.core.operations import prepare
from actors.core.secret import Secret
from actors.core.outcomes import (
    Ok,
    Outcome,
    Result,
    TransportFailure,
    Unknown,
    WritebackStatus,
)
from actors.core.sikka_parse import (
    PracticeItem,
    StatusItem,
    WritebackPage,
    classify,
    http_date,
    parse_ack,
    parse_grant,
    parse_key_info,
    parse_page,
    phone_digits,
    rate_headers,
    to_authorized_practice,
    to_writeback_status,
)

_log = structlog.get_logger("sikka")

MAX_PAGE_SIZE = 5000  # Sikka's licence maximum per page
MAX_WRITEBACKS_RANGE = timedelta(days=7)  # GET /writebacks refuses wider ranges
IN_FLIGHT = 100  # requests inside httpx at once (at most its connection limit; the rest wait here)

# Failures raised before any byte of the request left: safe to call "not sent" for writebacks.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError, httpx.UnsupportedProtocol)



def user_agent(node_id: str) -> str:
    try:
        version = importlib.metadata.version("sikka-supervisor")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"sikka-supervisor/{version} node={node_id}"


# --- pure parsing ------------------------------------------------------------------------------


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


# --- the client ----------------------------------------------------------------------------------


class SikkaClient:
    """Sikka API v4 over a shared ``httpx.AsyncClient``; stateless about tokens."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        app_id: str,
        app_key: Secret,
        node_id: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        on_call: Callable[[str, int | None, str], None] | None = None,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        if not app_id or not app_key:
            raise ValueError("Sikka app_id and app_key are required")
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._app_id = app_id
        self._app_key = app_key
        self._page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        self._on_call = on_call  # (path, HTTP status or None, outcome name): the metrics' request counter
        self._in_flight = trio.CapacityLimiter(in_flight)
        self._headers = {"User-Agent": user_agent(node_id), "Accept-Encoding": "gzip", "Accept": "application/json"}

    def __repr__(self) -> str:  # never show the key
        return f"SikkaClient({self._base_url!r}, app_id={self._app_id!r})"

    # -- authorization ---------------------------------------------------------------------------

    async def authorized_practices(self) -> Result:
        """Every practice that authorized the app (``show=all``, all pages): ``list[AuthorizedPractice]``."""
        return await self._pages(
            "/authorized_practices", self._app_auth(), {"show": "all"}, None, PracticeItem, to_authorized_practice
        )

    async def issue_request_key(self, office_id: str, secret_key: Secret) -> Result:
        """``grant_type=request_key``: a ``TokenGrant``."""
        return await self._grant({"grant_type": "request_key", "office_id": office_id, "secret_key": secret_key}, None)

    async def refresh_request_key(self, refresh_key: Secret) -> Result:
        """``grant_type=refresh_key``: a ``TokenGrant`` whose ``refresh_key`` is the newest one."""
        return await self._grant({"grant_type": "refresh_key", "refresh_key": refresh_key}, refresh_key)

    async def request_key_info(self, request_key: Secret) -> Result:
        """The key's owner, status and expiry: ``KeyInfo``."""
        return await self._call(
            "GET",
            "/request_key_info",
            auth={"Request-Key": request_key},
            parse=lambda r: parse_key_info(r.content, http_date(r.headers.get("request-key-expires")), datetime.now(UTC)),
        )

    async def revoke_request_key(self, request_key: Secret) -> Result:
        return await self._call("DELETE", "/request_key", auth={"Request-Key": request_key}, parse=_nothing)

    async def revoke_refresh_key(self, refresh_key: Secret) -> Result:
        return await self._call("DELETE", "/refresh_key", auth={"Refresh-Key": refresh_key, **self._app_auth()}, parse=_nothing)

    # -- reads (lists are Sikka's items as given: dicts of strings) --------------------------------

    async def appointments(
        self, request_key: Secret, startdate: date, enddate: date, *, limit: int = 50, **filters: str
    ) -> Result:
        params = {"startdate": startdate.isoformat(), "enddate": enddate.isoformat(), **filters}
        return await self._pages("/appointments", {"Request-Key": request_key}, params, limit)

    async def appointment(self, request_key: Secret, appointment_sr_no: str) -> Result:
        """One appointment (``dict``) or ``None``."""
        return await self._one("/appointments", request_key, {"appointment_sr_no": appointment_sr_no})

    async def available_slots(
        self, request_key: Secret, startdate: date, enddate: date, *, limit: int = 500, **filters: str
    ) -> Result:
        params = {"startdate": startdate.isoformat(), "enddate": enddate.isoformat(), **filters}
        return await self._pages("/appointments_available_slots", {"Request-Key": request_key}, params, limit)

    async def search_patients(self, request_key: Secret, query: str, *, limit: int = 50) -> Result:
        """By phone digits over cell, then homephone, then workphone; otherwise Sikka's ``search``."""
        digits = phone_digits(query)
        if digits is None:
            return await self._pages("/patients", {"Request-Key": request_key}, {"search": query.strip()}, limit)
        for field in ("cell", "homephone", "workphone"):
            result = await self._pages("/patients", {"Request-Key": request_key}, {field: digits}, limit)
            if not result.ok or result.value:
                break
        return result

    async def patient(self, request_key: Secret, patient_id: str) -> Result:
        """One patient (``dict``) or ``None``."""
        return await self._one("/patients", request_key, {"patient_id": patient_id})

    async def providers(self, request_key: Secret, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/providers", {"Request-Key": request_key}, filters, limit)

    async def practices(self, request_key: Secret, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/practices", {"Request-Key": request_key}, filters, limit)

    async def operatories(self, request_key: Secret, cust_id: str, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/operatories", {"Request-Key": request_key}, {"cust_id": cust_id, **filters}, limit)

    async def appointment_statuses(self, request_key: Secret, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/appointment_statuses", {"Request-Key": request_key}, filters, limit)

    async def practice_variables(self, request_key: Secret, *, limit: int = 500, **filters: str) -> Result:
        """E.g. ``service_name="Appointment Status"`` for the values a status PATCH accepts."""
        return await self._pages("/practice_variables", {"Request-Key": request_key}, filters, limit)

    async def practice_schedule(self, request_key: Secret, *, limit: int = 500, **filters: str) -> Result:
        return await self._pages("/practice_schedule", {"Request-Key": request_key}, filters, limit)

    async def data_sync_status(self, **filters: str) -> Result:
        """App-level: every practice's refresh status (all pages)."""
        return await self._pages("/data_sync_status", self._app_auth(), filters, None)

    # -- writebacks ------------------------------------------------------------------------------

    async def submit(self, request_key: Secret, operation: str, payload: Mapping[str, object]) -> Result:
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

    async def writeback_status(self, request_key: Secret, sikka_writeback_id: str) -> Result:
        """``WritebackStatus`` of one writeback, or ``None`` when Sikka lists nothing for it."""

        def parse(response: httpx.Response) -> WritebackStatus | None:
            items, _ = parse_page(response.content, StatusItem, to_writeback_status)
            return next((s for s in items if s.id == sikka_writeback_id), items[0] if items else None)

        return await self._call(
            "GET", "/writeback_status", auth={"Request-Key": request_key}, params={"id": sikka_writeback_id}, parse=parse
        )

    async def writebacks_page(self, startdate: date, enddate: date, page: int, *, limit: int = MAX_PAGE_SIZE) -> Result:
        """Page ``page`` (``offset`` is a page index) of the app-wide writebacks list for
        ``startdate..enddate`` (at most 7 days apart): a ``WritebackPage`` of Sikka's items as
        given (``to_writeback_list_item`` decodes the ones a caller needs) and ``total_count``.
        One request: the caller pays each page on the app-level budget and decides whether to
        read another (``actors.runtime.calls.read_list_round``)."""
        if not timedelta(0) <= enddate - startdate <= MAX_WRITEBACKS_RANGE:
            raise ValueError(f"/writebacks takes 0 to 7 days, not {startdate}..{enddate}")
        if page < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"page {page} of {limit} items is not a page Sikka serves")
        params = {
            "startdate": startdate.isoformat(), "enddate": enddate.isoformat(), "offset": str(page), "limit": str(limit)
        }
        return await self._call(
            "GET", "/writebacks", auth=self._app_auth(), params=params,
            parse=lambda r: WritebackPage(*parse_page(r.content, msgspec.Raw)),
        )

    async def delete_writeback(self, sikka_writeback_id: str) -> Result:
        """Cancel a pending writeback at Sikka (``Ok(None)`` when Sikka accepted the delete)."""
        return await self._call(
            "DELETE", "/writebacks", auth=self._app_auth(), params={"id": sikka_writeback_id}, parse=_nothing
        )

    # -- plumbing ------------------------------------------------------------------------------------

    def _app_auth(self) -> dict[str, str | Secret]:
        return {"App-Id": self._app_id, "App-Key": self._app_key}

    async def _grant(self, fields: dict[str, str | Secret], sent_refresh_key: Secret | None) -> Result:
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

    async def _one(self, path: str, request_key: Secret, params: dict[str, str]) -> Result:
        result = await self._pages(path, {"Request-Key": request_key}, params, 1)
        if not result.ok:
            return result
        return msgspec.structs.replace(result, outcome=Ok(result.value[0] if result.value else None))

    async def _pages(
        self,
        path: str,
        auth: dict[str, str | Secret],
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
        auth: dict[str, str | Secret],
        parse: Callable[[httpx.Response], Any],
        params: Mapping[str, str] | None = None,
        body: Mapping[str, str | Secret] | None = None,
        writeback: bool = False,
    ) -> Result:
        """Send, classify, parse: the only place that touches the network (and reveals keys)."""
        try:
            response = await self._send(
                method,
                self._base_url + path,
                params=params,
                json=_revealed(body) if body is not None else None,
                headers={**self._headers, **_revealed(auth)},
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

    async def _send(self, method: str, url: str, **kwargs) -> httpx.Response:
        """The request, once fewer than ``in_flight`` are on their way. httpx's connection pool
        matches every request waiting for a connection against every connection each time one
        frees up: with thousands of practices' calls queued there, the event loop spent seconds
        at a time on it. Here they wait in a trio limiter, within the client's pool timeout."""
        acquired = False
        with trio.move_on_after(self._http.timeout.pool or math.inf):
            await self._in_flight.acquire()
            acquired = True
        if not acquired:
            raise httpx.PoolTimeout("no connection to Sikka became free within the timeout")
        try:
            return await self._http.request(method, url, **kwargs)
        finally:
            self._in_flight.release()


def _nothing(response: httpx.Response) -> None:
    return None


def _revealed(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as sent: each ``Secret`` replaced by its value."""
    return {name: value.reveal() if isinstance(value, Secret) else value for name, value in fields.items()}
