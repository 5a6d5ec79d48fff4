"""``MemoryEventStore``: the event log (``store.eventlog``'s contract) in memory, for trio
MockClock tests, simulations and benchmarks.

Appends go through ``store.groupcommit.GroupCommit`` as in PostgreSQL: those issued in the same
scheduling tick form one group (one batch per stream, as in PostgreSQL), applied in one step (no
checkpoint between a version check and its write), each stream checked on its own, so concurrent
trio tasks see exactly the PostgreSQL behaviour; the projections come from the same ``store.projections.project`` as ``store.pglog``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter

import outcome
import trio

from actors.core import events as ev
from actors.core.state import FINAL_STATES, Writeback
from store import projections as proj
from store.eventlog import (
    ConcurrencyError,
    DuplicateIdempotencyKey,
    PracticeRow,
    RecordedEvent,
    Snapshot,
    checked_batch,
)
from store.groupcommit import GroupCommit


def _page(rows: list[Writeback], states: Sequence[str] | None, limit: int, before: str | None) -> list[Writeback]:
    """Newest first, optionally only some states, strictly older than writeback ``before``."""
    rows = sorted(rows, key=lambda w: (w.requested_at, w.writeback_id), reverse=True)
    if before is not None:
        anchor = next((w for w in rows if w.writeback_id == before), None)
        if anchor is None:
            return []
        rows = [w for w in rows if (w.requested_at, w.writeback_id) < (anchor.requested_at, anchor.writeback_id)]
    if states:
        rows = [w for w in rows if w.state in states]
    return rows[:limit]


class MemoryEventStore:
    """The event log in memory; ``clock`` gives ``recorded_at``."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._clock = clock
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._practices: dict[str, PracticeRow] = {}
        self._writebacks: dict[str, Writeback] = {}
        self._open: dict[str, dict[str, Writeback]] = {}  # office_id → its writebacks not final
        self._snapshots: dict[str, tuple[Snapshot, int]] = {}
        self._appended = trio.Event()
        self.group_commit = GroupCommit(self._commit_group, key=itemgetter(0))  # one batch per stream

    async def append(self, stream_id: str, expected_version: int, events: Sequence[ev.Event]) -> int:
        return await self.group_commit.submit((stream_id, expected_version, checked_batch(events)))

    async def _commit_group(self, appends: list[tuple[str, int, list[ev.Event]]]) -> list[outcome.Outcome]:
        outcomes = [outcome.capture(self._apply, *append) for append in appends]
        if any(isinstance(o, outcome.Value) for o in outcomes):
            self._appended.set()
            self._appended = trio.Event()
        return outcomes

    def _apply(self, stream_id: str, expected_version: int, events: list[ev.Event]) -> int:
        stream = self._streams.get(stream_id, [])
        if len(stream) != expected_version:
            raise ConcurrencyError(stream_id, expected_version, len(stream))
        office_id = ev.office_of(stream_id)
        keys: dict[str, str] = {}  # the batch's own: a key given twice in one batch is a duplicate too
        for e in events:
            if isinstance(e, ev.WritebackRequested) and e.idempotency_key is not None:
                existing = self._by_key(office_id, e.idempotency_key)
                holder = existing.writeback_id if existing is not None else keys.get(e.idempotency_key)
                if holder is not None and holder != e.writeback_id:
                    raise DuplicateIdempotencyKey(office_id, e.idempotency_key)
                keys[e.idempotency_key] = e.writeback_id
        row = self._practices.get(office_id)
        open_rows = self._open.setdefault(office_id, {})
        practice, changed = proj.project(row.practice if row else None, office_id, events, open_rows)
        now = self._clock()
        recorded = [
            RecordedEvent(len(self._log) + i, stream_id, expected_version + i, e, now)
            for i, e in enumerate(events, start=1)
        ]
        self._log.extend(recorded)
        self._streams[stream_id] = stream + recorded
        version = expected_version + len(events)
        self._practices[office_id] = PracticeRow(practice, version, row.owner if row else None)
        self._writebacks.update(changed)
        for wb in changed.values():
            if wb.state in FINAL_STATES:
                open_rows.pop(wb.writeback_id, None)
            else:
                open_rows[wb.writeback_id] = wb
        return version

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        await trio.lowlevel.checkpoint()
        return self._streams.get(stream_id, [])[max(0, from_version - 1) :]

    async def read_writeback(self, office_id: str, writeback_id: str) -> list[RecordedEvent]:
        await trio.lowlevel.checkpoint()
        stream = self._streams.get(ev.stream_id(office_id), [])
        return [r for r in stream if getattr(r.event, "writeback_id", None) == writeback_id]

    async def read_all(self, after_position: int = 0, limit: int | None = None) -> list[RecordedEvent]:
        await trio.lowlevel.checkpoint()
        tail = self._log[after_position:]
        return tail if limit is None else tail[:limit]

    async def last_position(self) -> int:
        await trio.lowlevel.checkpoint()
        return len(self._log)

    async def stream_heads_since(self, after_position: int) -> tuple[int, dict[str, int]]:
        await trio.lowlevel.checkpoint()
        heads = {r.stream_id: r.version for r in self._log[after_position:]}
        return len(self._log), heads

    async def wait_for_append(self, after_position: int) -> None:
        while len(self._log) <= after_position:
            await self._appended.wait()

    async def save_snapshot(self, stream_id: str, version: int, schema: int, state: bytes) -> None:
        await trio.lowlevel.checkpoint()
        current = self._snapshots.get(stream_id)
        if current is None or current[0].version < version:
            self._snapshots[stream_id] = (Snapshot(version, state), schema)

    async def load_streams(
        self, stream_ids: list[str], schema: int
    ) -> dict[str, tuple[Snapshot | None, list[RecordedEvent]]]:
        await trio.lowlevel.checkpoint()
        loaded = {}
        for stream_id in stream_ids:
            found = self._snapshots.get(stream_id)
            snapshot = found[0] if found and found[1] == schema else None
            loaded[stream_id] = (snapshot, self._streams.get(stream_id, [])[snapshot.version if snapshot else 0 :])
        return loaded

    async def practice(self, office_id: str) -> PracticeRow | None:
        await trio.lowlevel.checkpoint()
        return self._practices.get(office_id)

    async def practices(self) -> list[PracticeRow]:
        await trio.lowlevel.checkpoint()
        return [self._practices[k] for k in sorted(self._practices)]

    async def writeback(self, writeback_id: str) -> Writeback | None:
        await trio.lowlevel.checkpoint()
        return self._writebacks.get(writeback_id)

    async def writeback_by_idempotency_key(self, office_id: str, key: str) -> Writeback | None:
        await trio.lowlevel.checkpoint()
        return self._by_key(office_id, key)

    def _by_key(self, office_id: str, key: str) -> Writeback | None:
        return next(
            (w for w in self._writebacks.values() if w.office_id == office_id and w.idempotency_key == key), None
        )

    async def writebacks(
        self, office_id: str, states: Sequence[str] | None = None, limit: int = 50, before: str | None = None
    ) -> list[Writeback]:
        await trio.lowlevel.checkpoint()
        return _page([w for w in self._writebacks.values() if w.office_id == office_id], states, limit, before)

    async def writeback_counts(self, office_id: str) -> dict[str, int]:
        await trio.lowlevel.checkpoint()
        counts: dict[str, int] = {}
        for w in self._writebacks.values():
            if w.office_id == office_id:
                counts[w.state] = counts.get(w.state, 0) + 1
        return counts

    async def writeback_ids(self, office_id: str) -> list[str]:
        await trio.lowlevel.checkpoint()
        return [w.writeback_id for w in self._writebacks.values() if w.office_id == office_id]

    async def sikka_ids(self, office_id: str) -> set[str]:
        await trio.lowlevel.checkpoint()
        return {
            w.sikka_writeback_id
            for w in self._writebacks.values()
            if w.office_id == office_id and w.sikka_writeback_id
        }

    async def recent_outcomes(self, now: datetime) -> dict[str, tuple[int, int, int]]:
        await trio.lowlevel.checkpoint()
        day, hour = now - timedelta(hours=24), now - timedelta(hours=1)
        out: dict[str, tuple[int, int, int]] = {}
        for w in self._writebacks.values():
            if w.completed_at is None or w.completed_at <= day or w.state not in ("failed", "completed"):
                continue
            f24, f1, c1 = out.get(w.office_id, (0, 0, 0))
            failed, recent = w.state == "failed", w.completed_at > hour
            out[w.office_id] = (f24 + failed, f1 + (recent and failed), c1 + (recent and not failed))
        return out
