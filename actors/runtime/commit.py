"""The one commit path: decide, seal, append, fold; decide again after another writer's append.

Every event of a practice reaches the log through ``commit``::

    decision = decision_for(state)           pure: a core decision, or a step's timer events
      └─ Refused / Duplicate / [] ──► returned as is: nothing sealed, nothing stored
    events = seal(decision)                  the payload of a new writeback (the plaintext the
                                             caller handed in) or of a retry (opened from the
                                             failed writeback) sealed under a data key of its
                                             own: the only place a payload is encrypted
    await stream.append(events)              appended at the stream's version, then folded with
                                             ``evolve`` (the fold replay uses)
      └─ ConcurrencyError: another writer came first ──► stream.catch_up(); decide again,
         up to ``attempts`` times; then ``None`` (the caller plans again, or gives up)

So a payload is sealed only once the core has accepted the request (a refusal or a repeat seals
nothing), and a key sealed for a decision that was never stored is destroyed again.

A ``Stream`` is the practice as its writer knows it: the running actor (its in-memory state; on a
conflict it checks it still owns the practice and folds the tail), or ``StoredStream`` (loaded
from the store: a practice whose actor does not run here, e.g. a submission to a non-owner,
onboarding without a supervisor, parking).

Database faults (``store.db.DatabaseUnavailable``) never touch the stream's state: it is folded
only once the events are known to be in the log. ``patient`` commits (the actor's own steps)
retry every database step with a jittered backoff until the database answers (or the caller is
cancelled: a lease lost, a shutdown); an append whose answer was lost (a cut connection, a call
abandoned after ``SIKKA_DB_TIMEOUT``) may have committed, so it is *settled* by reading the
stream (``Stream.appended``): our events there are folded as appended, never appended twice.
A commit someone waits for (``patient=False``: an admin call) looks once whether a lost append
landed, else raises ``DatabaseUnavailable`` so the caller answers 503 and the client retries
(with its idempotency key); an append still in flight may land later, and then reaches the state
through the next conflict (``catch_up``) or the append follower's wake-up.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

import msgspec
import structlog
import trio
from msgspec.structs import replace

from actors.core import events as ev
from actors.core.decide import decide
from actors.core.messages import Decision
from actors.core.policy import stable_jitter
from actors.core.state import Practice, empty, evolve, fold
from store.db import DatabaseUnavailable, backoff
from store.eventlog import ConcurrencyError, DuplicateIdempotencyKey, RecordedEvent, Snapshot

log = structlog.get_logger("commit")

CONFLICT_RETRIES = 5  # decisions re-made after another writer's append before giving up
SNAPSHOT_SCHEMA = 1
DB_RETRY_MIN_S = 0.1  # a patient commit's pause after a database fault: from this, doubling …
DB_RETRY_MAX_S = 5.0  # … up to this, jittered

T = TypeVar("T")


class Stream(Protocol):
    office_id: str
    state: Practice
    version: int

    async def append(self, events: list[ev.Event]) -> None:
        """Append the recorded ones at ``version`` (``ConcurrencyError`` if the stream moved on)
        and fold them all (``actors.core.events.TRANSIENT`` are only folded)."""

    async def catch_up(self) -> None:
        """After a conflict: take in what the other writer appended."""

    async def appended(self, events: list[ev.Event]) -> bool:
        """An append of ``events`` at ``version`` lost its answer: did it commit? If so the
        events are folded as ``append`` would have (``committed`` reads the stream)."""


async def patiently(call: Callable[..., Awaitable[T]], *args, key: str = "") -> T:
    """``await call(*args)``, again after a jittered backoff for as long as the database is away
    (cancellable: a lease lost or a shutdown ends the wait). The jitter derives from ``key`` (the
    practice) and the attempt: practices spread out, and a seeded simulation replays exactly."""
    for attempt in itertools.count():
        try:
            result = await call(*args)
        except DatabaseUnavailable as exc:
            if attempt == 0:
                log.warning("commit.database_unavailable", error=str(exc))
            await trio.sleep(backoff(attempt, stable_jitter(f"{key}:{attempt}"), DB_RETRY_MIN_S, DB_RETRY_MAX_S))
            continue
        if attempt:
            log.info("commit.database_back", attempts=attempt + 1)
        return result
    raise AssertionError("unreachable")


async def _at_once(call: Callable[..., Awaitable[T]], *args, key: str = "") -> T:
    return await call(*args)


async def committed(store, stream_id: str, version: int, events: list[ev.Event]) -> int | None:
    """The stream's version after ``events`` if the log holds exactly their recorded ones right
    after ``version`` (an append whose answer was lost did commit), else ``None``."""
    records = await store.read_stream(stream_id, version + 1)
    ours = [ev.encode(e) for e in events if ev.recorded(e)]
    if [ev.encode(r.event) for r in records[: len(ours)]] == ours:
        return version + len(ours)
    return None


async def load_practice(store, office_id: str) -> tuple[Practice, int, int]:
    """(state, version, snapshot version): the latest snapshot plus the stream's tail, folded."""
    stream = ev.stream_id(office_id)
    snapshot, records = (await store.load_streams([stream], SNAPSHOT_SCHEMA))[stream]
    return folded(office_id, snapshot, records)


def folded(office_id: str, snapshot: Snapshot | None, records: list[RecordedEvent]) -> tuple[Practice, int, int]:
    """(state, version, snapshot version) of a practice from its snapshot and the events after it."""
    state, version, snapshot_version = empty(office_id), 0, 0
    if snapshot is not None:
        state = msgspec.json.decode(snapshot.state, type=Practice)
        version = snapshot_version = snapshot.version
    for record in records:
        state = evolve(state, record.event)
        version = record.version
    return state, version, snapshot_version


