"""Resent watches in the practice's state: their shape and their fold. Pure.

A proof of absence (``ProvenAbsent``) is a bet that a request without an answer never reached
Sikka. A request held somewhere longer than the proof window (a proxy, a queue) still lands, and
then the re-sent one makes two records. So the attempt that was proven absent is watched
(``ResentWatch``, keyed ``writeback/attempt``; the writeback's payload kept) for 7 days, and a
late original found written is remembered in ``Practice.duplicates`` for the alert. What the
watch decides is ``actors.core.duplicates``; the fold steps are here (``actors.core.state``
calls them), kept apart so that ``state`` stays the writeback's own lifecycle.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec.structs import replace

from actors.core import events as ev

RECENT_DUPLICATES = 16  # late originals found written that the practice remembers (the alert)


class ResentWatch(msgspec.Struct, frozen=True, kw_only=True):
    writeback_id: str
    attempt: int  # the attempt that was proven absent
    operation: str
    attempted_at: datetime
    proven_at: datetime
    next_check_at: datetime | None = None
    kept_sikka_writeback_id: str | None = None  # the writeback's own record, once it is final
    found: str | None = None  # the late original's Sikka id
    found_result: str = ""  # "pending" (to be deleted), "delete_sent" (the list decides), or Sikka's
    delete_tries: int = 0
    delete_retry_at: datetime | None = None

    @property
    def key(self) -> str:
        return watch_key(self.writeback_id, self.attempt)


class Duplicate(msgspec.Struct, frozen=True, kw_only=True):
    """Two records at Sikka for one writeback: its own and a late original."""

    writeback_id: str
    kept_sikka_writeback_id: str
    late_sikka_writeback_id: str
    found_at: datetime


def watch_key(writeback_id: str, attempt: int) -> str:
    """How a resent watch is named where a writeback id goes (its checks, its DELETE step)."""
    return f"{writeback_id}/{attempt}"


def watched(p, writeback_id: str) -> bool:
    """Whether a resent watch still needs the writeback's payload."""
    return any(w.writeback_id == writeback_id for w in p.resent_watch.values())


def watch(p, wb, e: ev.ProvenAbsent):
    """The practice after ``wb``'s current attempt was proven absent: that attempt is watched."""
    w = ResentWatch(
        writeback_id=wb.writeback_id,
        attempt=wb.attempts,
        operation=wb.operation,
        attempted_at=wb.attempted_at or wb.requested_at,
        proven_at=e.at,
        next_check_at=e.at,
    )
    return replace(p, resent_watch={**p.resent_watch, w.key: w})


def changed(p, w: ResentWatch, **changes):
    return replace(p, resent_watch={**p.resent_watch, w.key: replace(w, **changes)})


def ended(p, wb):
    """``wb`` became final: its watches remember its own Sikka record."""
    for w in list(p.resent_watch.values()):
        if w.writeback_id == wb.writeback_id:
            p = changed(p, w, kept_sikka_writeback_id=wb.sikka_writeback_id)
    return p


def folded(p, e: ev.DuplicateFound | ev.DuplicateDeleteTried | ev.DuplicateSettled, remember):
    """The practice after a duplicate event: the watch it names updated, or ended (its payload
    dropped when nothing else needs it; a written duplicate remembered); ``remember(ids, id)``
    adds the late original's Sikka id to the claimed ones."""
    w = p.resent_watch.get(watch_key(e.writeback_id, e.attempt))
    if w is None:
        return p
    if getattr(e, "sikka_writeback_id", ""):
        p = replace(p, recent_sikka_ids=remember(p.recent_sikka_ids, e.sikka_writeback_id))
    match e:
        case ev.DuplicateFound():
            return changed(p, w, found=e.sikka_writeback_id, found_result=e.result, delete_retry_at=None)
        case ev.DuplicateDeleteTried():
            result = w.found_result if e.retry_at is not None else "delete_sent"
            return changed(p, w, delete_tries=e.tries, delete_retry_at=e.retry_at, found_result=result)
    watches = {k: v for k, v in p.resent_watch.items() if k != w.key}
    p = replace(p, resent_watch=watches)
    if e.outcome == "written":
        found = Duplicate(
            writeback_id=e.writeback_id, kept_sikka_writeback_id=e.kept_sikka_writeback_id,
            late_sikka_writeback_id=e.sikka_writeback_id, found_at=e.at,
        )
        p = replace(p, duplicates=(p.duplicates + (found,))[-RECENT_DUPLICATES:])
    needed = e.writeback_id in p.writebacks or e.writeback_id in p.late_watch or e.writeback_id in p.failed_ops
    if needed or watched(p, e.writeback_id):
        return p
    return replace(p, payloads={k: v for k, v in p.payloads.items() if k != e.writeback_id})
