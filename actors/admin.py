"""The admin API (interface section 4): HTTP/1.1 + JSON on the Unix socket (``actors.http11``).

Handlers read the projections and the actors' statistics, and deliver commands to the actors,
which answer after their events are committed. Bad input never reaches an actor: bodies are
decoded with msgspec into structs that forbid unknown fields, payloads are validated against the
operation table, and every failure is ``{"error", "detail", "field"}`` with the status the
interface fixes (never a 500, nothing stored).

Writeback submission::

    decode body ─► validate payload ─► practice known? ─► idempotency key seen?
        ─► (same operation and payload digest: 200 the existing one; else 409)
        ─► seal the payload under a key of its own ─► RequestWriteback to the actor
           (or decided and appended directly when no actor runs here)
        ─► 202 with the committed Writeback
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
import trio

from actors import core
from actors import outcomes as oc
from actors.actor import Deps, decide_and_append
from actors.applevel import AppLevel, OnboardFailed
from actors.http11 import Request, Response, json_response
from actors.operations import PayloadError, validate
from actors.practices import PracticeSupervisor
from actors.state import FINAL_STATES, WRITEBACK_STATES, Practice, Writeback, writeback_counts
from store.db import DatabaseUnavailable
from store.eventlog import DuplicateIdempotencyKey

log = structlog.get_logger("admin")

try:
    VERSION = importlib.metadata.version("sikka-supervisor")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    VERSION = "0"

WAIT_MAX_S = 60.0
DEADLINE_MAX_S = 10 * 366 * 86400.0  # ten years; far larger values overflow the datetime arithmetic
OFFICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, field: str | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.field = status, code, detail, field

    def response(self) -> Response:
        return json_response(self.status, {"error": self.code, "detail": self.detail, "field": self.field})


REFUSED_STATUS = {
    "unknown_practice": 404,
    "unknown_writeback": 404,
    "idempotency_conflict": 409,
    "not_cancellable": 409,
    "writebacks_in_flight": 409,
}


def refused(decision: core.Refused) -> ApiError:
    return ApiError(REFUSED_STATUS.get(decision.code, 400), decision.code, decision.detail, decision.field)


class SubmitBody(msgspec.Struct, forbid_unknown_fields=True):
    operation: str
    payload: dict[str, Any]
    idempotency_key: str | None = None
    deadline_s: float | None = None


_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_AT = re.compile(r"at `\$\.([A-Za-z0-9_]+)")


def decode_body(body: bytes, type_):
    """``type_`` from JSON ``body``, or the admin API's 400 naming the field."""
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if m := _MISSING.search(text):
            raise ApiError(400, "missing_field", f"the field {m[1]!r} is required", m[1]) from None
        if m := _UNKNOWN.search(text):
            raise ApiError(400, "unknown_field", f"unknown field {m[1]!r}", m[1]) from None
        field = m[1] if (m := _AT.search(text)) else None
        raise ApiError(400, "invalid_field", text, field) from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None


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


