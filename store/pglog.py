"""``PgEventStore``: the event log (``store.eventlog``'s contract) and its projections in
PostgreSQL, in the schema of ``store/migrations``; ``iterate_log`` reads the whole log in order.

An append is one call of the ``sikka_append`` SQL function: under the append lock it checks the
stream's version, inserts the events and upserts the projection rows computed here by
``store.projections.project`` (the production fold), all in one transaction. The store keeps,
per stream it appended to, the rows the next append starts from (``_StreamTail``), so a busy
actor's append reads nothing first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import msgspec
import psycopg
import trio

from actors.core import events as ev
from actors.core.state import FINAL_STATES, Practice, Writeback
from store import projections as proj
from store.db import Database
from store.eventlog import (
    ConcurrencyError,
    DuplicateIdempotencyKey,
    PracticeRow,
    RecordedEvent,
    Snapshot,
    checked_batch,
)

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
        events = checked_batch(events)
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

    async def read_writeback(self, office_id: str, writeback_id: str) -> list[RecordedEvent]:
        def read(conn):
            rows = conn.execute(
                _SELECT_EVENTS + " WHERE stream_id = %s AND data->>'writeback_id' = %s ORDER BY version",
                (ev.stream_id(office_id), writeback_id),
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
        return await self.db.run(
            lambda conn: conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
        )

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

