"""``PgEventStore``: the event log (``store.eventlog``'s contract) and its projections in
PostgreSQL, in the schema of ``store/migrations``; ``iterate_log`` reads the whole log in order.

Appends are group-committed (``store.groupcommit``): the batches appended while a commit is in
flight go together in one call of the ``sikka_commit_group`` SQL function
(``store/migrations/0007_short_lock.sql``). In one transaction it checks each stream's version
and the idempotency keys the batch brings, upserts the projection rows computed here by
``store.projections.project`` (the production fold) for the batches that pass, then takes the
append lock, inserts their events at dense positions and NOTIFYs once: the lock is held for the
events and the commit alone. A stream appears at most once in a group (a second batch waits for
the next one). Two groups may be in flight at once, never with the same stream: while one holds
the append lock, the other is built, sent, parsed, checked and writes its projection rows. A
batch that fails its check fails only its own append (``ConcurrencyError``,
``DuplicateIdempotencyKey``); when the call as a whole fails on the data (a constraint, or a
race lost to another process between the checks and the lock), each batch of the group is
appended alone, so each caller gets the error its own batch causes. The store keeps, for the
``tails_kept`` streams it appended to last, the rows the next append starts from
(``_StreamTail``), so a busy actor's append reads nothing first, while thousands of idle
practices cost no memory here (their next append reads its tail first).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import msgspec
import outcome
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
from store.groupcommit import GroupCommit

_SELECT_EVENTS = "SELECT position, stream_id, version, data::text, recorded_at FROM events"


def _recorded(row) -> RecordedEvent:
    return RecordedEvent(position=row[0], stream_id=row[1], version=row[2], event=ev.decode(row[3]), recorded_at=row[4])


class _StreamTail(msgspec.Struct):
    """What this writer knows of a stream after its last append: the projection rows the next
    append starts from (valid only while the stream is still at ``version``)."""

    version: int
    practice: Practice | None
    open: dict[str, Writeback]


class _Key(msgspec.Struct, frozen=True):
    """An idempotency key a batch gives a writeback; checked against the practice's others."""

    writeback_id: str
    idempotency_key: str


class _Batch(msgspec.Struct, frozen=True):
    """One append on its way to a group commit, as ``sikka_commit_group`` reads it (JSON): the
    events, the projection rows computed for them (the practice's summary and the writebacks that
    changed, whose columns the function reads from them) and the keys to check."""

    stream: str
    expected: int
    version: int  # after the batch
    events: list[ev.Event]
    state: str
    practice: Practice
    writebacks: list[Writeback]
    keys: list[_Key]

    def outcome(self, actual: int, duplicate: str | None) -> outcome.Outcome:
        """What ``sikka_commit_group`` reported for this batch, as its append's outcome."""
        if actual != self.expected:
            return outcome.Error(ConcurrencyError(self.stream, self.expected, actual))
        if duplicate is not None:
            return outcome.Error(DuplicateIdempotencyKey(ev.office_of(self.stream), duplicate))
        return outcome.Value(self.version)

    def alone_error(self, exc: psycopg.Error) -> Exception:
        """The error of this batch appended alone (a duplicate key inside the batch itself)."""
        if exc.sqlstate == "23505" and exc.diag.constraint_name == "writebacks_idempotency":
            request = next(e for e in self.events if isinstance(e, ev.WritebackRequested) and e.idempotency_key)
            return DuplicateIdempotencyKey(ev.office_of(self.stream), request.idempotency_key)
        return exc


def _stream_of(batch: _Batch) -> str:
    return batch.stream


def _new_keys(changed: dict[str, Writeback], known: dict[str, Writeback]) -> list[_Key]:
    """The idempotency keys ``changed`` gives writebacks that its writer did not know with them."""
    return [
        _Key(w.writeback_id, w.idempotency_key)
        for w in changed.values()
        if w.idempotency_key
        and (w.writeback_id not in known or known[w.writeback_id].idempotency_key != w.idempotency_key)
    ]


