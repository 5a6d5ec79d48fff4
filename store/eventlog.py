"""The event log's contract and what its two stores share: ``store.pglog.PgEventStore``
(PostgreSQL) and ``store.memory.MemoryEventStore`` (in memory, for MockClock tests and
simulations). ``tests/store/test_contract.py`` runs the contract against both.

- ``append(stream_id, expected_version, events)`` appends a batch to one stream atomically and
  returns the stream's new version once it is durable. ``expected_version`` is the version the
  writer last saw (0 for a new stream); if the stream moved on, ``ConcurrencyError`` and nothing
  is written. A second writeback with an idempotency key the practice already used (or one key
  given twice in a batch): ``DuplicateIdempotencyKey``.
- Appends are group-committed (``store.groupcommit``): those issued while a commit is in flight
  are written together by the next one, each batch checked on its own (a stale stream fails only
  its own append). A cancelled append either writes nothing or, once its batch was taken into a
  commit, returns its version (the cancellation arrives at the caller's next checkpoint).
- ``position`` is dense and in commit order: groups are serialized by a transaction-scoped
  advisory lock and take the positions after ``max(position)``, so a reader tailing
  ``position > p`` never skips a row that commits later.
- ``read_stream(stream_id, from_version)``, ``read_writeback(office_id, writeback_id)`` (one
  writeback's events, in order: the console's timeline), ``read_all(after_position, limit)``,
  ``last_position()``, ``stream_heads_since(after_position)`` and ``wait_for_append(after_position)``,
  which returns once the log holds a position past it (LISTEN/NOTIFY wake-ups in PostgreSQL, with
  polling as the fallback).
- ``save_snapshot``: a folded state at a version (newer wins); ``load_streams(stream_ids,
  schema)``: per stream its snapshot of that schema (another schema is not returned) and the
  events after it, for many streams in one read, so actors that start together recover by
  folding only their tails.
- The ``practices`` and ``writebacks`` projections change in the same transaction as the events
  (rows from ``store.projections.project``) and are read through ``practice``, ``practices``,
  ``writeback``, ``writebacks``, ``writeback_by_idempotency_key``, ``writeback_counts``,
  ``writeback_ids``, ``sikka_ids`` and ``recent_outcomes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from actors.core import events as ev
from actors.core.state import Practice


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


def checked_batch(events: Sequence[ev.Event]) -> list[ev.Event]:
    """The batch ``append`` was given, as a list; refused when empty or holding a non-event."""
    events = list(events)
    if not events:
        raise ValueError("append needs at least one event")
    for e in events:
        if not isinstance(e, ev.Event) or not ev.recorded(e):
            raise TypeError(f"not an event the log keeps: {e!r}")
    return events
