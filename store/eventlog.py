"""The event log: ``PgEventStore`` (PostgreSQL) and ``MemoryEventStore``, one contract.

Contract (``tests/store/test_contract.py`` runs it against both):
- ``append(stream_id, expected_version, events)`` appends a batch to one stream atomically and
  returns the stream's new version. ``expected_version`` is the version the writer last saw
  (0 for a new stream); if the stream moved on, ``ConcurrencyError`` and nothing is written.
- ``position`` is dense and in commit order: appends are serialized by a transaction-scoped
  advisory lock and each takes ``max(position) + 1``, so a reader tailing ``position > p`` never
  skips a row that commits later.
- ``read_stream(stream_id, from_version)``, ``read_all(after_position, limit)``,
  ``last_position()``, and ``wait_for_append(after_position)``, which returns once the log holds
  a position past it (LISTEN/NOTIFY wake-ups, with polling as the fallback).
- ``save_snapshot``/``load_snapshot``: a folded state at a version (newer wins; another schema
  is not returned), so an actor recovers by folding only the tail.
- The ``practices`` and ``writebacks`` projections change in the same transaction as the events
  (see ``store.projections``) and are read through ``practice``, ``practices``, ``writeback``,
  ``writebacks`` and ``writeback_by_idempotency_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
import trio

from actors.core import events as ev
from actors.core.state import FINAL_STATES, Practice, Writeback
from store import projections as proj
from store.db import Database


class ConcurrencyError(Exception):
    """Another writer appended to the stream first; nothing of this batch was written."""

    def __init__(self, stream_id: str, expected: int, actual: int):
        super().__init__(f"stream {stream_id}: expected version {expected}, but it is at version {actual}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class DuplicateIdempotencyKey(Exception):
    """A second writeback with an idempotency key this practice already used; nothing written."""

    def __init__(self, office_id: str, key: str):
        super().__init__(f"practice {office_id} already has a writeback with idempotency key {key!r}")
        self.office_id = office_id
        self.key = key


class RecordedEvent(msgspec.Struct, frozen=True):
    position: int
    stream_id: str
    version: int
    event: ev.Event
    recorded_at: datetime

    @property
    def type(self) -> str:
        return ev.type_name(self.event)


class Snapshot(msgspec.Struct, frozen=True):
    """A folded state (encoded by its owner) at a stream version."""

    version: int
    state: bytes



class PracticeRow(msgspec.Struct, frozen=True):
    """A ``practices`` row: the practice summary, the stream version and the owner node."""

    practice: Practice
    version: int
    owner: str | None = None


def _checked(events: Sequence[ev.Event]) -> list[ev.Event]:
    events = list(events)
    if not events:
        raise ValueError("append needs at least one event")
    for e in events:
        if not isinstance(e, ev.Event):
            raise TypeError(f"not an event: {e!r}")
    return events


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


# --- PostgreSQL ---------------------------------------------------------------------------------

_SELECT_EVENTS = "SELECT position, stream_id, version, data::text, recorded_at FROM events"


def _recorded(row) -> RecordedEvent:
    return RecordedEvent(position=row[0], stream_id=row[1], version=row[2], event=ev.decode(row[3]), recorded_at=row[4])


class _StreamTail(msgspec.Struct):
    """What this writer knows of a stream after its last append: the projection rows the next
    append starts from (valid only while the stream is still at ``version``)."""

    version: int
    practice: Practice | None
    open: dict[str, Writeback]


class PgEventStore:
    """The event log and its projections in PostgreSQL (the schema of ``store/migrations``)."""

    poll_interval = 2.0  # fallback when a NOTIFY is missed

    def __init__(self, db: Database):
        self.db = db
        self._appended = trio.Event()
        self._tails: dict[str, _StreamTail] = {}

    # appending

    async def append(self, stream_id: str, expected_version: int, events: Sequence[ev.Event]) -> int:
        events = _checked(events)
        office_id = ev.office_of(stream_id)
        tail = self._tails.pop(stream_id, None)
        if tail is None or tail.version != expected_version:
            tail = await self.db.run(self._read_tail, stream_id, office_id)
            if tail.version != expected_version:
                raise ConcurrencyError(stream_id, expected_version, tail.version)
        practice, changed = proj.project(tail.practice, office_id, events, tail.open)
        version = expected_version + len(events)
        args = (
            stream_id,
            expected_version,
            [ev.type_name(e) for e in events],
            [ev.encode(e).decode() for e in events],
            proj.encode_json(proj.practice_record(practice, version)),
            proj.encode_json([proj.writeback_record(w) for w in changed.values()]),
        )
        try:
            await self.db.run(self._append_sync, args)
        except psycopg.Error as exc:
            if exc.sqlstate == "SU409":
                raise ConcurrencyError(stream_id, expected_version, int(exc.diag.message_detail)) from None
            if exc.sqlstate == "23505" and exc.diag.constraint_name == "writebacks_idempotency":
                request = next(e for e in events if isinstance(e, ev.WritebackRequested) and e.idempotency_key)
                raise DuplicateIdempotencyKey(office_id, request.idempotency_key) from None
            raise
        still_open = {k: w for k, w in {**tail.open, **changed}.items() if w.state not in FINAL_STATES}
        self._tails[stream_id] = _StreamTail(version, practice, still_open)
        return version

    @staticmethod
    def _append_sync(conn: psycopg.Connection, args: tuple) -> None:
        conn.execute(
            "SELECT sikka_append(%s, %s, %s::text[], %s::jsonb[], %s::jsonb, %s::jsonb)", args, prepare=True
        )

    @staticmethod
    def _read_tail(conn: psycopg.Connection, stream_id: str, office_id: str) -> _StreamTail:
        version, fold = conn.execute(
            "SELECT (SELECT coalesce(max(version), 0) FROM events WHERE stream_id = %s),"
            " (SELECT fold::text FROM practices WHERE office_id = %s)",
            (stream_id, office_id),
        ).fetchone()
        rows = conn.execute(
            "SELECT fold::text FROM writebacks WHERE office_id = %s AND state <> ALL(%s)",
            (office_id, list(FINAL_STATES)),
        ).fetchall()
        open_rows = {wb.writeback_id: wb for wb in (proj.decode_writeback(r[0]) for r in rows)}
        return _StreamTail(version, proj.decode_practice(fold) if fold else None, open_rows)

    # reading the log

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        def read(conn):
            rows = conn.execute(
                _SELECT_EVENTS + " WHERE stream_id = %s AND version >= %s ORDER BY version", (stream_id, from_version)
            ).fetchall()
            return [_recorded(r) for r in rows]

        return await self.db.run(read)

    async def read_all(self, after_position: int = 0, limit: int | None = None) -> list[RecordedEvent]:
        def read(conn):
            rows = conn.execute(
                _SELECT_EVENTS + " WHERE position > %s ORDER BY position LIMIT %s", (after_position, limit)
            ).fetchall()
            return [_recorded(r) for r in rows]

        return await self.db.run(read)

    async def last_position(self) -> int:
        return await self.db.run(lambda conn: conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])

    async def stream_heads_since(self, after_position: int) -> tuple[int, dict[str, int]]:
        """(the log's last position, {stream_id: its version} of the streams appended to after
        ``after_position``): how a follower learns whose stream another process extended."""

        def read(conn):
            rows = conn.execute(
                "SELECT stream_id, max(version), max(position) FROM events WHERE position > %s GROUP BY stream_id",
                (after_position,),
            ).fetchall()
            last = max((r[2] for r in rows), default=after_position)
            return last, {r[0]: r[1] for r in rows}

        return await self.db.run(read)

    async def wait_for_append(self, after_position: int) -> None:
        while await self.last_position() <= after_position:
            with trio.move_on_after(self.poll_interval):
                await self._appended.wait()

    async def pump_notifications(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run LISTEN for the store's wake-ups (until cancelled); ``wait_for_append`` uses them."""
        async with self.db.listen("events") as notes:
            task_status.started()
            async for _ in notes:
                self._appended.set()
                self._appended = trio.Event()

    # snapshots

    async def save_snapshot(self, stream_id: str, version: int, schema: int, state: bytes) -> None:
        await self.db.run(
            lambda conn: conn.execute(
                "INSERT INTO snapshots (stream_id, version, schema, state) VALUES (%s, %s, %s, %s::jsonb)"
                " ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, schema = EXCLUDED.schema,"
                " state = EXCLUDED.state, taken_at = now() WHERE snapshots.version < EXCLUDED.version",
                (stream_id, version, schema, state.decode()),
            )
        )

    async def load_snapshot(self, stream_id: str, schema: int) -> Snapshot | None:
        def read(conn):
            row = conn.execute(
                "SELECT version, state::text FROM snapshots WHERE stream_id = %s AND schema = %s", (stream_id, schema)
            ).fetchone()
            return Snapshot(row[0], row[1].encode()) if row else None

        return await self.db.run(read)

    # reading the projections

    async def practice(self, office_id: str) -> PracticeRow | None:
        def read(conn):
            row = conn.execute(
                "SELECT fold::text, version, owner FROM practices WHERE office_id = %s", (office_id,)
            ).fetchone()
            return PracticeRow(proj.decode_practice(row[0]), row[1], row[2]) if row else None

        return await self.db.run(read)

    async def practices(self) -> list[PracticeRow]:
        def read(conn):
            rows = conn.execute("SELECT fold::text, version, owner FROM practices ORDER BY office_id").fetchall()
            return [PracticeRow(proj.decode_practice(r[0]), r[1], r[2]) for r in rows]

        return await self.db.run(read)

    async def writeback(self, writeback_id: str) -> Writeback | None:
        def read(conn):
            row = conn.execute("SELECT fold::text FROM writebacks WHERE writeback_id = %s", (writeback_id,)).fetchone()
            return proj.decode_writeback(row[0]) if row else None

        return await self.db.run(read)

    async def writeback_by_idempotency_key(self, office_id: str, key: str) -> Writeback | None:
        def read(conn):
            row = conn.execute(
                "SELECT fold::text FROM writebacks WHERE office_id = %s AND idempotency_key = %s", (office_id, key)
            ).fetchone()
            return proj.decode_writeback(row[0]) if row else None

        return await self.db.run(read)

    async def writebacks(
        self, office_id: str, states: Sequence[str] | None = None, limit: int = 50, before: str | None = None
    ) -> list[Writeback]:
        def read(conn):
            query = "SELECT w.fold::text FROM writebacks w WHERE w.office_id = %(office)s"
            if states:
                query += " AND w.state = ANY(%(states)s)"
            if before is not None:
                query += (
                    " AND (w.requested_at, w.writeback_id) < (SELECT b.requested_at, b.writeback_id"
                    " FROM writebacks b WHERE b.writeback_id = %(before)s AND b.office_id = %(office)s)"
                )
            query += " ORDER BY w.requested_at DESC, w.writeback_id DESC LIMIT %(limit)s"
            params = {"office": office_id, "states": list(states or ()), "before": before, "limit": limit}
            return [proj.decode_writeback(r[0]) for r in conn.execute(query, params).fetchall()]

        return await self.db.run(read)

    async def writeback_counts(self, office_id: str) -> dict[str, int]:
        """The practice's writebacks by state."""
        return await self.db.run(
            lambda conn: dict(
                conn.execute(
                    "SELECT state, count(*) FROM writebacks WHERE office_id = %s GROUP BY state", (office_id,)
                ).fetchall()
            )
        )

    async def writeback_ids(self, office_id: str) -> list[str]:
        """Every writeback id of the practice (for shredding payloads at offboarding)."""
        return await self.db.run(
            lambda conn: [
                r[0] for r in conn.execute("SELECT writeback_id FROM writebacks WHERE office_id = %s", (office_id,))
            ]
        )

    async def sikka_ids(self, office_id: str) -> set[str]:
        """The Sikka writeback ids our writebacks of this practice hold (claimed items)."""
        return await self.db.run(
            lambda conn: {
                r[0]
                for r in conn.execute(
                    "SELECT sikka_writeback_id FROM writebacks WHERE office_id = %s AND sikka_writeback_id IS NOT NULL",
                    (office_id,),
                )
            }
        )

    async def open_writebacks(self) -> list[Writeback]:
        """Every writeback not in a final state, across practices (for app-level work)."""

        def read(conn):
            rows = conn.execute(
                "SELECT fold::text FROM writebacks WHERE state <> ALL(%s) ORDER BY requested_at", (list(FINAL_STATES),)
            ).fetchall()
            return [proj.decode_writeback(r[0]) for r in rows]

        return await self.db.run(read)

    async def recent_outcomes(self, now: datetime) -> dict[str, tuple[int, int, int]]:
        """Per practice: (failed in the 24 h before ``now``, failed in the last hour, completed
        in the last hour), from the recorded outcome times (the alerts' failure figures)."""

        def read(conn):
            rows = conn.execute(
                "SELECT office_id,"
                " count(*) FILTER (WHERE state = 'failed'),"
                " count(*) FILTER (WHERE state = 'failed' AND completed_at > %(hour)s),"
                " count(*) FILTER (WHERE state = 'completed' AND completed_at > %(hour)s)"
                " FROM writebacks WHERE completed_at > %(day)s AND state IN ('failed', 'completed')"
                " GROUP BY office_id",
                {"day": now - timedelta(hours=24), "hour": now - timedelta(hours=1)},
            ).fetchall()
            return {r[0]: (r[1], r[2], r[3]) for r in rows}

        return await self.db.run(read)


