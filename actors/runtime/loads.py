"""Actors that start together load together: a restart of thousands of practices costs tens of
database round trips, not three per practice.

A starting actor needs its practice's snapshot, the events after it and its request key. Each
asks ``Loads.load(office_id)``; the requests issued while a load is in flight are gathered into
the next one (``store.groupcommit.GroupCommit``, the mechanism that groups the event store's
appends), which reads them all at once: one ``load_streams`` call of the event store and one read
of the credentials. Each actor then folds its own events (``commit.folded``) in its own task, so
the event loop is never held by a whole group's folding.

A database fault fails every caller of the group with its own copy of the error (the actors
restart as after any transient fault); a caller cancelled while its request waits leaves the
queue, one whose request is being read learns the outcome first (``GroupCommit``).
"""

from __future__ import annotations

from typing import NamedTuple

import outcome

from actors.core import events as ev
from actors.core.secret import Secret
from actors.runtime.commit import SNAPSHOT_SCHEMA
from store.eventlog import RecordedEvent, Snapshot
from store.groupcommit import GroupCommit

MOST = 500  # practices per load: one read of their snapshots, tails and keys


class Loaded(NamedTuple):
    """What a starting actor reads: its snapshot (or ``None``), the events after it, its key."""

    snapshot: Snapshot | None
    records: list[RecordedEvent]
    request_key: Secret | None


class Loads:
    """The starting actors' reads, grouped (see the module docstring)."""

    def __init__(self, deps, most: int = MOST):
        self.deps = deps  # its store and credentials, as they are when a group is read
        self.group = GroupCommit(self._load, most=most)

    async def load(self, office_id: str) -> Loaded:
        return await self.group.submit(office_id)

    async def _load(self, office_ids: list[str]) -> list[outcome.Outcome]:
        streams = await self.deps.store.load_streams([ev.stream_id(o) for o in office_ids], SNAPSHOT_SCHEMA)
        keys = await self.deps.credentials.secrets(office_ids, "request_key")
        return [outcome.Value(Loaded(*streams[ev.stream_id(o)], keys.get(o))) for o in office_ids]
