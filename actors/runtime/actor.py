"""The practice actor: the thin trio shell that carries out the pure core's decisions.

One actor per practice owns the practice's request key (in memory, and encrypted at rest), its
rate budget and its writebacks. Its life::

    recover: snapshot + the stream's tail (read with the actors starting alongside: ``loads``),
       │      folded with ``evolve``; ``recover`` events
       │      (a writeback left ``submitting`` by a crash becomes ``unknown``, never re-sent)
       ▼
    loop: step = next_step(state, now, budget)
       ├─ Sleep(until)  wait for a message (command, list outcome, wake-up) or the time
       ├─ Record        append the timer events
       ├─ Submit        append SubmitAttempted FIRST, then send, then append what it came to
       ├─ Poll          writeback_status (STATUS lane): created_id, error detail, or the
       │                planner's choice of check (``CheckByStatus``)
       ├─ Reconcile     GET /writebacks itself, every page (the app-level task is overdue)
       ├─ Refresh       a key grant (TOKEN lane); new keys stored encrypted before the event
       ├─ Cancel        DELETE /writebacks?id= (app-level budget)
       ├─ KeyCheck      request_key_info of an idle practice (BACKGROUND lane)
       └─ Offboard      delete keys at Sikka, destroy credentials, shred payloads; then return

Every state change is appended before the actor acts on it, and the state is always
``fold(previous, appended events)``: the same fold as replay. A message is decided with
``decide`` and answered (through its reply channel) only after its events are committed.

Shutdown: ``stop()`` lets the current step finish (a call in flight completes, its outcome
recorded under a shield), then the loop returns; a crash propagates to the supervisor (restart).

Another writer (an append fails on the stream version): when ``deps.owns`` says this node still
owns the practice, a peer supervisor stored a command (a submission, a cancel): the actor folds
the new events and decides again; nothing was sent on the lost decision, since a request leaves
only after its ``SubmitAttempted`` is committed. When it does not own the practice any more, it
raises ``LostOwnership`` and stops (no restart): a stale owner can never write twice. A foreign
``SubmitAttempted`` (another actor of this practice submitted) is a crash: the restart's
recovery turns that writeback ``unknown`` and reconciliation settles it.

The database away: the actor's own steps wait it out in the commit path (state untouched until
the events are in the log; ``actors.runtime.commit``), a command someone asked for gets the fault
as its answer (503) at once, a snapshot is skipped; anything else escaping is an interruption
the supervisor restarts without parking (``actors.runtime.practices``). Asking: ``mailbox``
(``at_sikka`` tells an asker the actor waits for Sikka, not the database); the inbox: ``inbox``.
Interactive reads (``read``) run in the caller's task on the same key and budget (READ lane).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TypeVar

import msgspec
import structlog
import trio
from msgspec.structs import replace

from actors.core import events as ev
from actors.core import messages
from actors.core import outcomes as oc
from actors.core.checks import loaded
from actors.core.decide import decide, recover
from actors.core.messages import Decision
from actors.core.operations import PayloadError
from actors.core.ratelimit import Budget, BudgetStats, Lane
from actors.core.secret import Secret
from actors.core.schedule import bodies_needed, conditions, key_usable, list_targets, next_step, recovered_key_call_at
from actors.core.state import Practice, empty, evolve, writeback_counts
from actors.runtime.calls import observe, read_own_list, take_budget
from actors.runtime.commit import SNAPSHOT_SCHEMA, commit, committed, folded, patiently
from actors.runtime.deps import Deps
from actors.runtime.inbox import Inbox
from actors.runtime.mailbox import Envelope, Unavailable, Wake, answer_to, ask, tell
from store.db import DatabaseUnavailable
from store.eventlog import ConcurrencyError

log = structlog.get_logger("actor")
T = TypeVar("T")

SNAPSHOT_EVERY = 200  # events between snapshots
INBOX_SIZE = 256  # messages waiting for the actor (tell drops beyond it; ask waits)
SHIELDED_APPEND_S = 10.0  # how long a shielded append (an outcome already received) may take


class LostOwnership(Exception):
    """Another supervisor owns the practice now: the actor stops (its supervisor does not restart it)."""


class ForeignSubmit(Exception):
    """Another actor of this practice submitted a writeback: restart, so recovery settles it."""


class ActorStatistics(msgspec.Struct, frozen=True):
    office_id: str
    state: str
    version: int
    conditions: list[str]
    token_expires_at: datetime | None
    last_error: str | None
    writebacks: dict[str, int]
    budget: BudgetStats
    inbox: int


class PracticeActor:
    def __init__(self, office_id: str, deps: Deps):
        self.office_id = office_id
        self.stream_id = ev.stream_id(office_id)
        self.deps = deps
        self.state: Practice = empty(office_id)
        self.version = 0
        self.budget = Budget(deps.settings.rate_limit)
        self._inbox: Inbox[Envelope] = Inbox(INBOX_SIZE)
        self._request_key: Secret | None = None
        self._snapshot_version = 0
        self._last_keyed_call_at: datetime | None = None
        self._stopping = False
        self.at_sikka = False  # waiting for a Sikka call (not the database): askers wait for it
        self._waiting: trio.CancelScope | None = None  # the inbox wait that stop() interrupts
        self._state_changed: trio.Event | None = None  # made when someone waits (most never are)

    # --- public -------------------------------------------------------------------------------

    def statistics(self) -> ActorStatistics:
        now = self.deps.clock()
        return ActorStatistics(
            office_id=self.office_id,
            state=self.state.state,
            version=self.version,
            conditions=conditions(self.state, now),
            token_expires_at=self.state.token_expires_at,
            last_error=self.state.last_error,
            writebacks=writeback_counts(self.state),
            budget=self.budget.statistics(now.timestamp()),
            inbox=len(self._inbox),
        )

    async def ask(
        self,
        message,
        plaintexts: Mapping[str, bytes] | None = None,
        *,
        give_up: Callable[[], str | None] = lambda: None,
        check_every: float = float("inf"),
    ) -> Decision:
        """Deliver a command and wait for its decision (events: committed). ``Unavailable``
        when the actor stops or crashes before answering; ``DatabaseUnavailable`` when the
        database was away, or when no answer came within ``check_every`` seconds and
        ``give_up()`` names a reason (the command withdrawn if the actor had not begun it)."""
        return await ask(self._inbox, message, plaintexts, give_up=give_up, check_every=check_every)

    def tell(self, message) -> None:
        """Deliver a message without waiting (dropped if the inbox is full: senders re-send)."""
        tell(self._inbox, message)

    def stop(self) -> None:
        """Finish the current step, then return."""
        self._stopping = True
        if self._waiting is not None:
            self._waiting.cancel()

    async def wait_state_changed(self) -> None:
        if self._state_changed is None:
            self._state_changed = trio.Event()
        await self._state_changed.wait()

    async def read(self, call: Callable[[Secret], Awaitable[oc.Result]]) -> oc.Result:
        """An interactive read with the practice's key and budget (READ lane); on a refused key
        one refresh and one retry."""
        with structlog.contextvars.bound_contextvars(office_id=self.office_id):
            return await self._read(call)

    async def _read(self, call: Callable[[Secret], Awaitable[oc.Result]]) -> oc.Result:
        for attempt in range(2):
            if self.state.state != "active":
                raise Unavailable("practice_unavailable", f"the practice is {self.state.state}")
            key = await self._usable_key()
            sent_at = await take_budget(self.budget, Lane.READ, self.deps.clock)
            result = await call(key)
            self._after_keyed_call(result, sent_at)
            if isinstance(result.outcome, oc.KEY_REFUSED) and attempt == 0:
                await self.ask(messages.RefreshToken())
                continue
            return result
        return result

    # --- the loop -----------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        structlog.contextvars.bind_contextvars(office_id=self.office_id)
        try:
            await self._recover()
            task_status.started()
            while not self._stopping and not self.state.offboarded:
                step = next_step(
                    self.state, self.deps.clock(), self.budget, self.deps.core_settings,
                    last_keyed_call_at=self._last_keyed_call_at,
                )
                if isinstance(step, messages.Sleep):
                    await self._wait(step.until)  # the idle path, a frame shorter (per idle actor)
                else:
                    await self._step(step)
        finally:
            self._close_inbox()

    def _close_inbox(self) -> None:
        """A returning or crashed actor answers nobody: fail the askers still waiting (their
        replies would otherwise never come; a restarted actor has an inbox of its own)."""
        while True:
            try:
                envelope = self._inbox.receive_nowait()
            except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
                break
            if envelope.reply is not None:
                envelope.reply.close()
        self._inbox.close()

    async def _recover(self) -> None:
        found = await self.deps.loads.load(self.office_id)
        self.state, self.version, self._snapshot_version = folded(self.office_id, found.snapshot, found.records)
        self.state = loaded(self.state)
        self._request_key = found.request_key
        self._last_keyed_call_at = recovered_key_call_at(self.office_id, self.deps.clock(), self.deps.core_settings)

        def recovered(state: Practice) -> list[ev.Event]:
            events = recover(state, self.deps.clock(), self.deps.core_settings)
            if events:
                log.warning("actor.recovered", events=[ev.type_name(e) for e in events],
                            writebacks=[e.writeback_id for e in events if isinstance(e, ev.OutcomeUnknown)])
            return events

        await self._commit(recovered)

    async def _step(self, step: messages.AnyStep) -> None:
        match step:
            case messages.Record(events=events):
                await self._commit(lambda state: list(events), attempts=1)  # on a conflict: plan afresh
            case messages.Submit():
                await self._submit(step)
            case messages.Poll(writeback_id=wid, sikka_writeback_id=sid):
                result = await self._keyed(Lane.STATUS, lambda key: self.deps.client.writeback_status(key, sid))
                await self._decide_shielded(messages.StatusOutcome(writeback_id=wid, result=result))
            case messages.Reconcile(ranges=ranges):
                own = await self._at_sikka(read_own_list(self.deps, self.state, ranges))
                await self._decide(await self._with_bodies(own))
            case messages.Refresh(grant=grant):
                await self._refresh(grant)
            case messages.Cancel(writeback_id=wid, sikka_writeback_id=sid):
                sent_at = await take_budget(self.deps.app_budget, Lane.SUBMIT, self.deps.clock)
                result = await self._at_sikka(self.deps.client.delete_writeback(sid))
                observe(self.deps.app_budget, result, sent_at, self.deps.clock().timestamp())
                await self._decide_shielded(messages.DeleteOutcome(writeback_id=wid, result=result))
            case messages.KeyCheck():
                result = await self._keyed(Lane.BACKGROUND, self.deps.client.request_key_info)
                await self._decide_shielded(messages.KeyCheckOutcome(result=result))
            case messages.Offboard():
                await self._offboard()
            case _:
                raise TypeError(f"unknown step {step!r}")

    async def _wait(self, until: datetime | None) -> None:
        """Until ``until``, a message, or ``stop()``, which cancels this wait's scope (a cancelled
        receive takes nothing from the inbox); the message is handled outside the scope. One
        scope for the time and the stop: an idle actor's wait is all that most practices hold."""
        if self._stopping:
            return
        envelope = None
        deadline = self.deps.deadline(until) if until is not None else math.inf
        with trio.CancelScope(deadline=deadline) as self._waiting:
            try:
                envelope = await self._inbox.receive()
            finally:
                self._waiting = None
        if envelope is not None:
            await self._handle(envelope)

    async def _handle(self, envelope: Envelope) -> None:
        if envelope.withdrawn:
            return
        envelope.taken = True
        message = envelope.message
        if isinstance(message, Wake):
            await patiently(self._fold_tail, key=self.office_id)
            return
        if isinstance(message, messages.ListOutcome):
            message = await self._with_bodies(message)
        if envelope.reply is None:
            await self._decide(message)
            return
        try:  # someone waits: a database fault is their answer (503), not a wait or a crash
            answer = await self._decide(message, envelope.plaintexts, patient=False)
        except DatabaseUnavailable as exc:
            answer = exc
            self.tell(Wake())  # an append in flight may still land: read the tail soon
        except BaseException:
            envelope.reply.close()  # the asker gets Unavailable, not an endless wait
            raise
        answer_to(envelope, answer)

    # --- the commit path (actors.runtime.commit; this actor is its Stream) ----------------------

    async def _commit(self, decision_for, *, plaintexts=None, attempts=None, patient=True) -> Decision | None:
        kw = {"attempts": attempts} if attempts is not None else {}
        return await commit(self, decision_for, self.deps.credentials, plaintexts=plaintexts, patient=patient, **kw)

    async def _decide(
        self, message, plaintexts: Mapping[str, bytes] | None = None, *, patient: bool = True
    ) -> Decision:
        decision = await self._commit(
            lambda state: decide(state, message, self.deps.clock(), self.deps.core_settings),
            plaintexts=plaintexts,
            patient=patient,
        )
        if decision is None:
            raise ConcurrencyError(self.stream_id, self.version, -1)  # a crash: the restart re-reads
        return decision

    async def _decide_shielded(self, message) -> None:
        """Record what a Sikka call that already happened came to, even while stopping (shielded
        for up to ``SHIELDED_APPEND_S``); a database still away after that is waited for
        unshielded, until it answers or the actor is cancelled (the next owner's recovery then
        settles the writeback)."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(SHIELDED_APPEND_S) as waited:
                await self._decide(message)
        if waited.cancelled_caught:
            await self._decide(message)

    async def append(self, events: list[ev.Event]) -> None:
        """Stream: append the recorded events at this version (``ConcurrencyError`` if another
        writer came first), fold them all (transient ones too: ``actors.core.checks``), tell the
        listeners, snapshot now and then."""
        recorded = [e for e in events if ev.recorded(e)]
        version = await self.deps.store.append(self.stream_id, self.version, recorded) if recorded else self.version
        self._folded(events, version)
        await self._snapshot_now_and_then()

    async def appended(self, events: list[ev.Event]) -> bool:
        """Stream: an append whose answer was lost: fold ``events`` if the log holds them."""
        version = await committed(self.deps.store, self.stream_id, self.version, events)
        if version is None:
            return False
        self._folded(events, version)
        await self._snapshot_now_and_then()
        return True

    def _folded(self, events: list[ev.Event], version: int) -> None:
        """``events`` (their recorded ones) are in the log up to ``version``: fold them all and tell
        the listeners."""
        self.version = version
        before = self.state
        for e in events:
            self.state = evolve(self.state, e)
        for e in filter(ev.recorded, events):
            log.info("practice.event", type=ev.type_name(e), writeback_id=getattr(e, "writeback_id", None))
        if self._state_changed is not None:
            self._state_changed.set()
            self._state_changed = None
        self._tell_if_targets_moved(before)
        self.deps.on_events(before, events)

    async def _snapshot_now_and_then(self) -> None:
        """A snapshot every ``SNAPSHOT_EVERY`` events; one the database refuses is skipped (the
        events are in the log: a snapshot only shortens recovery)."""
        if self.version - self._snapshot_version < SNAPSHOT_EVERY:
            return
        try:
            await self.deps.store.save_snapshot(
                self.stream_id, self.version, SNAPSHOT_SCHEMA, msgspec.json.encode(self.state)
            )
        except DatabaseUnavailable as exc:
            log.warning("actor.snapshot_skipped", version=self.version, error=str(exc))
            return
        self._snapshot_version = self.version

    def _tell_if_targets_moved(self, before: Practice) -> None:
        """Wake the app-level list task when what this practice needs from it changed (not at
        every append: each wake plans over every practice's targets, thousands of them)."""
        if list_targets(before) != list_targets(self.state):
            self.deps.on_targets_changed()

    async def catch_up(self) -> None:
        """Stream, after a conflict: a peer supervisor stored a command (fold it and decide
        again), unless this node no longer owns the practice (``LostOwnership``: stop)."""
        await self._check_owned()
        await self._fold_tail()

    async def _check_owned(self) -> None:
        if not await self.deps.owns(self.office_id):
            self._stopping = True
            raise LostOwnership(f"practice {self.office_id}: another supervisor owns it now")

    async def _fold_tail(self) -> None:
        """Fold events another writer appended (e.g. a writeback stored by a peer supervisor)."""
        foreign_submit = False
        before = self.state
        for record in await self.deps.store.read_stream(self.stream_id, self.version + 1):
            self.state = evolve(self.state, record.event)
            self.version = record.version
            foreign_submit |= isinstance(record.event, ev.SubmitAttempted)
        self._tell_if_targets_moved(before)
        if foreign_submit:
            await self._check_owned()
            raise ForeignSubmit(f"practice {self.office_id}: another actor submitted a writeback")

    # --- Sikka calls --------------------------------------------------------------------------

    async def _usable_key(self) -> Secret:
        if self._request_key is None or not key_usable(self.state, self.deps.clock()):
            await self.ask(messages.RefreshToken())
            if self._request_key is None or not key_usable(self.state, self.deps.clock()):
                raise Unavailable("practice_unavailable", "the practice has no usable request key")
        return self._request_key

    def _after_keyed_call(self, result: oc.Result, sent_at: float) -> None:
        self._last_keyed_call_at = self.deps.clock()
        observe(self.budget, result, sent_at, self._last_keyed_call_at.timestamp())

    async def _keyed(self, lane: Lane, call: Callable[[Secret], Awaitable[oc.Result]]) -> oc.Result:
        sent_at = await take_budget(self.budget, lane, self.deps.clock)
        result = await self._at_sikka(call(self._request_key or Secret("")))
        self._after_keyed_call(result, sent_at)
        return result

    async def _at_sikka(self, call: Awaitable[T]) -> T:
        """Await a Sikka call; meanwhile askers know the actor waits for Sikka, not the database."""
        self.at_sikka = True
        try:
            return await call
        finally:
            self.at_sikka = False

    async def _submit(self, step: messages.Submit) -> None:
        wid = step.writeback_id
        # the intent is durable before the request leaves; another writer first: nothing was sent, plan again
        if await self._commit(lambda state: [step.attempted], attempts=1) is None:
            return
        sealed = self.state.payloads.get(wid)
        payload = await patiently(self.deps.credentials.open_payload, wid, sealed, key=self.office_id) if sealed else None
        if payload is None:
            result = oc.Result(oc.Rejected(400, "payload_purged", "the payload was purged before it was sent"))
        else:
            try:
                result = await self._keyed(
                    Lane.SUBMIT, lambda key: self.deps.client.submit(key, step.operation, json.loads(payload))
                )
            except PayloadError as exc:  # nothing was sent
                result = oc.Result(oc.Rejected(400, exc.code, exc.detail))
        await self._decide_shielded(messages.SubmitOutcome(writeback_id=wid, result=result))

    async def _refresh(self, grant: str) -> None:
        credentials, client = self.deps.credentials, self.deps.client
        refresh_key = await credentials.secret(self.office_id, "refresh_key") if grant == "refresh_key" else None
        if grant == "refresh_key" and refresh_key is None:
            grant = "request_key"
        sent_at = await take_budget(self.budget, Lane.TOKEN, self.deps.clock)
        if grant == "refresh_key":
            result = await self._at_sikka(client.refresh_request_key(refresh_key))
        else:
            secret = await credentials.secret(self.office_id, "secret_key")
            if secret is None:
                result = oc.Result(oc.Unauthorized("no_secret_key", "no secret key stored: run onboarding"))
            else:
                result = await self._at_sikka(client.issue_request_key(self.office_id, secret))
        observe(self.budget, result, sent_at, self.deps.clock().timestamp())
        if isinstance(result.outcome, oc.Ok) and isinstance(result.outcome.value, oc.TokenGrant):
            token: oc.TokenGrant = result.outcome.value
            with trio.CancelScope(shield=True):
                await credentials.put_secret(self.office_id, "request_key", token.request_key)
                if token.refresh_key:
                    await credentials.put_secret(self.office_id, "refresh_key", token.refresh_key)
            self._request_key = token.request_key
            self._last_keyed_call_at = self.deps.clock()
        await self._decide_shielded(messages.RefreshOutcome(result=result, grant=grant))

    async def _with_bodies(self, outcome: messages.ListOutcome) -> messages.ListOutcome:
        """Add the decrypted payloads of writebacks being reconciled, and the Sikka ids that our
        final writebacks of this practice hold (so no item is matched twice)."""
        wanted = {wid: self.state.payloads[wid] for wid in bodies_needed(self.state) if wid in self.state.payloads}
        if not wanted:
            return outcome
        opened = await self.deps.credentials.open_payloads(wanted)
        bodies = {wid: json.loads(plain) for wid, plain in opened.items() if plain is not None}
        claimed = await self.deps.store.sikka_ids(self.office_id)
        return replace(outcome, bodies=bodies, claimed_ids=frozenset(claimed))

    async def _offboard(self) -> None:
        client, credentials = self.deps.client, self.deps.credentials
        ok = True
        if self._request_key:
            ok &= isinstance((await client.revoke_request_key(self._request_key)).outcome, oc.Ok)
        refresh_key = await credentials.secret(self.office_id, "refresh_key")
        if refresh_key:
            ok &= isinstance((await client.revoke_refresh_key(refresh_key)).outcome, oc.Ok)
        await credentials.destroy_practice(self.office_id)
        await credentials.purge_payloads(await self.deps.store.writeback_ids(self.office_id))
        self._request_key = None
        await self._decide_shielded(messages.OffboardOutcome(ok=True, detail="" if ok else "a key was not deleted at Sikka"))
