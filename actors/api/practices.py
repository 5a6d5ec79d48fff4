"""Practices and the operator's actions on them (interface section 4).

``GET /practices`` and ``GET /practices/{office_id}`` answer ``PracticeStatus`` objects
(``PracticeAccess.status``), offboarded practices included. An operator action (pause, resume, refresh-token, retry-failed,
offboard) is a command to the practice's actor::

    practice served? (404, offboarded too) ─► run by another supervisor? (503 naming it) ─► ask: the committed
        decision ─► Refused? (its status) ─► audit line ─► the answer: the status, once the
        effect shows where it takes a Sikka call (refresh-token, offboard: within a bound),
        or the writebacks re-queued (retry-failed)
"""

from __future__ import annotations

from actors.api.access import PracticeAccess
from actors.api.http import Request, Response, json_response
from actors.api.errors import audit, refused
from actors.api.views import Practices, Retried
from actors.core import events as ev
from actors.core import messages

REFRESH_WAIT_S = 20.0
OFFBOARD_WAIT_S = 20.0


class PracticeHandlers:
    def __init__(self, access: PracticeAccess):
        self.access = access

    async def list_practices(self, request: Request) -> Response:
        rows = [r for r in await self.access.deps.store.practices() if r.practice.registered]
        return json_response(200, Practices([await self.access.status(r.practice.office_id, r.owner) for r in rows]))

    async def get_practice(self, request: Request, office_id: str) -> Response:
        owner = await self.access.stored_owner(office_id)
        return json_response(200, await self.access.status(office_id, owner))

    async def _operator(self, request: Request, office_id: str, what: str, message) -> messages.Decision:
        await self.access.run_here_or_nowhere(office_id)
        decision = await self.access.ask(office_id, message)
        if isinstance(decision, messages.Refused):
            raise refused(decision)
        audit(request, what, office_id)
        return decision

    async def pause(self, request: Request, office_id: str) -> Response:
        await self._operator(request, office_id, "pause", messages.Pause())
        return json_response(200, await self.access.status(office_id))

    async def resume(self, request: Request, office_id: str) -> Response:
        await self._operator(request, office_id, "resume", messages.Resume())
        return json_response(200, await self.access.status(office_id))

    async def refresh_token(self, request: Request, office_id: str) -> Response:
        await self._operator(request, office_id, "refresh_token", messages.RefreshToken())
        # answer once the refresh happened (or failed), within a bound
        await self.access.wait_while(office_id, lambda practice: practice.refresh_requested, REFRESH_WAIT_S)
        return json_response(200, await self.access.status(office_id))

    async def retry_failed(self, request: Request, office_id: str) -> Response:
        decision = await self._operator(request, office_id, "retry_failed", messages.RetryFailed())
        retried = [e.writeback_id for e in decision if isinstance(e, ev.WritebackRequested)]
        return json_response(200, Retried(len(retried), retried))

    async def offboard(self, request: Request, office_id: str) -> Response:
        await self._operator(request, office_id, "offboard", messages.OffboardPractice())
        await self.access.wait_while(
            office_id,
            lambda practice: not practice.offboarded and office_id in self.access.practices.actors,
            OFFBOARD_WAIT_S,
        )
        return json_response(200, await self.access.status(office_id))
