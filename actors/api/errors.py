"""What every admin API handler refuses with, and the audit line of a change.

``ApiError`` is an answer other than success: ``{"error", "detail", "field"}`` (``views.Error``)
with the status the interface fixes for its code, and any headers the status calls for
(``Allow`` on 405, ``WWW-Authenticate`` on 401, ``Retry-After`` on 503 ``database_unavailable``:
``database_unavailable()``). ``refused()`` maps the core's ``Refused``
decision to its status, ``upstream_error()`` a Sikka call that did not succeed. ``audit()``
writes the line naming who asked for a change.
"""

from __future__ import annotations

import structlog

from actors.api.http import Request, Response, json_response
from actors.core import messages
from actors.core import outcomes as oc

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

    def __init__(
        self, status: int, code: str, detail: str, field: str | None = None, headers: tuple[tuple[str, str], ...] = ()
    ):
        super().__init__(detail)
        self.status, self.code, self.detail, self.field, self.headers = status, code, detail, field, headers

    def response(self) -> Response:
        body = json_response(self.status, {"error": self.code, "detail": self.detail, "field": self.field})
        return Response(body.status, body.body, body.content_type, self.headers)


def database_unavailable(detail: str) -> ApiError:
    """503 ``database_unavailable`` with ``Retry-After``: the database did not answer in time."""
    return ApiError(503, "database_unavailable", detail, headers=(("Retry-After", str(DATABASE_RETRY_AFTER_S)),))


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