def canonical(payload: dict[str, str]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


Route = tuple[str, re.Pattern, Callable[..., Awaitable[Response]]]


class Admin:
    def __init__(self, deps: Deps, practices: PracticeSupervisor, app: AppLevel):
        self.deps = deps
        self.practices = practices
        self.app = app
        self.routes: list[Route] = [
            ("GET", re.compile(r"^/health$"), self.health),
            ("GET", re.compile(r"^/practices$"), self.list_practices),
            ("GET", re.compile(r"^/practices/(?P<office_id>[^/]+)$"), self.get_practice),
            ("POST", re.compile(r"^/practices/(?P<office_id>[^/]+)/writebacks$"), self.submit),
            ("GET", re.compile(r"^/writebacks/(?P<writeback_id>[^/]+)$"), self.get_writeback),
            ("POST", re.compile(r"^/onboard$"), self.onboard),
        ]

    async def handle(self, request: Request) -> Response:
        matched_path = False
        for method, pattern, handler in self.routes:
            m = pattern.match(request.path)
            if m is None:
                continue
            matched_path = True
            if method != request.method:
                continue
            try:
                return await handler(request, **m.groupdict())
            except ApiError as exc:
                return exc.response()
            except DatabaseUnavailable as exc:
                return ApiError(503, "database_unavailable", str(exc)).response()
        if matched_path:
            return ApiError(405, "bad_parameter", f"{request.method} is not allowed on {request.path}").response()
        return json_response(404, {"error": "not_found", "detail": f"no endpoint {request.path}", "field": None})

    # --- helpers ------------------------------------------------------------------------------

    def audit(self, request: Request, what: str, office_id: str | None = None, **extra) -> None:
        log.info("audit", who=request.peer, what=what, office_id=office_id, **extra)

    async def _practice(self, office_id: str) -> Practice:
        actor = self.practices.actors.get(office_id)
        if actor is not None:
            return actor.state
        row = await self.deps.store.practice(office_id) if OFFICE_ID.match(office_id) else None
        if row is None or not row.practice.registered:
            raise ApiError(404, "unknown_practice", f"no practice {office_id!r}")
        return row.practice

    async def practice_status(self, office_id: str) -> dict:
        practice = await self._practice(office_id)
        actor = self.practices.actors.get(office_id)
        supervised = self.practices.supervised.get(office_id)
        now = self.deps.clock()
        if actor is not None:
            counts = writeback_counts(actor.state)
            budget = actor.budget.statistics(now.timestamp())
            rate = {"limit": budget.limit, "used_last_60s": budget.used_last_60s, "remaining": budget.remaining}
            conditions = core.conditions(practice, now)
        else:
            stored = await self.deps.store.writeback_counts(office_id)
            counts = {s: stored.get(s, 0) for s in WRITEBACK_STATES}
            limit = self.deps.settings.rate_limit
            rate = {"limit": limit, "used_last_60s": 0, "remaining": limit}
            conditions = []
        return {
            "office_id": office_id,
            "practice_name": practice.practice_name,
            "practice_ids": list(practice.practice_ids),
            "state": practice.state,
            "conditions": conditions,
            "owner": self.deps.settings.node_id,
            "token_expires_at": practice.token_expires_at,
            "rate": rate,
            "writebacks": counts,
            "last_error": practice.last_error,
            "restarts": supervised.restarts if supervised else 0,
        }

    async def _ask(self, office_id: str, message) -> core.Decision:
        actor = self.practices.actors.get(office_id)
        if actor is not None:
            return await actor.ask(message)
        return await decide_and_append(
            self.deps.store, office_id, message, self.deps.clock(), self.deps.core_settings
        )

    # --- endpoints ----------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        try:
            with trio.fail_after(3):
                practices = len(await self.deps.store.practices())
        except (DatabaseUnavailable, trio.TooSlowError) as exc:
            return json_response(503, {"status": "degraded", "detail": f"the database is unreachable: {exc}"})
        return json_response(
            200, {"status": "ok", "practices": practices, "version": VERSION, "node": self.deps.settings.node_id}
        )

    async def list_practices(self, request: Request) -> Response:
        rows = await self.deps.store.practices()
        ids = [r.practice.office_id for r in rows if r.practice.registered]
        return json_response(200, {"practices": [await self.practice_status(o) for o in ids]})

    async def get_practice(self, request: Request, office_id: str) -> Response:
        return json_response(200, await self.practice_status(office_id))

    async def submit(self, request: Request, office_id: str) -> Response:
        body = decode_body(request.body, SubmitBody)
        try:
            payload = validate(body.operation, body.payload)
        except PayloadError as exc:
            raise ApiError(400, exc.code, exc.detail, exc.field) from None
        if body.idempotency_key is not None and not 0 < len(body.idempotency_key) <= 200:
            raise ApiError(400, "invalid_field", "idempotency_key must be 1 to 200 characters", "idempotency_key")
        if body.idempotency_key is not None and "\x00" in body.idempotency_key:  # PostgreSQL text cannot hold NUL
            raise ApiError(400, "invalid_field", "idempotency_key must not contain NUL characters", "idempotency_key")
        if body.deadline_s is not None and not (
            math.isfinite(body.deadline_s) and 0 < body.deadline_s <= DEADLINE_MAX_S
        ):
            raise ApiError(
                400,
                "invalid_field",
                f"deadline_s must be a number of seconds above 0 and at most {DEADLINE_MAX_S:.0f}",
                "deadline_s",
            )
        await self._practice(office_id)
        digest = await self.deps.credentials.digest(canonical(payload))
        if body.idempotency_key is not None:
            existing = await self._idempotent(office_id, body.idempotency_key, body.operation, digest)
            if existing is not None:
                return json_response(200, writeback_view(existing))
        writeback_id = str(uuid.uuid4())
        sealed = await self.deps.credentials.seal_payload(writeback_id, canonical(payload))
        command = core.RequestWriteback(
            writeback_id=writeback_id,
            operation=body.operation,
            payload=sealed,
            payload_digest=digest,
            idempotency_key=body.idempotency_key,
            deadline_s=body.deadline_s,
        )
        try:
            decision = await self._ask(office_id, command)
        except DuplicateIdempotencyKey:  # a concurrent request with the same key won the race
            await self.deps.credentials.purge_payloads([writeback_id])
            existing = await self._idempotent(office_id, body.idempotency_key, body.operation, digest)
            return json_response(200, writeback_view(existing))
        if isinstance(decision, core.Refused):
            await self.deps.credentials.purge_payloads([writeback_id])
            raise refused(decision)
        if isinstance(decision, core.Duplicate):
            await self.deps.credentials.purge_payloads([writeback_id])
            return json_response(200, writeback_view(await self.deps.store.writeback(decision.writeback_id)))
        self.audit(request, "submit_writeback", office_id, writeback_id=writeback_id, operation=body.operation)
        return json_response(202, writeback_view(await self.deps.store.writeback(writeback_id)))

    async def _idempotent(self, office_id: str, key: str, operation: str, digest: str) -> Writeback | None:
        existing = await self.deps.store.writeback_by_idempotency_key(office_id, key)
        if existing is None:
            return None
        if existing.operation != operation or existing.payload_digest != digest:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this idempotency key was used for a different operation or payload",
                "idempotency_key",
            )
        return existing

    async def get_writeback(self, request: Request, writeback_id: str) -> Response:
        wait = self._wait_parameter(request)
        deadline = trio.current_time() + wait
        while True:
            position = await self.deps.store.last_position()
            wb = await self.deps.store.writeback(writeback_id)
            if wb is None:
                raise ApiError(404, "unknown_writeback", f"no writeback {writeback_id!r}")
            if wb.state in FINAL_STATES or trio.current_time() >= deadline:
                return json_response(200, writeback_view(wb))
            with trio.move_on_at(deadline):
                await self.deps.store.wait_for_append(position)

    @staticmethod
    def _wait_parameter(request: Request) -> float:
        values = request.query.get("wait")
        if not values:
            return 0.0
        try:
            wait = float(values[-1])
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= WAIT_MAX_S:
            raise ApiError(400, "bad_parameter", f"wait must be a number of seconds from 0 to {WAIT_MAX_S:g}", "wait")
        return wait

    async def onboard(self, request: Request) -> Response:
        self.audit(request, "onboard")
        try:
            report = await self.app.onboard()
        except OnboardFailed as exc:
            raise upstream_error(exc.outcome) from None
        return json_response(200, {"practices": report})


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
