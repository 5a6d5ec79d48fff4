"""Routing and the errors every admin API handler raises.

A ``Route`` is one endpoint: its ``path`` is an OpenAPI template (``/practices/{office_id}``) that
is both matched against requests and published in ``/openapi.json`` (``actors.api.openapi``), so
the two cannot drift apart. ``Router.dispatch`` answers one request::

    path matches a route? ── no route ──► 404 not_found
      └─ method matches? ── no ──► 405 bad_parameter
           └─ handler(request, **path parameters), its database calls waiting SIKKA_DB_TIMEOUT
              altogether (store.db.answer_within; a long poll renews it for each read, the
              onboarding flow bounds each call alone)
                ├─ ApiError ──► its status and {"error", "detail", "field"}
                └─ store.db.DatabaseUnavailable ──► 503 database_unavailable, Retry-After

Handlers refuse with ``ApiError``: ``refused()`` for the core's ``Refused`` decision (the status
the interface fixes for its code), ``upstream_error()`` for a Sikka call that did not succeed.
``audit()`` writes the line naming who asked for a change.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from actors.api.http import Request, Response, json_response
from actors.core import messages
from actors.core import outcomes as oc
from store.db import DatabaseUnavailable, answer_within

log = structlog.get_logger("admin")

DATABASE_RETRY_AFTER_S = 2  # what a 503 database_unavailable tells the client to wait

REFUSED_STATUS = {
    "unknown_practice": 404,
    "unknown_writeback": 404,
    "idempotency_conflict": 409,
    "not_cancellable": 409,
    "writebacks_in_flight": 409,
}


class ApiError(Exception):
    """An answer other than success: ``{"error": code, "detail", "field"}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str, field: str | None = None, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.field = status, code, detail, field
        self.retry_after = retry_after

    def response(self) -> Response:
        answer = json_response(self.status, {"error": self.code, "detail": self.detail, "field": self.field})
        if self.retry_after is None:
            return answer
        return Response(answer.status, answer.body, answer.content_type, (("Retry-After", str(self.retry_after)),))


def database_unavailable(detail: str) -> ApiError:
    """503 ``database_unavailable`` with ``Retry-After``: the database did not answer in time."""
    return ApiError(503, "database_unavailable", detail, retry_after=DATABASE_RETRY_AFTER_S)


def refused(decision: messages.Refused) -> ApiError:
    """The core refused a command: the status its code has in the interface (else 400)."""
    return ApiError(REFUSED_STATUS.get(decision.code, 400), decision.code, decision.detail, decision.field)


def upstream_error(outcome) -> ApiError:
    """The admin API's answer for a Sikka call that did not succeed."""
    match outcome:
        case oc.RateLimited():
            return ApiError(503, "upstream_rate_limited", "Sikka's rate limit was reached; retry shortly")
        case oc.DailyQuota():
            return ApiError(503, "upstream_quota", "Sikka's daily quota for this practice is used up")
        case oc.SpuOffline():
            return ApiError(503, "upstream_spu_offline", "the practice's Sikka utility (SPU) is offline")
        case oc.TransportFailure(kind=kind) if kind != "connect":
            return ApiError(504, "upstream_timeout", "Sikka did not answer in time")
        case oc.Unauthorized() | oc.ExpiredKey() | oc.InvalidKey():
            return ApiError(503, "practice_unavailable", f"Sikka refused the credentials ({outcome.code})")
    code = getattr(outcome, "code", "") or type(outcome).__name__
    return ApiError(502, "upstream_error", f"Sikka answered with an error ({code})")


def audit(request: Request, what: str, office_id: str | None = None, **extra) -> None:
    """The audit line of a change asked for through the admin API (who: the socket peer)."""
    log.info("audit", who=request.peer, what=what, office_id=office_id, **extra)


class Route(msgspec.Struct, frozen=True):
    """One endpoint: ``path`` is an OpenAPI template (``/practices/{office_id}``) that is both
    matched against requests and published in ``/openapi.json``; the handler's name is the
    published ``operationId``."""

    method: str
    path: str
    handler: Callable[..., Awaitable[Response]]
    summary: str

    @property
    def pattern(self) -> re.Pattern:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")

    @property
    def parameters(self) -> list[str]:
        """The path parameters' names, in order."""
        return re.findall(r"\{(\w+)\}", self.path)


class Router:
    """Answers a request with the handler of the route that matches it (see the module doc)."""

    def __init__(self, routes: list[Route], database_timeout: float | None = None):
        self._compiled = [(route, route.pattern) for route in routes]
        self.database_timeout = database_timeout

    async def dispatch(self, request: Request) -> Response:
        matched_path = False
        for route, pattern in self._compiled:
            m = pattern.match(request.path)
            if m is None:
                continue
            matched_path = True
            if route.method != request.method:
                continue
            try:
                with answer_within(self.database_timeout):
                    return await route.handler(request, **m.groupdict())
            except ApiError as exc:
                return exc.response()
            except DatabaseUnavailable as exc:
                return database_unavailable(str(exc)).response()
        if matched_path:
            return ApiError(405, "bad_parameter", f"{request.method} is not allowed on {request.path}").response()
        return ApiError(404, "not_found", f"no endpoint {request.path}").response()
