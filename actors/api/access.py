"""A practice as the admin API reaches it: known here, run here, asked, described.

``known`` is a registered practice, offboarded ones included (``GET /practices/{office_id}``
shows them); ``served`` is one that is not offboarded: every other endpoint of an offboarded
practice answers 404 ``unknown_practice`` the same way, saying how to bring it back.

Several supervisors: every node answers for every practice. ``ask`` delivers a command to the
practice's actor when it runs here, else decides and appends it here through the one commit
path (``actors.runtime.commit.decide_and_append``: durable at once; the owner's append follower
wakes its actor within a second). What needs the running actor (Sikka reads, operator actions)
first checks ``run_here_or_nowhere``: a practice another node owns answers 503
``practice_unavailable`` naming the owner. An actor that has not decided when the request's
``SIKKA_DB_TIMEOUT`` runs out (``store.db.time_left``) answers 503 ``database_unavailable``
(withdrawn if the actor had not begun it) unless the actor is waiting for a Sikka call and the
database is fine (``Deps.database_problem``): then it is waited for, as long as that call takes.
``status`` is the ``PracticeStatus``: live figures
from the actor when it runs here, the shared tables' counts otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import trio

from actors.api.errors import ApiError
from actors.api.views import PracticeStatus, Rate, practice_view
from actors.core import messages, schedule
from actors.core.ids import is_office_id
from actors.core.state import WRITEBACK_STATES, Practice, writeback_counts
from actors.runtime.actor import PracticeActor
from actors.runtime.mailbox import Unavailable
from actors.runtime.commit import decide_and_append
from actors.runtime.deps import Deps
from store.db import time_left
from actors.runtime.practices import PracticeSupervisor

class PracticeAccess:
    def __init__(self, deps: Deps, practices: PracticeSupervisor):
        self.deps = deps
        self.practices = practices

    def actor(self, office_id: str) -> PracticeActor | None:
        """The practice's actor when it runs in this supervisor."""
        return self.practices.actors.get(office_id)

    async def _row(self, office_id: str):
        """The practice's row in the shared tables (``None`` for an id no practice can have)."""
        return await self.deps.store.practice(office_id) if is_office_id(office_id) else None

    async def stored_owner(self, office_id: str) -> str | None:
        """The supervisor that owns the practice, as the shared tables say."""
        row = await self._row(office_id)
        return row.owner if row else None

    async def known(self, office_id: str) -> Practice:
        """The registered practice, or 404 ``unknown_practice``."""
        actor = self.actor(office_id)
        if actor is not None:
            return actor.state
        row = await self._row(office_id)
        if row is None or not row.practice.registered:
            raise ApiError(404, "unknown_practice", f"no practice {office_id!r}")
        return row.practice

    async def served(self, office_id: str) -> Practice:
        """The registered practice, or 404 ``unknown_practice`` (an offboarded one too)."""
        practice = await self.known(office_id)
        if practice.offboarded:
            raise ApiError(
                404, "unknown_practice",
                f"practice {office_id} was offboarded; `sikka-supervisor onboard --office {office_id}` brings it back",
            )
        return practice

    async def run_here_or_nowhere(self, office_id: str) -> Practice:
        """The served practice, unless another supervisor runs it: 503 naming the owner (§4)."""
        practice = await self.served(office_id)
        if office_id in self.practices.actors:
            return practice
        owner = await self.deps.owner_of(office_id)
        if owner is not None and owner != self.deps.settings.node_id:
            raise ApiError(503, "practice_unavailable", f"practice {office_id} is run by supervisor {owner}; ask it")
        return practice

    async def ask(
        self, office_id: str, message, plaintexts: Mapping[str, bytes] | None = None
    ) -> messages.Decision:
        """The committed decision on ``message`` (``plaintexts``: payloads the commit path seals
        only if the core accepts); 503 when the actor stopped or crashed before answering."""
        actor = self.actor(office_id)
        if actor is None:
            return await decide_and_append(self.deps, office_id, message, plaintexts)
        left = time_left()

        def give_up() -> str | None:
            problem = self.deps.database_problem()
            if problem is None and actor.at_sikka:
                return None
            return problem or f"the practice's actor did not commit the command within {left:g} s"

        try:
            return await actor.ask(
                message, plaintexts, give_up=give_up, check_every=float("inf") if left is None else max(left, 0.01)
            )
        except Unavailable as exc:  # the actor crashed or stopped before answering: the caller retries
            raise ApiError(503, exc.code, exc.detail) from None

    async def wait_while(self, office_id: str, waiting: Callable[[Practice], bool], seconds: float) -> None:
        """Until ``waiting(state)`` is false for the actor running here, or ``seconds`` passed."""
        actor = self.actor(office_id)
        if actor is None:
            return
        with trio.move_on_after(seconds):
            while waiting(actor.state):
                await actor.wait_state_changed()

    async def status(self, office_id: str, owner: str | None = None) -> PracticeStatus:
        """The ``PracticeStatus`` (``owner``: as the shared tables say, for a practice run elsewhere)."""
        practice = await self.known(office_id)
        actor = self.actor(office_id)
        supervised = self.practices.supervised.get(office_id)
        if actor is None:
            stored = await self.deps.store.writeback_counts(office_id)
            limit = self.deps.settings.rate_limit
            rate = Rate(limit, 0, limit)
            counts = {s: stored.get(s, 0) for s in WRITEBACK_STATES}
            conditions = []
        else:
            now = self.deps.clock()
            budget = actor.budget.statistics(now.timestamp())
            owner = self.deps.settings.node_id
            rate = Rate(budget.limit, budget.used_last_60s, budget.remaining)
            counts = writeback_counts(actor.state)
            conditions = schedule.conditions(practice, now)
        restarts = supervised.restarts if supervised else 0
        return practice_view(
            practice, owner=owner, rate=rate, writebacks=counts, conditions=conditions, restarts=restarts
        )
