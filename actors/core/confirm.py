"""What an app-level ``GET /writebacks`` list means for one practice: pending writebacks found
completed, failed or deleted; unknown ones reconciled (one candidate), still ambiguous (several)
or proven absent (none, once the proof window has passed); failed ``outcome_unknown`` ones found
late; the originals of re-sent attempts found late (``actors.core.duplicates``). Candidates are
matched on content (``actors.core.reconcile``) and assigned jointly, so no item of Sikka's list is
claimed by two of our writebacks; only a complete list (every page: a round that stopped once it
found its pending targets is not) is matched against. Pure.
"""

from __future__ import annotations

from datetime import datetime

from actors.core import duplicates
from actors.core import events as ev
from actors.core import policy
from actors.core import reconcile as rc
from actors.core.answers import apply_remote
from actors.core.listplan import covers
from actors.core.messages import ListOutcome
from actors.core.policy import CoreSettings, seconds
from actors.core.schedule import anchor_of, list_targets, ordered
from actors.core.state import Practice, Writeback, evolve


def _claimed(p: Practice, msg: ListOutcome) -> set[str]:
    claimed = set(p.recent_sikka_ids) | set(msg.claimed_ids)
    claimed.update(wb.sikka_writeback_id for wb in p.writebacks.values() if wb.sikka_writeback_id)
    return claimed | duplicates.claimed(p)


def list_outcome(p: Practice, msg: ListOutcome, now: datetime, settings: CoreSettings) -> list[ev.Event]:
    fetched = msg.fetched_at
    out: list[ev.Event] = []
    if msg.failed:
        for t in list_targets(p):
            if covers(msg.ranges, t.anchor) and (t.next_check_at or now) <= now:
                retry = now + seconds(policy.STATUS_ERROR_BACKOFF_S)
                out.append(ev.StatusChecked(at=now, writeback_id=t.writeback_id, result="error", next_check_at=retry))
        return out
    by_id = {item.id: item for item in msg.items}
    claimed = _claimed(p, msg)
    verdicts = _assign_unresolved(p, msg, claimed)
    for wb in ordered(p):
        if not covers(msg.ranges, anchor_of(wb)):
            continue
        due = policy.check_due(wb.next_check_at, fetched, wb.submitted_at or anchor_of(wb))
        if wb.state == "pending" and wb.sikka_writeback_id and not wb.status_read_due:
            item = by_id.get(wb.sikka_writeback_id)
            if item is None:
                if due and msg.complete:
                    nxt = policy.next_poll_at(wb.submitted_at or anchor_of(wb), now)
                    out.append(ev.StatusChecked(at=now, writeback_id=wb.writeback_id, result="missing", next_check_at=nxt))
                continue
            if item.office_id.strip().lower() != p.office_id.strip().lower():
                continue
            out.extend(apply_remote(wb, rc.decode_list_item(item), now, due=due))
        elif wb.state == "unknown" and msg.complete:  # a partial list may hide a second candidate
            out.extend(_reconcile_unknown(p, wb, msg, now, due, verdicts, by_id, settings))
    for watch in p.late_watch.values() if msg.complete else ():
        if watch.writeback_id not in verdicts:
            continue
        verdict = verdicts[watch.writeback_id]
        due = watch.next_check_at is None or watch.next_check_at <= fetched
        proven = msg.complete and fetched >= policy.proof_at(watch.attempted_at, settings)
        if verdict is not None and verdict != rc.AMBIGUOUS:
            item = by_id[verdict]
            out.append(
                ev.LateOutcomeFound(at=now, writeback_id=watch.writeback_id, sikka_writeback_id=item.id, result=item.result)
            )
        elif verdict is None and proven:
            out.append(ev.LateWatchEnded(at=now, writeback_id=watch.writeback_id, reason="proven_absent"))
        elif due:
            result = "ambiguous" if verdict == rc.AMBIGUOUS else "not_found"
            nxt = now + seconds(policy.LATE_WATCH_CHECK_S)
            out.append(ev.StatusChecked(at=now, writeback_id=watch.writeback_id, result=result, next_check_at=nxt))
    return out + duplicates.list_outcome(p, msg, verdicts, by_id, now)


