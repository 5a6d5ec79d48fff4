"""Practice ownership across supervisors: the shell around ``actors.core.leases``.

``Ownership`` decides which practices' actors run on this node. Its rounds::

    snapshot (heartbeat, nodes, leases, practices; one DB time) ─► leases.plan
        ├─ renew what this node holds (a lease not renewed is lost: its actor stops)
        ├─ release: stop the actor, wait until it is gone, release the lease (NOTIFY leases)
        └─ acquire: take the lease, then start the actor

Each round also re-divides the app-level budget (``SIKKA_APP_RATE_LIMIT``, which Sikka counts for
the whole application) between the live nodes (``leases.app_share``): a node joining or leaving
changes every node's share within a round, with no setting to split by hand.

A round runs every ``ttl/4``, at once when a peer joins, leaves or releases (``LISTEN leases``),
when a practice this node has not heard of appears, and when a lease it waits for expires; at
most one of those poked rounds per ``ROUND_GAP_S`` (a round reads and renews every lease: with
thousands of practices onboarding, one round serves the pokes of many). A
separate guard task applies the local safety margins (``leases.guard``) whatever the database
does: an actor whose lease was not renewed in time is stopped, then cancelled, before the lease
can expire.

The practice supervisor asks ``allows(office_id)`` before starting an actor (so onboarding on
any node cannot start a practice another node runs), and actors ask ``owns(office_id)`` when an
append fails on the stream version: still the owner → another process added a command (a
writeback submitted to a peer): catch up and decide again; not the owner → the actor stops.

Shutdown (``close``): the node leaves the live set, every actor is stopped and its lease
released the moment it is gone, so peers take over at once rather than after the lease time.
"""

from __future__ import annotations

import math
from functools import partial

import structlog
import trio

from actors.core import leases
from actors.core.ratelimit import Budget
from actors.runtime.practices import PracticeSupervisor
from store import leases as rows
from store.db import Database, DatabaseUnavailable

log = structlog.get_logger("ownership")

RELEASE_POLL_S = 0.05
ROUND_GAP_S = 0.5  # between two rounds a poke asks for (onboarding thousands of practices pokes for each)
GUARD_CHUNK = 500  # practices the guard looks at between two checkpoints


