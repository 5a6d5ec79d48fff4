"""Late duplicates: what a resent watch decides (its shape and fold: ``actors.core.resent``). Pure.

The attempt proven absent before a re-send is matched against Sikka's list (the late watch's
content matching, ``actors.core.reconcile``) for 7 days, but only once the writeback's own
record is known (pending with its Sikka id, or final): that record is claimed, so the re-send
can never be taken for the original::

    unclaimed item matching the original's content and attempt date
      pending at Sikka  ─► DuplicateFound(pending) ─► DELETE (the actor's Cancel step, named by
      │                    the watch's key) ─► answered: the list tells ─► deleted: DuplicateSettled(deleted)
      │                                     └─ failed or timed out: again, 5 s doubling to 5 min
      written           ─► DuplicateSettled(written): both Sikka ids recorded, writeback_duplicate
      failed or deleted ─► DuplicateSettled(not_written)
    nothing: checked again (gaps as a pending writeback's for an hour, then every 15 min)
    7 days, or the payload purged ─► DuplicateSettled(expired)

The trade-off is ``SIKKA_ABSENCE_GRACE`` (``actors.core.policy.proof_at``): a longer grace
re-sends later after a lost answer and leaves fewer late originals to find.
"""

from __future__ import annotations

from datetime import datetime

from actors.core import events as ev
from actors.core import outcomes as oc
from actors.core import policy
from actors.core import reconcile as rc
from actors.core.listplan import ListTarget, covers
from actors.core.messages import DeleteOutcome, ListOutcome
from actors.core.policy import seconds
from actors.core.resent import ResentWatch
from actors.core.state import Practice

WATCH_FAST_S = 3600.0  # checked as often as a pending writeback for this long after the proof


def _eligible(p: Practice, w: ResentWatch) -> bool:
    """Whether the writeback's own record is known (and so claimed): then, and only then, an
    item matching the original can be told from the re-send's."""
    wb = p.writebacks.get(w.writeback_id)
    return wb is None or (wb.state == "pending" and wb.sikka_writeback_id is not None)


def _kept(p: Practice, w: ResentWatch) -> str:
    wb = p.writebacks.get(w.writeback_id)
    return (wb.sikka_writeback_id if wb is not None else w.kept_sikka_writeback_id) or ""


def targets(p: Practice) -> list[ListTarget]:
    """The watches the app-level list serves (``kind`` late: every item of the office)."""
    return [
        ListTarget(office_id=p.office_id, writeback_id=w.key, kind="late", anchor=w.attempted_at,
                   next_check_at=w.next_check_at)
        for w in p.resent_watch.values()
        if _eligible(p, w) and w.writeback_id in p.payloads
    ]


def unresolved(p: Practice) -> list[tuple[str, str, datetime, str]]:
    """(watch key, operation, attempt time, writeback id) of the watches still matching."""
    return [
        (w.key, w.operation, w.attempted_at, w.writeback_id)
        for w in p.resent_watch.values()
        if w.found is None and _eligible(p, w) and w.writeback_id in p.payloads
    ]


def claimed(p: Practice) -> set[str]:
    """Late originals already found (no other writeback may claim them)."""
    return {w.found for w in p.resent_watch.values() if w.found}


def next_check_at(w: ResentWatch, now: datetime) -> datetime:
    if (now - w.proven_at).total_seconds() < WATCH_FAST_S:
        return policy.next_poll_at(w.proven_at, now)
    return now + seconds(policy.LATE_WATCH_CHECK_S)


def list_outcome(p: Practice, msg: ListOutcome, verdicts: dict, by_id: dict, now: datetime) -> list[ev.Event]:
    """What a complete list of Sikka's writebacks says about the watches it covers."""
    out: list[ev.Event] = []
    for w in p.resent_watch.values():
        if not msg.complete or not _eligible(p, w) or not covers(msg.ranges, w.attempted_at):
            continue
        if w.found is not None:
            out.extend(_found_before(p, w, by_id.get(w.found), now))
            continue
        verdict = verdicts.get(w.key)
        if verdict is not None and verdict != rc.AMBIGUOUS:
            out.extend(_found(p, w, by_id[verdict], now))
        elif policy.check_due(w.next_check_at, msg.fetched_at, w.proven_at):
            result = "ambiguous" if verdict == rc.AMBIGUOUS else "not_found"
            out.append(ev.StatusChecked(at=now, writeback_id=w.key, result=result, next_check_at=next_check_at(w, now)))
    return out


