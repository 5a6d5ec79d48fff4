"""The practice supervisor: one supervised actor per practice, started and stopped one by one.

``PracticeSupervisor.run`` owns the nursery of practice actors (the only nursery kept on an
object: the supervisor's own). ``start(office_id)`` runs ``Supervised(...).run(actor)`` for a
practice (one-for-one restarts, parking after too many crashes: ``actors.runtime.supervision``);
``stop(office_id)`` lets that actor finish its step and return; ``drain(grace)`` does that for
every actor and cancels whatever has not finished after ``grace`` seconds.

Several supervisors: ``allows(office_id)`` (set by ``actors.runtime.ownership``; always yes for a lone
process without it) is asked before every start and restart, so an actor runs only where its
practice's lease is held; an actor that finds another node owns its practice
(``LostOwnership``) ends like a stopped one, without a restart.

An actor that crashed because the database was away (``DatabaseUnavailable`` escaping a step
outside the commit path, e.g. its recovery read) is restarted with backoff but never parked for
it (``Supervised(transient=...)``): the database coming back is all it needs.

While a practice is parked its state shows ``parked`` (``PracticeParked``/``PracticeUnparked``
events, appended directly since no actor runs).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import msgspec
import structlog
import trio

from actors.core import events as ev
from actors.runtime.actor import LostOwnership, PracticeActor
from actors.runtime.commit import StoredStream, commit
from actors.runtime.deps import Deps
from actors.runtime.supervision import RestartPolicy, Supervised
from store.db import DatabaseUnavailable

log = structlog.get_logger("supervisor")


class PracticeSupervisorStatistics(msgspec.Struct, frozen=True):
    supervised: int  # practices with a supervision loop (running, backing off or parked)
    running: int  # actors running now
    parked: int
    restarts: int  # total restarts across practices


class PracticeSupervisor:
    def __init__(self, deps: Deps, policy: RestartPolicy = RestartPolicy(), rng: random.Random | None = None):
        self.deps = deps
        self.policy = policy
        self.rng = rng  # restart jitter; seeded by deterministic simulations
        self.actors: dict[str, PracticeActor] = {}
        self.supervised: dict[str, Supervised] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._started: dict[str, trio.Event] = {}
        self.allows: Callable[[str], bool] = lambda office_id: True

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def statistics(self) -> PracticeSupervisorStatistics:
        records = list(self.supervised.values())
        return PracticeSupervisorStatistics(
            supervised=len(self._scopes),
            running=len(self.actors),
            parked=sum(r.parked for r in records),
            restarts=sum(r.restarts for r in records),
        )

    def running(self) -> list[str]:
        return sorted(self._scopes)

    def start(self, office_id: str) -> bool:
        """Start the practice's supervised actor unless it runs already."""
        if office_id in self._scopes or self._nursery is None or not self.allows(office_id):
            return False
        scope = trio.CancelScope()
        self._scopes[office_id] = scope
        self._started[office_id] = trio.Event()
        self._nursery.start_soon(self._supervise, office_id, scope)
        return True

    async def wait_started(self, office_id: str) -> None:
        event = self._started.get(office_id)
        if event is not None:
            await event.wait()

    def stop(self, office_id: str) -> None:
        """Let the practice's actor finish its current step and return (no restart)."""
        scope = self._scopes.get(office_id)
        actor = self.actors.get(office_id)
        if actor is not None:
            actor.stop()
        elif scope is not None:
            scope.cancel()  # not running an actor right now (backing off or parked)

    def cancel(self, office_id: str) -> None:
        """Cancel the practice's actor now, mid-step (its lease is about to run out)."""
        scope = self._scopes.get(office_id)
        if scope is not None:
            scope.cancel()

    async def drain(self, grace: float) -> None:
        """Stop every actor; cancel what has not finished after ``grace`` seconds."""
        for office_id in list(self._scopes):
            self.stop(office_id)
        with trio.move_on_after(grace):
            while self._scopes:
                await trio.sleep(0.05)
        for scope in list(self._scopes.values()):
            scope.cancel()

    async def _supervise(self, office_id: str, scope: trio.CancelScope) -> None:
        supervised = self.supervised.setdefault(
            office_id, Supervised(office_id, self.policy, self.rng, transient=_database_away)
        )
        clean = False
        try:
            with scope:
                await supervised.run(partial(self._run_actor, office_id), on_park=partial(self._park, office_id))
                clean = True
        finally:
            self._scopes.pop(office_id, None)
            self._started.pop(office_id, None)
            log.info("actor.stopped", office_id=office_id, clean=clean)

    async def _run_actor(self, office_id: str) -> None:
        """One life of the practice's actor: the supervised child (a crash propagates)."""
        if not self.allows(office_id):  # the lease went elsewhere while backing off
            return
        actor = PracticeActor(office_id, self.deps)
        self.actors[office_id] = actor
        try:
            await actor.run(task_status=_Started(self._started, office_id, lambda: len(self.actors)))
        except LostOwnership as exc:
            log.warning("actor.lost_ownership", office_id=office_id, detail=str(exc))
        finally:
            if self.actors.get(office_id) is actor:
                del self.actors[office_id]

    async def _park(self, office_id: str, seconds: float, error: str) -> None:
        until = self.deps.clock() + timedelta(seconds=seconds)
        await self._append_directly(office_id, ev.PracticeParked(at=self.deps.clock(), until=until, error=error))

    async def _append_directly(self, office_id: str, event: ev.Event) -> None:
        """Record parking; best effort: the practice whose appends keep failing is the one being
        parked, and a failure here must not escape into the nursery every practice shares."""
        try:
            stream = await StoredStream.load(self.deps.store, office_id)
            await commit(stream, lambda state: [event], self.deps.credentials, patient=False)
        except Exception as exc:
            log.error("supervisor.record_failed", office_id=office_id, event_type=ev.type_name(event), error=repr(exc))


def _database_away(exc: Exception) -> bool:
    return isinstance(exc, DatabaseUnavailable)


class _Started:
    """A ``task_status`` that wakes ``wait_started`` once the actor has recovered, and forgets
    the event (an actor that runs needs none). When the last actor still recovering has
    recovered, ``actors.recovered`` is logged with the number running (after a restart: the
    moment every practice's actor works again)."""

    def __init__(self, waiting: dict[str, trio.Event], office_id: str, running: Callable[[], int]):
        self.waiting = waiting
        self.office_id = office_id
        self.running = running

    def started(self, value=None) -> None:
        event = self.waiting.pop(self.office_id, None)
        if event is not None:
            event.set()
            if not self.waiting:
                log.info("actors.recovered", running=self.running())
