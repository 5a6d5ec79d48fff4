"""The append follower: other processes' appends reach this node's actors within a second.

Every supervisor process on the database runs one ``follow_appends`` task. It waits for the
store's append notification (``PgEventStore.wait_for_append``), reads the head of every stream
extended since its last position, and wakes the local actor of each stream that moved past the
version that actor holds (a writeback submitted to a peer reaches its owner at once). A stream
of a practice this node has never seen is handed to ownership (``Ownership.notice``), which
re-plans the leases. A database error is logged and retried after ``FOLLOW_RETRY_S``: a blip
never takes the process down.
"""

from __future__ import annotations

import structlog
import trio

from actors.core import events as ev
from actors.runtime.mailbox import Wake
from actors.runtime.ownership import Ownership
from actors.runtime.practices import PracticeSupervisor
from store.db import DatabaseUnavailable
from store.pglog import PgEventStore

log = structlog.get_logger("supervisor")

FOLLOW_RETRY_S = 1.0  # the pause after a database error


async def follow_appends(store: PgEventStore, practices: PracticeSupervisor, ownership: Ownership) -> None:
    """Wake the actor of every stream another process extended (a writeback submitted to a
    peer reaches its owner within a second), and let ownership know of practices it has not seen."""
    position = None
    while True:
        try:
            if position is None:
                position = await store.last_position()
            await store.wait_for_append(position)
            position, heads = await store.stream_heads_since(position)
        except DatabaseUnavailable as exc:  # a database blip must not take the process down
            log.warning("supervisor.follow_failed", error=str(exc))
            await trio.sleep(FOLLOW_RETRY_S)
            continue
        for stream_id, version in heads.items():
            office_id = ev.office_of(stream_id)
            actor = practices.actors.get(office_id)
            if actor is None:
                ownership.notice(office_id)
            elif version > actor.version:
                actor.tell(Wake())
