"""Sikka calls on a rate budget: wait for a slot, send, feed the answer back to the budget.

Every call the supervisor makes goes ``take_budget`` → the client → ``observe``: the practice's
budget for keyed calls (``actors.core.ratelimit``, lanes by priority), the app-level budget for
App-Id/App-Key calls. ``read_list_round`` reads an app-level ``GET /writebacks`` round page by
page (each page one call on the app budget) for the app-level task; ``read_own_list``, an
actor's own fallback when that task is overdue, reads every page (it may have to reconcile).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import trio

from actors.core import messages
from actors.core import outcomes as oc
from actors.core.listread import ListMemory, RoundReader
from actors.core.ratelimit import Budget, Lane
from actors.core.schedule import list_targets
from actors.core.state import Practice


async def take_budget(budget: Budget, lane: Lane, clock: Callable[[], datetime]) -> float:
    """Wait until ``budget`` lets ``lane`` send, take the slot, return the send time (POSIX s)."""
    while True:
        now = clock().timestamp()
        at = budget.allowed_at(lane, now)
        if at <= now and budget.take(lane, now):
            return now
        await trio.sleep(max(at - now, 0.01))


def observe(budget: Budget, result: oc.Result, sent_at: float, now: float) -> None:
    """Feed a response's rate-limit headers, 429 or daily quota into the budget."""
    budget.observe(result.rate, now, sent_at)
    match result.outcome:
        case oc.RateLimited(reset_s=reset_s):
            budget.snooze(reset_s, now)
        case oc.DailyQuota():
            budget.exhaust_day(now)


async def read_list_round(deps, reader: RoundReader) -> None:
    """Read the pages ``reader`` asks for (``actors.core.listread``), each paid for on the
    app-level budget before it is sent: one ``GET /writebacks`` page is one app-level call."""
    while (request := reader.next_request()) is not None:
        (start, end), page = request
        sent_at = await take_budget(deps.app_budget, Lane.STATUS, deps.clock)
        result = await deps.client.writebacks_page(start, end, page, limit=reader.limit)
        observe(deps.app_budget, result, sent_at, deps.clock().timestamp())
        reader.take((start, end), page, result.value if isinstance(result.outcome, oc.Ok) else None)


async def read_own_list(deps, state: Practice, ranges) -> messages.ListOutcome:
    """The whole list for ``ranges`` (every page), read by a practice's actor: its own items."""
    known = frozenset(t.sikka_writeback_id for t in list_targets(state) if t.sikka_writeback_id)
    reader = RoundReader(tuple(ranges), ListMemory(), wanted=known, known=known,
                         offices=frozenset({state.office_id}), complete=True)
    await read_list_round(deps, reader)
    return messages.ListOutcome(
        items=tuple(i for i in reader.items if i.office_id == state.office_id),
        ranges=tuple(ranges),
        fetched_at=deps.clock(),
        complete=reader.complete,
        failed=reader.failed,
    )
