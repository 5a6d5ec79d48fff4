"""Writebacks: submit, read (long-poll with ``?wait``), list, cancel, statistics (interface §4).

Submission::

    body decoded by the router (SubmitBody: every field's rule, actors.api.schemas)
      ─► normalize payload (actors.core.operations: the operation's fields, 400 naming one)
      ─► practice served? (404 unknown_practice, offboarded ones included)
      ─► idempotency key seen? ─► same operation and payload digest: 200 the existing one;
                                  else 409 idempotency_conflict
      ─► RequestWriteback with the plaintext beside it (PracticeAccess.ask: the practice's
         actor, or decided and appended here when no actor runs here)
      ─► the commit path seals it only if the core accepts (actors.runtime.commit)
      ─► 202 with the committed Writeback

A request that loses the race for its idempotency key to a concurrent one answers 200 with the
winner. A cancel that leaves the writeback pending (the cancel is recorded; Sikka's DELETE and
the status read that settle it follow) answers once it is final, or after ``CANCEL_WAIT_S``;
one that was submitting when read and pending by the time the actor decided waits the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import trio

from actors.api.access import PracticeAccess
from actors.api.errors import ApiError, audit, refused
from actors.api.http import Request, Response, json_response
from actors.api.query import StatsQuery, WaitQuery, WritebackListQuery
from actors.api.schemas import SubmitBody, canonical
from actors.api.views import Stats, Writebacks, writeback_view
from actors.core import messages
from actors.core.figures import percentile
from actors.core.ids import is_writeback_id
from actors.core.operations import PayloadError, normalize
from actors.core.state import FINAL_STATES, Writeback
from actors.runtime.deps import Deps
from store.db import answer_within
from store.eventlog import DuplicateIdempotencyKey

CANCEL_WAIT_S = 15.0  # a cancel of a pending writeback answers once Sikka's DELETE settled it, or after this
STATS_MAX_ROWS = 100_000


def new_writeback_id() -> str:
    return str(uuid.uuid4())


class WritebackHandlers:
    def __init__(self, deps: Deps, access: PracticeAccess, new_id: Callable[[], str] = new_writeback_id):
        self.deps = deps
        self.access = access
        self.new_id = new_id  # writeback ids; seeded by deterministic simulations

    async def submit(self, request: Request, office_id: str, body: SubmitBody) -> Response:
        try:
            payload = normalize(body.operation, body.payload)
        except PayloadError as exc:
            raise ApiError(400, exc.code, exc.detail, exc.field) from None
        await self.access.served(office_id)
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
            decision = await self.access.ask(office_id, command, plaintexts={writeback_id: plaintext})
        except DuplicateIdempotencyKey:  # a concurrent request with the same key won the race
            existing = await self._idempotent(office_id, body.idempotency_key, body.operation, digest)
            return json_response(200, writeback_view(existing))
        if isinstance(decision, messages.Refused):
            raise refused(decision)
        if isinstance(decision, messages.Duplicate):
            return json_response(200, writeback_view(await self.deps.store.writeback(decision.writeback_id)))
        audit(request, "submit_writeback", office_id, writeback_id=writeback_id, operation=body.operation)
        return json_response(202, writeback_view(await self.deps.store.writeback(writeback_id)))

    async def _idempotent(self, office_id: str, key: str, operation: str, digest: str) -> Writeback | None:
        """The writeback already requested with ``key``, if any; 409 if it was another request."""
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

    async def get_writeback(self, request: Request, writeback_id: str, query: WaitQuery) -> Response:
        wb = await self._known(writeback_id)
        if wb.state not in FINAL_STATES and query.wait > 0:
            wb = await self._settled(writeback_id, query.wait)
        return json_response(200, writeback_view(wb))

    async def list_writebacks(self, request: Request, office_id: str, query: WritebackListQuery) -> Response:
        await self.access.served(office_id)
        if query.before is not None:
            cursor = await self.deps.store.writeback(query.before)
            if cursor is None or cursor.office_id != office_id:
                raise ApiError(400, "bad_parameter", f"before must be the id of one of {office_id}'s writebacks", "before")
        rows = await self.deps.store.writebacks(office_id, query.state or None, query.limit, query.before)
        return json_response(200, Writebacks([writeback_view(w) for w in rows]))

    async def cancel(self, request: Request, writeback_id: str) -> Response:
        wb = await self._known(writeback_id)
        if wb.state in FINAL_STATES:  # the actor no longer holds it; the projection knows
            raise ApiError(409, "not_cancellable", f"the writeback is already {wb.state}")
        decision = await self.access.ask(wb.office_id, messages.CancelWriteback(writeback_id=writeback_id))
        if isinstance(decision, messages.Refused):
            now = await self.deps.store.writeback(writeback_id)
            if decision.code == "unknown_writeback" and now is not None and now.state in FINAL_STATES:
                # it went final between the read above and the actor's decision
                raise ApiError(409, "not_cancellable", f"the writeback is already {now.state}")
            raise refused(decision)
        audit(request, "cancel_writeback", wb.office_id, writeback_id=writeback_id)
        wb = await self.deps.store.writeback(writeback_id)  # as the decision left it (it may have moved on)
        if wb.state == "pending":  # the DELETE at Sikka and the status read that decides follow
            wb = await self._settled(writeback_id, CANCEL_WAIT_S)
        return json_response(200, writeback_view(wb))

    async def _known(self, writeback_id: str) -> Writeback:
        wb = await self.deps.store.writeback(writeback_id) if is_writeback_id(writeback_id) else None
        if wb is None:
            raise ApiError(404, "unknown_writeback", f"no writeback {writeback_id!r}")
        return wb

    async def _settled(self, writeback_id: str, seconds: float) -> Writeback:
        """The writeback once it is final, or as it stands after ``seconds`` (a wait, not the
        database's: each read gets ``SIKKA_DB_TIMEOUT`` of its own)."""
        budget = self.deps.settings.db_timeout
        with trio.move_on_after(seconds):
            while True:
                with answer_within(budget):
                    position = await self.deps.store.last_position()
                    wb = await self.deps.store.writeback(writeback_id)
                if wb.state in FINAL_STATES:
                    return wb
                with answer_within(None):
                    await self.deps.store.wait_for_append(position)
        with answer_within(budget):
            return await self.deps.store.writeback(writeback_id)

    async def stats(self, request: Request, office_id: str, query: StatsQuery) -> Response:
        await self.access.served(office_id)
        since = query.since
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
            Stats(
                requested=len(rows),
                **by_state,
                success_rate=round(by_state["completed"] / decided, 4) if decided else None,
                confirmation_p50_s=_rounded(percentile(latencies, 50)),
                confirmation_p95_s=_rounded(percentile(latencies, 95)),
            ),
        )


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