class Ownership:
    def __init__(
        self, db: Database, node_id: str, ttl: float, practices: PracticeSupervisor, app_budget: Budget | None = None
    ):
        self.db = db
        self.node_id = node_id
        self.timing = leases.Timing(ttl)
        self.practices = practices
        self.app_budget = app_budget  # split between the live nodes (``leases.app_share``)
        self.app_share: leases.AppShare | None = None
        self._joined_at = 0.0
        self.held: dict[str, int] = {}  # office → term
        self.renewed_at: dict[str, float] = {}  # office → trio time the last successful renewal was sent
        self.releasing: set[str] = set()
        self.known: set[str] = set()  # practices of the last snapshot
        self.closing = False
        self._poke = trio.Event()
        self._nursery: trio.Nursery | None = None
        practices.allows = self.allows

    # --- asked by others ----------------------------------------------------------------------

    def allows(self, office_id: str) -> bool:
        """May an actor for the practice start here? (A no asks for a round: maybe it is ours.)"""
        if office_id in self.held and office_id not in self.releasing and not self.closing:
            return True
        self.poke()
        return False

    def notice(self, office_id: str) -> None:
        """Events were appended for a practice that has no actor here."""
        if office_id not in self.known:
            self.poke()

    def poke(self) -> None:
        self._poke.set()

    async def owns(self, office_id: str) -> bool:
        term = self.held.get(office_id)
        return term is not None and await self.db.run(rows.holds, self.node_id, office_id, term)

    async def owner_of(self, office_id: str) -> str | None:
        return await self.db.run(rows.owner_of, office_id)

    # --- the rounds ---------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self.db.run(rows.join, self.node_id, self.timing.ttl)
        self._joined_at = trio.current_time()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._listen)
            wait = await self._round()  # a lone node owns everything before it reports ready
            nursery.start_soon(self._guard)
            task_status.started()
            poked_at = -math.inf
            while True:
                with trio.move_on_after(wait) as timer:
                    await self._poke.wait()
                if not timer.cancelled_caught:  # poked: at once, unless a poke had a round just now
                    await trio.sleep_until(poked_at + ROUND_GAP_S)  # (then one round for the pokes since)
                    poked_at = trio.current_time()
                self._poke = trio.Event()
                try:
                    wait = await self._round()
                except DatabaseUnavailable as exc:  # the guard keeps the actors safe meanwhile
                    log.warning("lease.round_failed", error=str(exc))
                    wait = self.timing.renew_every / 2

    async def _round(self) -> float:
        """One plan carried out; returns the seconds until the next round is due."""
        sent_at = trio.current_time()
        snap = await self.db.run(partial(rows.snapshot, heartbeat=not self.closing), self.node_id, self.timing.ttl)
        self.known = set(snap.practices)
        self._share_app_budget(len(leases.live_nodes(self.node_id, snap.nodes, snap.now)))
        plan = await trio.to_thread.run_sync(  # thousands of rendezvous hashes: off the event loop
            leases.plan, self.node_id, [] if self.closing else snap.practices, snap.leases, dict(self.held),
            snap.nodes, snap.now,
        )
        lost = await self.db.run(rows.renew, self.node_id, dict(self.held), self.timing.ttl)
        for office_id in list(self.held):
            if office_id in lost:
                self._lost(office_id)
            else:
                self.renewed_at[office_id] = sent_at
        for office_id in plan.release:
            if office_id in self.held and office_id not in self.releasing:
                self.releasing.add(office_id)
                self._nursery.start_soon(self._release, office_id)
        acquired = await self.db.run(rows.acquire, self.node_id, list(plan.acquire), self.timing.ttl)
        for office_id, term in acquired.items():
            self.held[office_id] = term
            self.renewed_at[office_id] = sent_at
            log.info("lease.acquired", office_id=office_id, term=term)
        for office_id in self.held:  # new leases, and actors the guard stopped while renewals failed
            if office_id not in self.releasing:
                self.practices.start(office_id)
        wait = self.timing.renew_every
        if plan.recheck_at is not None:
            wait = min(wait, max(0.05, (plan.recheck_at - snap.now).total_seconds() + 0.05))
        return max(0.0, sent_at + wait - trio.current_time())

    def _share_app_budget(self, live: int) -> None:
        if self.app_budget is None:
            return
        before = self.app_share
        self.app_share = leases.app_share(
            before, live, trio.current_time(), self._joined_at, self.timing.ttl, self.app_budget.span
        )
        self.app_budget.set_share(self.app_share.fraction)
        if before is None or before.fraction != self.app_share.fraction:
            log.info("app_budget.share", nodes=live, limit=self.app_budget.limit, of=self.app_budget.whole_limit)

    def _lost(self, office_id: str) -> None:
        """The lease is gone (expired, or another node holds it): the actor stops; the guard
        cancels it if it has not finished in time."""
        log.warning("lease.lost", office_id=office_id, term=self.held.pop(office_id))
        self.releasing.discard(office_id)
        self.practices.stop(office_id)

    async def _release(self, office_id: str) -> None:
        self.practices.stop(office_id)
        while office_id in self.practices.running() and office_id in self.held:
            await trio.sleep(RELEASE_POLL_S)
        term = self.held.pop(office_id, None)
        self.releasing.discard(office_id)
        if term is not None:
            try:
                await self.db.run(rows.release, self.node_id, {office_id: term})
            except DatabaseUnavailable as exc:  # it expires by itself
                log.warning("lease.release_failed", office_id=office_id, error=str(exc))
                return
            log.info("lease.released", office_id=office_id, term=term)

    async def _guard(self) -> None:
        """Stop, then cancel, every actor whose lease was not renewed in time (or is not held)."""
        while True:
            for n, office_id in enumerate(self.practices.running()):
                if n % GUARD_CHUNK == 0:  # thousands of practices: let the actors run between chunks
                    await trio.sleep(0)
                    now = trio.current_time()
                renewed_at = self.renewed_at.get(office_id, float("-inf"))
                verdict = leases.guard(renewed_at, now, self.timing)
                if verdict == "cancel":
                    self.practices.cancel(office_id)
                elif verdict == "stop" or office_id not in self.held:
                    self.practices.stop(office_id)
            await trio.sleep(self.timing.renew_every / 4)

    async def _listen(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """A peer joined, left or released: a round now (after a reconnection too: the
        ``store.db.RECONNECTED`` payload is no node's, so it asks for a round)."""
        async with self.db.listen(rows.CHANNEL) as notes:
            task_status.started()
            async for node in notes:
                if node != self.node_id:
                    self.poke()

    # --- shutdown -----------------------------------------------------------------------------

    async def begin_close(self) -> None:
        """Leave the live set and hand every practice over as its actor stops."""
        self.closing = True
        self.poke()
        try:
            await self.db.run(rows.leave, self.node_id)
        except DatabaseUnavailable as exc:  # the heartbeat expires by itself
            log.warning("node.leave_failed", error=str(exc))

    async def close(self) -> None:
        """After the actors are gone: release whatever is still held."""
        held, self.held = dict(self.held), {}
        try:
            await self.db.run(rows.release, self.node_id, held)
        except DatabaseUnavailable as exc:  # they expire by themselves
            log.warning("lease.release_failed", practices=len(held), error=str(exc))
            return
        log.info("lease.released_all", practices=len(held))