class StoredStream:
    """A practice read from the store (its actor does not run in this process)."""

    def __init__(self, store, office_id: str):
        self.store = store
        self.office_id = office_id
        self.state = empty(office_id)
        self.version = 0

    @classmethod
    async def load(cls, store, office_id: str) -> StoredStream:
        stream = cls(store, office_id)
        await stream.catch_up()
        return stream

    async def append(self, events: list[ev.Event]) -> None:
        recorded = [e for e in events if ev.recorded(e)]
        if recorded:
            self.version = await self.store.append(ev.stream_id(self.office_id), self.version, recorded)
        self.state = fold(self.state, events)

    async def catch_up(self) -> None:
        self.state, self.version, _ = await load_practice(self.store, self.office_id)

    async def appended(self, events: list[ev.Event]) -> bool:
        version = await committed(self.store, ev.stream_id(self.office_id), self.version, events)
        if version is None:
            return False
        self.version, self.state = version, fold(self.state, events)
        return True


class Sealer:
    """Seals the payloads of the writebacks a decision requests; remembers what it sealed so a
    decision re-made after a conflict reuses it, and a key that ends up unused is destroyed."""

    def __init__(self, credentials, plaintexts: Mapping[str, bytes]):
        self.credentials = credentials
        self.plaintexts = plaintexts
        self.sealed: dict[str, str] = {}

    async def seal(self, state: Practice, events: list[ev.Event]) -> list[ev.Event]:
        return [
            replace(e, payload=await self._sealed(state, e)) if isinstance(e, ev.WritebackRequested) else e
            for e in events
        ]

    async def _sealed(self, state: Practice, e: ev.WritebackRequested) -> str:
        if e.writeback_id in self.sealed:
            return self.sealed[e.writeback_id]
        plain = self.plaintexts.get(e.writeback_id)
        if plain is None and e.retry_of is not None:  # a retry: the failed writeback's payload
            ciphertext = state.payloads.get(e.retry_of)
            plain = await self.credentials.open_payload(e.retry_of, ciphertext) if ciphertext else None
            if plain is None:
                return ""  # purged meanwhile: the submission fails as payload_purged
        if plain is None:
            raise ValueError(f"writeback {e.writeback_id} was requested without its payload")
        self.sealed[e.writeback_id] = await self.credentials.seal_payload(e.writeback_id, plain)
        return self.sealed[e.writeback_id]

    async def discard(self, kept: frozenset[str] = frozenset()) -> None:
        """Destroy the keys sealed for writebacks that were not stored (best effort: a key left
        behind by a database fault opens nothing, since no event refers to it)."""
        unused = [wid for wid in self.sealed if wid not in kept]
        if unused:
            try:
                await self.credentials.purge_payloads(unused)
            except DatabaseUnavailable as exc:
                log.warning("commit.unused_keys_kept", writebacks=len(unused), error=str(exc))


async def commit(
    stream: Stream,
    decision_for: Callable[[Practice], Decision],
    credentials,
    *,
    plaintexts: Mapping[str, bytes] | None = None,
    attempts: int = CONFLICT_RETRIES,
    patient: bool = True,
) -> Decision | None:
    """Decide on the stream's state, seal, append, fold (see the module docstring). Returns the
    decision as stored (events with sealed payloads), a refusal, or ``None`` when every attempt
    met another writer. ``patient``: wait out database faults (else raise them)."""
    sealer = Sealer(credentials, plaintexts or {})
    wait = patiently if patient else _at_once
    for _ in range(attempts):
        decision = decision_for(stream.state)
        if not isinstance(decision, list) or not decision:
            await sealer.discard()
            return decision
        events = await wait(sealer.seal, stream.state, decision, key=stream.office_id)
        try:
            stored = await _append(stream, events, patient)
        except DuplicateIdempotencyKey:
            await sealer.discard()
            raise
        if not stored:
            await wait(stream.catch_up, key=stream.office_id)
            continue
        await sealer.discard(kept=frozenset(e.writeback_id for e in events if isinstance(e, ev.WritebackRequested)))
        return events
    await sealer.discard()
    return None


async def _append(stream: Stream, events: list[ev.Event], patient: bool) -> bool:
    """Append and fold ``events``: ``True`` once they are in the log, ``False`` when another
    writer's append came first. After a lost answer every try first settles the last one."""
    answer_lost = False

    async def attempt() -> bool:
        nonlocal answer_lost
        if answer_lost and await stream.appended(events):
            return True
        try:
            await stream.append(events)
        except ConcurrencyError:  # another writer, or our own append whose answer was lost
            return answer_lost and await stream.appended(events)
        except DatabaseUnavailable:
            answer_lost = True
            raise
        return True

    if patient:
        return await patiently(attempt, key=stream.office_id)
    try:
        return await attempt()
    except DatabaseUnavailable:  # one look: the asker's answer is the commit if it happened
        if answer_lost and await stream.appended(events):
            return True
        raise


async def decide_and_append(deps, office_id: str, message, plaintexts: Mapping[str, bytes] | None = None) -> Decision:
    """Decide ``message`` for a practice whose actor is not running here, and append the events."""
    stream = await StoredStream.load(deps.store, office_id)
    decision = await commit(
        stream,
        lambda state: decide(state, message, deps.clock(), deps.core_settings),
        deps.credentials,
        plaintexts=plaintexts,
        patient=False,  # the admin caller answers 503 and its client retries
    )
    if decision is None:
        raise ConcurrencyError(ev.stream_id(office_id), stream.version, -1)
    return decision
