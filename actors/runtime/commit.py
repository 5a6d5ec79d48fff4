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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import msgspec
from msgspec.structs import replace

from actors.core import events as ev
from actors.core.decide import decide
from actors.core.messages import Decision
from actors.core.state import Practice, empty, evolve, fold
from store.eventlog import ConcurrencyError, DuplicateIdempotencyKey

CONFLICT_RETRIES = 5  # decisions re-made after another writer's append before giving up
SNAPSHOT_SCHEMA = 1


class Stream(Protocol):
    office_id: str
    state: Practice
    version: int

    async def append(self, events: list[ev.Event]) -> None:
        """Append the recorded ones at ``version`` (``ConcurrencyError`` if the stream moved on)
        and fold them all (``actors.core.events.TRANSIENT`` are only folded)."""

    async def catch_up(self) -> None:
        """After a conflict: take in what the other writer appended."""


async def load_practice(store, office_id: str) -> tuple[Practice, int, int]:
    """(state, version, snapshot version): the latest snapshot plus the stream's tail, folded."""
    stream = ev.stream_id(office_id)
    state, version, snapshot_version = empty(office_id), 0, 0
    snapshot = await store.load_snapshot(stream, SNAPSHOT_SCHEMA)
    if snapshot is not None:
        state = msgspec.json.decode(snapshot.state, type=Practice)
        version = snapshot_version = snapshot.version
    for record in await store.read_stream(stream, version + 1):
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
        unused = [wid for wid in self.sealed if wid not in kept]
        if unused:
            await self.credentials.purge_payloads(unused)


async def commit(
    stream: Stream,
    decision_for: Callable[[Practice], Decision],
    credentials,
    *,
    plaintexts: Mapping[str, bytes] | None = None,
    attempts: int = CONFLICT_RETRIES,
) -> Decision | None:
    """Decide on the stream's state, seal, append, fold (see the module docstring). Returns the
    decision as stored (events with sealed payloads), a refusal, or ``None`` when every attempt
    met another writer."""
    sealer = Sealer(credentials, plaintexts or {})
    for _ in range(attempts):
        decision = decision_for(stream.state)
        if not isinstance(decision, list) or not decision:
            await sealer.discard()
            return decision
        events = await sealer.seal(stream.state, decision)
        try:
            await stream.append(events)
        except ConcurrencyError:
            await stream.catch_up()
            continue
        except DuplicateIdempotencyKey:
            await sealer.discard()
            raise
        await sealer.discard(kept=frozenset(e.writeback_id for e in events if isinstance(e, ev.WritebackRequested)))
        return events
    await sealer.discard()
    return None


async def decide_and_append(deps, office_id: str, message, plaintexts: Mapping[str, bytes] | None = None) -> Decision:
    """Decide ``message`` for a practice whose actor is not running here, and append the events."""
    stream = await StoredStream.load(deps.store, office_id)
    decision = await commit(
        stream,
        lambda state: decide(state, message, deps.clock(), deps.core_settings),
        deps.credentials,
        plaintexts=plaintexts,
    )
    if decision is None:
        raise ConcurrencyError(ev.stream_id(office_id), stream.version, -1)
    return decision