def _assign_unresolved(p: Practice, msg: ListOutcome, claimed: set[str]) -> dict[str, str | None]:
    """Candidates of every unresolved writeback (unknown, or failed outcome_unknown and still
    watched, or the original of a re-sent attempt: its watch's key) that this list covers and
    whose body we have, assigned jointly (``rc.assign``): identical ones are paired with Sikka's
    items in send order (attempt start, then request order; a watch no longer knows its request
    order), items in ``command_time`` order."""
    claims: dict[str, frozenset[str]] = {}
    sent: dict[str, tuple[datetime, int | None]] = {}
    unresolved = [
        (wb.writeback_id, wb.operation, anchor_of(wb), wb.seq, wb.writeback_id)
        for wb in ordered(p)
        if wb.state == "unknown"
    ]
    unresolved += [
        (w.writeback_id, w.operation, w.attempted_at, None, w.writeback_id)
        for w in p.late_watch.values()
        if w.writeback_id in p.payloads
    ]
    unresolved += [(key, operation, attempted, None, wid) for key, operation, attempted, wid in duplicates.unresolved(p)]
    for wid, operation, attempted, seq, body_of in unresolved:
        sent[wid] = (attempted, seq)
        body = msg.bodies.get(body_of)
        if body is None or not covers(msg.ranges, attempted):
            continue
        found = rc.candidates(
            operation=operation,
            office_id=p.office_id,
            payload=body,
            attempted_at=attempted,
            items=msg.items,
            claimed=claimed,
        )
        if found is not None:
            claims[wid] = frozenset(item.id for item in found)
    written = {item.id: rc.command_datetime(item) for item in msg.items}
    return rc.assign(claims, sent=sent, written=written)


def _reconcile_unknown(
    p: Practice,
    wb: Writeback,
    msg: ListOutcome,
    now: datetime,
    due: bool,
    verdicts: dict[str, str | None],
    by_id: dict,
    settings: CoreSettings,
) -> list[ev.Event]:
    wid = wb.writeback_id
    attempted = anchor_of(wb)
    if wid not in verdicts:  # no body given (or an unusable payload): cannot match
        if not due:
            return []
        nxt = now + seconds(policy.AMBIGUOUS_RECHECK_S)
        return [ev.StatusChecked(at=now, writeback_id=wid, result="no_body", next_check_at=nxt)]
    verdict = verdicts[wid]
    if verdict is not None and verdict != rc.AMBIGUOUS:
        item = by_id[verdict]
        reconciled = ev.WritebackReconciled(
            at=now,
            writeback_id=wid,
            sikka_writeback_id=item.id,
            next_check_at=policy.next_poll_at(attempted, now),
        )
        after = evolve(p, reconciled).writebacks[wid]
        remote = rc.decode_list_item(item)
        return [reconciled] + ([] if remote.kind == "pending" else apply_remote(after, remote, now, due=True))
    if verdict is None and msg.complete and msg.fetched_at >= policy.proof_at(attempted, settings):
        out: list[ev.Event] = [ev.ProvenAbsent(at=now, writeback_id=wid)]
        if wb.cancel_requested:
            out.append(ev.WritebackCancelled(at=now, writeback_id=wid))
        return out
    if verdict == rc.AMBIGUOUS:
        if wb.ambiguous and not due:
            return []
        nxt = now + seconds(policy.AMBIGUOUS_RECHECK_S)
        return [ev.StatusChecked(at=now, writeback_id=wid, result="ambiguous", next_check_at=nxt)]
    if not due:
        return []
    nxt = policy.unknown_next_check_at(now, attempted, wb.unknown_since or now, settings)
    return [ev.StatusChecked(at=now, writeback_id=wid, result="not_found", next_check_at=nxt)]