# data errors: a batch of the group makes the call fail (the batches are then appended alone)
_BATCH_ERRORS = (psycopg.errors.IntegrityError, psycopg.errors.DataError, psycopg.errors.ProgrammingError)


class PgEventStore:
    """The event log and its projections in PostgreSQL (the schema of ``store/migrations``)."""

    poll_interval = 2.0  # fallback when a NOTIFY is missed
    tails_kept = 2048  # streams whose tail is kept, the most recently appended to
    commits_in_flight = 2  # group commits at once (store.groupcommit): one overlaps the other's locked part

    def __init__(self, db: Database):
        self.db = db
        self._appended = trio.Event()
        self._tails: dict[str, _StreamTail] = {}
        self.group_commit = GroupCommit(self._commit_group, key=_stream_of, depth=self.commits_in_flight)

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
        new_keys = _new_keys(changed, tail.open)
        version = expected_version + len(events)
        batch = _Batch(
            stream_id, expected_version, version, events, practice.state, practice, list(changed.values()), new_keys
        )
        await self.group_commit.submit(batch)
        still_open = {k: w for k, w in {**tail.open, **changed}.items() if w.state not in FINAL_STATES}
        self._tails[stream_id] = _StreamTail(version, practice, still_open)  # (popped above: now the newest)
        if len(self._tails) > self.tails_kept:
            del self._tails[next(iter(self._tails))]
        return version

    async def _commit_group(self, batches: list[_Batch], *, again: bool = True) -> list[outcome.Outcome]:
        """One ``sikka_commit_group`` call for the group; each batch alone if the call fails on
        the data (so only the batch at fault fails, with the error it causes alone). A batch
        alone that breaks a unique index may have lost a race to another process (the checks run
        before the append lock): tried once more, its check sees the winner's rows."""
        try:
            actual, duplicate = await self.db.run(self._append_group_sync, batches)
        except _BATCH_ERRORS as exc:
            if len(batches) > 1:
                return [(await self._commit_group([batch]))[0] for batch in batches]
            if again and exc.sqlstate == "23505":
                return await self._commit_group(batches, again=False)
            return [outcome.Error(batches[0].alone_error(exc))]
        return [batch.outcome(a, d) for batch, a, d in zip(batches, actual, duplicate, strict=True)]

    @staticmethod
    def _append_group_sync(conn: psycopg.Connection, batches: list[_Batch]) -> tuple[list[int], list[str | None]]:
        return conn.execute(
            "SELECT o_actual, o_duplicate FROM sikka_commit_group(%s::jsonb)",
            (proj.encode_json(batches),),
            prepare=True,
        ).fetchone()

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
        """Run LISTEN for the store's wake-ups (until cancelled); ``wait_for_append`` uses them.
        Any payload wakes the waiters, ``store.db.RECONNECTED`` (after the LISTEN session came
        back) too: they re-read the log, so a notification lost meanwhile is not missed."""
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

    async def load_streams(
        self, stream_ids: list[str], schema: int
    ) -> dict[str, tuple[Snapshot | None, list[RecordedEvent]]]:
        """Per stream, its snapshot of ``schema`` (or ``None``) and the events after it, for many
        streams in one round trip (the actors that start together recover together:
        ``actors.runtime.loads``)."""

        def read(conn):
            snapshots = {
                r[0]: Snapshot(r[1], r[2].encode())
                for r in conn.execute(
                    "SELECT stream_id, version, state::text FROM snapshots WHERE stream_id = ANY(%s) AND schema = %s",
                    (stream_ids, schema),
                )
            }
            loaded = {s: (snapshots.get(s), []) for s in stream_ids}
            rows = conn.execute(
                "SELECT e.position, e.stream_id, e.version, e.data::text, e.recorded_at"
                " FROM unnest(%s::text[], %s::integer[]) AS t(stream_id, after)"
                " JOIN events e ON e.stream_id = t.stream_id AND e.version > t.after ORDER BY e.stream_id, e.version",
                (list(loaded), [s.version if s else 0 for s, _ in loaded.values()]),
            )
            for row in rows:
                loaded[row[1]][1].append(_recorded(row))
            return loaded

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

