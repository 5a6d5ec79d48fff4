"""The admin API (interface section 4): HTTP/1.1 + JSON on the Unix socket (``actors.http11``).

Handlers read the projections and the actors' statistics, and deliver commands to the actors,
which answer after their events are committed. Bad input never reaches an actor: bodies are
decoded with msgspec into structs that forbid unknown fields, payloads are validated against the
operation table, and every failure is ``{"error", "detail", "field"}`` with the status the
interface fixes (never a 500, nothing stored).

Several supervisors: every node answers for every practice. Submissions and cancels of a
practice owned elsewhere are decided and appended here (durable at once; the owner's append
follower wakes its actor within a second); reads come from the shared tables; Sikka reads and
operator actions (refresh-token, retry-failed, pause, resume, offboard) for a practice another
node owns answer 503 ``practice_unavailable`` naming the owner.

Writeback submission::

    decode body ─► validate payload ─► practice known? ─► idempotency key seen?
        ─► (same operation and payload digest: 200 the existing one; else 409)
        ─► seal the payload under a key of its own ─► RequestWriteback to the actor
           (or decided and appended directly when no actor runs here)
        ─► 202 with the committed Writeback
"""

from __future__ import annotations

import hmac
import importlib.metadata
import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
import structlog
import trio

from actors.core import alerting, slotting
from actors.monitoring import metrics
from actors.core.figures import percentile
from actors.core import events as ev
from actors.core import outcomes as oc
from actors.runtime.actor import Unavailable
from actors.runtime.commit import decide_and_append
from actors.runtime.deps import Deps
from actors.runtime.applevel import AppLevel, OnboardFailed
from actors.api.http import Request, Response, json_response
from actors.core.operations import FORBIDDEN_PATH_CHARS, PayloadError, normalize
from actors.runtime.practices import PracticeSupervisor
from actors.core.state import FINAL_STATES, WRITEBACK_STATES, Practice, Writeback, writeback_counts
from store.db import DatabaseUnavailable
from store.eventlog import DuplicateIdempotencyKey
from actors.core import messages
from actors.core import schedule

log = structlog.get_logger("admin")

try:
    VERSION = importlib.metadata.version("sikka-supervisor")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    VERSION = "0"

WAIT_MAX_S = 60.0
CANCEL_WAIT_S = 15.0  # a cancel of a pending writeback answers once Sikka's DELETE settled it, or after this
REFRESH_WAIT_S = 20.0
OFFBOARD_WAIT_S = 20.0
WEBHOOK_ONBOARD_S = 60.0  # a webhook triggers an onboarding check at most this often
STATS_MAX_ROWS = 100_000
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


def refused(decision: messages.Refused) -> ApiError:
    return ApiError(REFUSED_STATUS.get(decision.code, 400), decision.code, decision.detail, decision.field)


IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
"""1 to 200 characters, no NUL (PostgreSQL text cannot hold one)."""
DeadlineSeconds = Annotated[float, msgspec.Meta(gt=0, le=DEADLINE_MAX_S)]


class SubmitBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /practices/{office_id}/writebacks``: every field's rule is here (the operation and
    its payload fields: ``actors.core.operations.normalize``)."""

    operation: str
    payload: dict[str, Any]
    idempotency_key: IdempotencyKey | None = None
    deadline_s: DeadlineSeconds | None = None


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


class Route(msgspec.Struct, frozen=True):
    """One endpoint: ``path`` is an OpenAPI template (``/practices/{office_id}``) that is both
    matched against requests and published in ``/openapi.json``."""

    method: str
    path: str
    handler: Callable[..., Awaitable[Response]]
    summary: str

    @property
    def pattern(self) -> re.Pattern:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


class Admin:
    def __init__(
        self, deps: Deps, practices: PracticeSupervisor, app: AppLevel, *, monitor=None, metrics=None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ):
        self.deps = deps
        self.new_id = new_id  # writeback ids; seeded by deterministic simulations
        self.practices = practices
        self.app = app
        self.monitor = monitor  # actors.monitor.Monitor: the alert table
        self.metrics = metrics  # actors.metrics.Metrics
        self._last_webhook_onboarding: float | None = None
        self.webhooks_received = 0
        self.last_webhook_at: datetime | None = None
        P = "/practices/{office_id}"
        self.routes: list[Route] = [
            Route("GET", "/health", self.health, "liveness and the database"),
            Route("GET", "/openapi.json", self.openapi, "this description"),
            Route("GET", "/practices", self.list_practices, "every practice's status"),
            Route("GET", P, self.get_practice, "one practice's status"),
            Route("POST", P + "/writebacks", self.submit, "queue a writeback"),
            Route("GET", P + "/writebacks", self.list_writebacks, "a practice's writebacks, newest first"),
            Route("GET", "/writebacks/{writeback_id}", self.get_writeback, "one writeback (long-poll with wait)"),
            Route("POST", "/writebacks/{writeback_id}/cancel", self.cancel, "cancel a writeback"),
            Route("GET", P + "/stats", self.stats, "counts, success rate, confirmation latency"),
            Route("POST", P + "/refresh-token", self.refresh_token, "refresh the request key now"),
            Route("POST", P + "/retry-failed", self.retry_failed, "re-queue retryable failures once"),
            Route("POST", P + "/pause", self.pause, "send nothing new to Sikka"),
            Route("POST", P + "/resume", self.resume, "resume sending"),
            Route("POST", P + "/offboard", self.offboard, "delete keys at Sikka, shred credentials and payloads"),
            Route("GET", P + "/appointments", self.appointments, "appointments in a date range"),
            Route("GET", P + "/appointments/{appointment_sr_no}", self.appointment, "one appointment"),
            Route("GET", P + "/available-slots", self.available_slots, "open slots on a date"),
            Route("GET", P + "/patients", self.patients, "patients by name or phone"),
            Route("GET", P + "/patients/{patient_id}", self.patient, "one patient"),
            Route("GET", P + "/providers", self.providers, "providers"),
            Route("GET", P + "/operatories", self.operatories, "operatories"),
            Route("GET", P + "/appointment-statuses", self.appointment_statuses, "appointment status values"),
            Route("GET", "/usage", self.usage, "rate usage per practice"),
            Route("GET", "/alerts", self.alerts, "the alerts that hold"),
            Route("GET", "/metrics", self.metrics_text, "Prometheus metrics (text format)"),
            Route("POST", "/onboard", self.onboard, "run the authorization flow now"),
            Route("POST", "/webhooks/sikka", self.webhook, "Sikka's webhook (callback-key)"),
        ]
        self._compiled = [(r, r.pattern) for r in self.routes]

    async def handle(self, request: Request) -> Response:
        matched_path = False
        for route, pattern in self._compiled:
            m = pattern.match(request.path)
            if m is None:
                continue
            matched_path = True
            if route.method != request.method:
                continue
            try:
                return await route.handler(request, **m.groupdict())
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

    async def practice_status(self, office_id: str, owner: str | None = None) -> dict:
        practice = await self._practice(office_id)
        actor = self.practices.actors.get(office_id)
        supervised = self.practices.supervised.get(office_id)
        now = self.deps.clock()
        if actor is not None:
            counts = writeback_counts(actor.state)
            budget = actor.budget.statistics(now.timestamp())
            rate = {"limit": budget.limit, "used_last_60s": budget.used_last_60s, "remaining": budget.remaining}
            conditions = schedule.conditions(practice, now)
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
            "owner": self.deps.settings.node_id if actor is not None else owner,
            "token_expires_at": practice.token_expires_at,
            "rate": rate,
            "writebacks": counts,
            "last_error": practice.last_error,
            "restarts": supervised.restarts if supervised else 0,
        }

    async def _ask(self, office_id: str, message, plaintexts: dict[str, bytes] | None = None) -> messages.Decision:
        actor = self.practices.actors.get(office_id)
        if actor is None:
            return await decide_and_append(self.deps, office_id, message, plaintexts)
        try:
            return await actor.ask(message, plaintexts)
        except Unavailable as exc:  # the actor crashed or stopped before answering: the caller retries
            raise ApiError(503, exc.code, exc.detail) from None

    async def _not_owned_elsewhere(self, office_id: str) -> None:
        """503 naming the owner when another supervisor runs the practice (interface §4)."""
        if office_id in self.practices.actors:
            return
        owner = await self.deps.owner_of(office_id)
        if owner is not None and owner != self.deps.settings.node_id:
            raise ApiError(503, "practice_unavailable", f"practice {office_id} is run by supervisor {owner}; ask it")

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
        rows = [r for r in await self.deps.store.practices() if r.practice.registered]
        return json_response(
            200, {"practices": [await self.practice_status(r.practice.office_id, r.owner) for r in rows]}
        )

    async def get_practice(self, request: Request, office_id: str) -> Response:
        row = await self.deps.store.practice(office_id) if OFFICE_ID.match(office_id) else None
        return json_response(200, await self.practice_status(office_id, row.owner if row else None))

    async def submit(self, request: Request, office_id: str) -> Response:
        body = decode_body(request.body, SubmitBody)
        try:
            payload = normalize(body.operation, body.payload)
        except PayloadError as exc:
            raise ApiError(400, exc.code, exc.detail, exc.field) from None
        await self._practice(office_id)
        plaintext = canonical(payload)
        digest = await self.deps.credentials.digest(plaintext)
        if body.idempotency_key is not None:
            existing = await self._idempotent(office_id, body.idempotency_key, body.operation, digest)
            if existing is not None:
                return json_response(200, writeback_view(existing))
        writeback_id = self.new_id()
        command = messages.RequestWriteback(
            writeback_id=writeback_id,
            operation=body.operation,
            payload_digest=digest,
            idempotency_key=body.idempotency_key,
            deadline_s=body.deadline_s,
        )
        try:  # the payload is sealed only if the core accepts the request
            decision = await self._ask(office_id, command, plaintexts={writeback_id: plaintext})
        except DuplicateIdempotencyKey:  # a concurrent request with the same key won the race
            existing = await self._idempotent(office_id, body.idempotency_key, body.operation, digest)
            return json_response(200, writeback_view(existing))
        if isinstance(decision, messages.Refused):
            raise refused(decision)
        if isinstance(decision, messages.Duplicate):
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


    # --- writebacks: listing, cancel, stats -----------------------------------------------------

    async def list_writebacks(self, request: Request, office_id: str) -> Response:
        await self._practice(office_id)
        states = request.query.get("state", [])
        unknown = [s for s in states if s not in WRITEBACK_STATES]
        if unknown:
            raise ApiError(400, "bad_parameter", f"unknown state {unknown[0]!r}", "state")
        limit = _int_parameter(request, "limit", 50, 1, 500)
        before = _last(request, "before")
        rows = await self.deps.store.writebacks(office_id, states or None, limit, before)
        return json_response(200, {"writebacks": [writeback_view(w) for w in rows]})

    async def cancel(self, request: Request, writeback_id: str) -> Response:
        wb = await self.deps.store.writeback(writeback_id)
        if wb is None:
            raise ApiError(404, "unknown_writeback", f"no writeback {writeback_id!r}")
        if wb.state in FINAL_STATES:  # the actor no longer holds it; the projection knows
            raise ApiError(409, "not_cancellable", f"the writeback is already {wb.state}")
        decision = await self._ask(wb.office_id, messages.CancelWriteback(writeback_id=writeback_id))
        if isinstance(decision, messages.Refused):
            now = await self.deps.store.writeback(writeback_id)
            if decision.code == "unknown_writeback" and now is not None and now.state in FINAL_STATES:
                # it went final between the read above and the actor's decision
                raise ApiError(409, "not_cancellable", f"the writeback is already {now.state}")
            raise refused(decision)
        self.audit(request, "cancel_writeback", wb.office_id, writeback_id=writeback_id)
        if wb.state == "pending":  # the DELETE at Sikka and the status read that decides follow
            with trio.move_on_after(CANCEL_WAIT_S):
                wb = await self._wait_final(writeback_id)
        return json_response(200, writeback_view(await self.deps.store.writeback(writeback_id)))

    async def _wait_final(self, writeback_id: str) -> Writeback:
        while True:
            position = await self.deps.store.last_position()
            wb = await self.deps.store.writeback(writeback_id)
            if wb.state in FINAL_STATES:
                return wb
            await self.deps.store.wait_for_append(position)

    async def stats(self, request: Request, office_id: str) -> Response:
        await self._practice(office_id)
        since = _datetime_parameter(request, "since")
        rows = [
            w
            for w in await self.deps.store.writebacks(office_id, None, STATS_MAX_ROWS)
            if since is None or w.requested_at >= since
        ]
        by_state = {s: sum(1 for w in rows if w.state == s) for s in ("completed", "failed", "cancelled")}
        decided = by_state["completed"] + by_state["failed"]
        latencies = sorted(
            (w.completed_at - w.requested_at).total_seconds() for w in rows if w.state == "completed" and w.completed_at
        )
        return json_response(
            200,
            {
                "requested": len(rows),
                **by_state,
                "success_rate": round(by_state["completed"] / decided, 4) if decided else None,
                "confirmation_p50_s": _rounded(percentile(latencies, 50)),
                "confirmation_p95_s": _rounded(percentile(latencies, 95)),
            },
        )

    # --- operator actions ---------------------------------------------------------------------

    async def _operator(self, request: Request, office_id: str, what: str, message) -> messages.Decision:
        await self._practice(office_id)
        await self._not_owned_elsewhere(office_id)
        decision = await self._ask(office_id, message)
        if isinstance(decision, messages.Refused):
            raise refused(decision)
        self.audit(request, what, office_id)
        return decision

    async def pause(self, request: Request, office_id: str) -> Response:
        await self._operator(request, office_id, "pause", messages.Pause())
        return json_response(200, await self.practice_status(office_id))

    async def resume(self, request: Request, office_id: str) -> Response:
        await self._operator(request, office_id, "resume", messages.Resume())
        return json_response(200, await self.practice_status(office_id))

    async def refresh_token(self, request: Request, office_id: str) -> Response:
        await self._operator(request, office_id, "refresh_token", messages.RefreshToken())
        actor = self.practices.actors.get(office_id)
        if actor is not None:  # answer once the refresh happened (or failed), within a bound
            with trio.move_on_after(REFRESH_WAIT_S):
                while actor.state.refresh_requested:
                    await actor.wait_state_changed()
        return json_response(200, await self.practice_status(office_id))

    async def retry_failed(self, request: Request, office_id: str) -> Response:
        decision = await self._operator(request, office_id, "retry_failed", messages.RetryFailed())
        retried = [e.writeback_id for e in decision if isinstance(e, ev.WritebackRequested)]
        return json_response(200, {"retried": len(retried), "writebacks": retried})

    async def offboard(self, request: Request, office_id: str) -> Response:
        await self._operator(request, office_id, "offboard", messages.OffboardPractice())
        actor = self.practices.actors.get(office_id)
        if actor is not None:
            with trio.move_on_after(OFFBOARD_WAIT_S):
                while not actor.state.offboarded and office_id in self.practices.actors:
                    await actor.wait_state_changed()
        return json_response(200, await self.practice_status(office_id))

    # --- reads through the practice's actor (interactive lane) --------------------------------

    async def _read(self, office_id: str, call) -> Any:
        await self._practice(office_id)
        await self._not_owned_elsewhere(office_id)
        actor = self.practices.actors.get(office_id)
        if actor is None:
            raise ApiError(503, "practice_unavailable", f"practice {office_id} has no running actor")
        try:
            result = await actor.read(call)
        except Unavailable as exc:
            raise ApiError(503, exc.code, exc.detail) from None
        if not isinstance(result.outcome, oc.Ok):
            raise upstream_error(result.outcome)
        return result.outcome.value

    async def appointments(self, request: Request, office_id: str) -> Response:
        start = _date_parameter(request, "startdate") or self.deps.clock().date()
        end = _date_parameter(request, "enddate") or start + timedelta(days=7)
        if end < start:
            raise ApiError(400, "bad_parameter", "enddate is before startdate", "enddate")
        limit = _int_parameter(request, "limit", 50, 1, 500)
        items = await self._read(office_id, lambda key: self.deps.client.appointments(key, start, end, limit=limit))
        return json_response(200, {"items": items, "total": len(items)})

    async def _read_one(self, office_id: str, field: str, value: str, call) -> Response:
        """One item by a path id (checked against the characters Sikka forbids), or 404."""
        _path_id(value, field)
        item = await self._read(office_id, lambda key: call(key, value))
        if item is None:
            raise ApiError(404, "not_found", f"no item with {field} {value!r}", field)
        return json_response(200, item)

    async def appointment(self, request: Request, office_id: str, appointment_sr_no: str) -> Response:
        return await self._read_one(office_id, "appointment_sr_no", appointment_sr_no, self.deps.client.appointment)

    async def available_slots(self, request: Request, office_id: str) -> Response:
        day = _date_parameter(request, "date") or self.deps.clock().date()
        provider = _last(request, "provider_id")
        filters = {"provider_id": provider} if provider else {}
        client = self.deps.client
        items = await self._read(office_id, lambda key: client.available_slots(key, day, day, **filters))
        if items:
            return json_response(200, {"items": items, "source": "sikka"})
        schedule = await self._read(office_id, lambda key: client.practice_schedule(key, fields="get_all"))
        booked = await self._read(office_id, lambda key: client.appointments(key, day, day, limit=500, fields="operatory"))
        providers = [provider] if provider else [
            p["provider_id"] for p in await self._read(office_id, lambda key: client.providers(key, status="active"))
        ]
        slots = slotting.open_slots(day, providers, schedule, booked)
        return json_response(200, {"items": slots, "source": "computed"})

    async def patients(self, request: Request, office_id: str) -> Response:
        query = (_last(request, "query") or "").strip()
        if not query:
            raise ApiError(400, "bad_parameter", "query is required (a name or phone digits)", "query")
        limit = _int_parameter(request, "limit", 50, 1, 500)
        items = await self._read(office_id, lambda key: self.deps.client.search_patients(key, query, limit=limit))
        return json_response(200, {"items": items, "total": len(items)})

    async def patient(self, request: Request, office_id: str, patient_id: str) -> Response:
        return await self._read_one(office_id, "patient_id", patient_id, self.deps.client.patient)

    async def providers(self, request: Request, office_id: str) -> Response:
        items = await self._read(office_id, lambda key: self.deps.client.providers(key))
        return json_response(200, {"items": items, "total": len(items)})

    async def operatories(self, request: Request, office_id: str) -> Response:
        client = self.deps.client
        practices = await self._read(office_id, lambda key: client.practices(key))
        cust_ids = sorted({p.get("cust_id", "") for p in practices if p.get("cust_id")}) or ["1"]
        items = []
        for cust_id in cust_ids:
            items += await self._read(office_id, lambda key, c=cust_id: client.operatories(key, c, is_hidden="F"))
        return json_response(200, {"items": items, "total": len(items)})

    async def appointment_statuses(self, request: Request, office_id: str) -> Response:
        client = self.deps.client
        items = await self._read(
            office_id, lambda key: client.practice_variables(key, service_name="Appointment Status")
        )
        return json_response(200, {"items": items, "total": len(items)})

    # --- usage, webhook, description ----------------------------------------------------------

    async def usage(self, request: Request) -> Response:
        now = self.deps.clock()
        out = []
        for office_id, actor in sorted(self.practices.actors.items()):
            b = actor.budget.statistics(now.timestamp())
            out.append(
                {
                    "office_id": office_id,
                    "practice_name": actor.state.practice_name,
                    "limit": b.limit,
                    "requests_used": b.used_last_60s,
                    "requests_remaining": b.remaining,
                    "percent_used": round(100 * b.used_last_60s / b.limit, 1) if b.limit else 100.0,
                    "window_start": datetime.fromtimestamp(b.window_start, UTC) if b.window_start else None,
                    "server_remaining": b.server_remaining,
                    "server_reset_s": b.server_reset_s,
                    "requests_today": b.requests_today,
                }
            )
        return json_response(200, {"practices": out})

    async def alerts(self, request: Request) -> Response:
        return json_response(200, {"alerts": alerting.listing(self.monitor.table if self.monitor else {})})

    async def metrics_text(self, request: Request) -> Response:
        if self.metrics is None:
            return json_response(404, {"error": "not_found", "detail": "metrics are not collected", "field": None})
        return Response(200, self.metrics.exposition(), metrics.CONTENT_TYPE)

    async def webhook(self, request: Request) -> Response:
        expected = self.deps.settings.webhook_callback_key
        if not expected:
            return json_response(404, {"error": "not_found", "detail": "the webhook is not configured", "field": None})
        given = request.headers.get("callback-key", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "wrong or missing callback-key")
        self.webhooks_received += 1
        self.last_webhook_at = self.deps.clock()
        self.app.targets_changed()  # an early status poll (coalesced by the list planner)
        now = trio.current_time()
        if self._last_webhook_onboarding is None or now - self._last_webhook_onboarding >= WEBHOOK_ONBOARD_S:
            self._last_webhook_onboarding = now
            self.app.request_onboarding()
        return json_response(202, {"status": "accepted"})

    async def openapi(self, request: Request) -> Response:
        return json_response(200, openapi_document(self.routes))

    async def onboard(self, request: Request) -> Response:
        self.audit(request, "onboard")
        try:
            report = await self.app.onboard()
        except OnboardFailed as exc:
            raise upstream_error(exc.outcome) from None
        return json_response(200, {"practices": report})


def _last(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else None


def _int_parameter(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = _last(request, name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be a whole number from {low} to {high}", name)
    return int(raw)


def _date_parameter(request: Request, name: str) -> date | None:
    raw = _last(request, name)
    if raw is None or raw == "":
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be a date yyyy-mm-dd", name) from None


def _datetime_parameter(request: Request, name: str) -> datetime | None:
    raw = _last(request, name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be an ISO-8601 time", name) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _path_id(value: str, field: str) -> None:
    if not value or any(c in FORBIDDEN_PATH_CHARS for c in value) or not value.isprintable():
        raise ApiError(400, "invalid_field", f"{field} holds a character Sikka forbids in paths", field)


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def openapi_document(routes: list[Route]) -> dict:
    """The OpenAPI 3.1 description of ``routes`` (kept in step by construction and by a test)."""
    error = {"$ref": "#/components/schemas/Error"}
    paths: dict[str, dict] = {}
    for route in routes:
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", route.path)
        ]
        operation = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "parameters": params,
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
                "4XX": {"description": "bad request", "content": {"application/json": {"schema": error}}},
                "5XX": {"description": "unavailable", "content": {"application/json": {"schema": error}}},
            },
        }
        if route.handler.__name__ == "submit":
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubmitBody"}}},
            }
            operation["responses"]["202"] = {"description": "queued", "content": {"application/json": {"schema": {"type": "object"}}}}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    (submit_schema,), components = msgspec.json.schema_components([SubmitBody], ref_template="#/components/schemas/{name}")
    components["Error"] = {
        "type": "object",
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}, "field": {"type": ["string", "null"]}},
        "required": ["error", "detail", "field"],
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Sikka Supervisor admin API", "version": VERSION},
        "paths": paths,
        "components": {"schemas": components},
    }


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