def _found(p: Practice, w: ResentWatch, item, now: datetime) -> list[ev.Event]:
    remote = rc.decode_list_item(item)
    found = ev.DuplicateFound(
        at=now, writeback_id=w.writeback_id, attempt=w.attempt, sikka_writeback_id=item.id, result=remote.kind
    )
    match remote.kind:
        case "completed":
            return [found, _settled(p, w, "written", item.id, now)]
        case "failed" | "deleted":
            return [found, _settled(p, w, "not_written", item.id, now)]
    return [found]  # pending: deleted next; unclear: the next list tells


def _found_before(p: Practice, w: ResentWatch, item, now: datetime) -> list[ev.Event]:
    """A late original found earlier, in this list again (or not)."""
    if item is None:
        return []
    match rc.decode_list_item(item).kind:
        case "completed":
            return [_settled(p, w, "written", w.found, now)]
        case "failed":
            return [_settled(p, w, "not_written", w.found, now)]
        case "deleted":
            outcome = "deleted" if w.found_result in ("pending", "delete_sent") else "not_written"
            return [_settled(p, w, outcome, w.found, now)]
        case "pending" if w.found_result not in ("pending",):  # a DELETE answered, yet still pending
            return [ev.DuplicateFound(at=now, writeback_id=w.writeback_id, attempt=w.attempt,
                                      sikka_writeback_id=w.found, result="pending")]
    return []


def _settled(p: Practice, w: ResentWatch, outcome: str, late_id: str, now: datetime) -> ev.DuplicateSettled:
    return ev.DuplicateSettled(
        at=now, writeback_id=w.writeback_id, attempt=w.attempt, outcome=outcome, sikka_writeback_id=late_id,
        kept_sikka_writeback_id=_kept(p, w),
    )


def delete_outcome(p: Practice, msg: DeleteOutcome, now: datetime) -> list[ev.Event]:
    """What the DELETE of a late original came to (``msg.writeback_id``: the watch's key)."""
    w = p.resent_watch.get(msg.writeback_id)
    if w is None or w.found is None or w.found_result != "pending":
        return []
    tries = w.delete_tries + 1
    outcome = msg.result.outcome
    if isinstance(outcome, oc.Ok | oc.Rejected):  # answered: the list tells what became of it
        code = getattr(outcome, "code", "") or "ok"
        return [ev.DuplicateDeleteTried(at=now, writeback_id=w.writeback_id, attempt=w.attempt, code=code, tries=tries)]
    retry_at = now + seconds(policy.delete_backoff(tries))
    return [
        ev.DuplicateDeleteTried(
            at=now, writeback_id=w.writeback_id, attempt=w.attempt, code=getattr(outcome, "code", "") or
            type(outcome).__name__, tries=tries, retry_at=retry_at,
        )
    ]


def deletes_due(p: Practice) -> list[ResentWatch]:
    """Watches whose late original is to be deleted (their retry time aside)."""
    return [w for w in p.resent_watch.values() if w.found is not None and w.found_result == "pending"]


def due_events(p: Practice, now: datetime) -> list[ev.Event]:
    """Watches whose 7 days are over, or whose payload was purged (nothing left to match)."""
    return [
        _settled(p, w, "expired", "", now)
        for w in p.resent_watch.values()
        if now >= w.proven_at + seconds(policy.LATE_WATCH_S) or w.writeback_id not in p.payloads
    ]


def timers(p: Practice) -> list[datetime]:
    """When a watch next needs the actor by itself (its end, a DELETE to retry)."""
    out = [w.proven_at + seconds(policy.LATE_WATCH_S) for w in p.resent_watch.values()]
    return out + [w.delete_retry_at for w in deletes_due(p) if w.delete_retry_at is not None]