def iterate_log(conn: psycopg.Connection, after_position: int = 0, until: int | None = None) -> Iterator[RecordedEvent]:
    """Every event after ``after_position`` (up to ``until``) in order, through a server-side cursor."""
    with conn.transaction(), conn.cursor(name="iterate_log") as cur:
        cur.itersize = 5000
        if until is None:
            cur.execute(_SELECT_EVENTS + " WHERE position > %s ORDER BY position", (after_position,))
        else:
            cur.execute(
                _SELECT_EVENTS + " WHERE position > %s AND position <= %s ORDER BY position", (after_position, until)
            )
        for row in cur:
            yield _recorded(row)


# --- in memory ------------------------------------------------------------------------------------


class MemoryEventStore:
    """The same contract in memory, for trio MockClock tests and simulations.

    Appends happen without a checkpoint between the version check and the write, so concurrent
    trio tasks see exactly the PostgreSQL behaviour. ``clock`` gives ``recorded_at``.
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._clock = clock
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._practices: dict[str, PracticeRow] = {}
        self._writebacks: dict[str, Writeback] = {}
        self._open: dict[str, dict[str, Writeback]] = {}  # office_id → its writebacks not final
        self._snapshots: dict[str, tuple[Snapshot, int]] = {}
        self._appended = trio.Event()

    async def append(self, stream_id: str, expected_version: int, events: Sequence[ev.Event]) -> int:
        events = _checked(events)
        await trio.lowlevel.checkpoint()
        stream = self._streams.get(stream_id, [])
        if len(stream) != expected_version:
            raise ConcurrencyError(stream_id, expected_version, len(stream))
        office_id = ev.office_of(stream_id)
        for e in events:
            if isinstance(e, ev.WritebackRequested) and e.idempotency_key is not None:
                existing = self._by_key(office_id, e.idempotency_key)
                if existing is not None and existing.writeback_id != e.writeback_id:
                    raise DuplicateIdempotencyKey(office_id, e.idempotency_key)
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
        self._appended.set()
        self._appended = trio.Event()
        return version

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        await trio.lowlevel.checkpoint()
        return self._streams.get(stream_id, [])[max(0, from_version - 1) :]

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

    async def load_snapshot(self, stream_id: str, schema: int) -> Snapshot | None:
        await trio.lowlevel.checkpoint()
        found = self._snapshots.get(stream_id)
        return found[0] if found and found[1] == schema else None

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
        return {w.sikka_writeback_id for w in self._writebacks.values() if w.office_id == office_id and w.sikka_writeback_id}

    async def open_writebacks(self) -> list[Writeback]:
        await trio.lowlevel.checkpoint()
        return sorted(
            (w for w in self._writebacks.values() if w.state not in FINAL_STATES), key=lambda w: w.requested_at
        )

    async def recent_outcomes(self, now: datetime) -> dict[str, tuple[int, int, int]]:
        await trio.lowlevel.checkpoint()
        day, hour = now - timedelta(hours=24), now - timedelta(hours=1)
        out: dict[str, tuple[int, int, int]] = {}
        for w in self._writebacks.values():
            if w.completed_at is None or w.completed_at <= day or w.state not in ("failed", "completed"):
                continue
            f24, f1, c1 = out.get(w.office_id, (0, 0, 0))
            recent = w.completed_at > hour
            out[w.office_id] = (f24 + (w.state == "failed"), f1 + (recent and w.state == "failed"), c1 + (recent and w.state == "completed"))
        return out
