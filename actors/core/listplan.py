"""The confirmation planner: each round, the app-wide list or one status read per writeback.

Two ways to learn what Sikka did with the pending writebacks of every practice:

- ``GET /writebacks`` (app-level: the App-Id/App-Key budget that every practice and every node
  shares): one call per page of 5,000 returns every writeback of the application in a range of
  dates (≤ 7 days), so one round serves every practice; what it costs grows with the day's
  volume, not with what is pending, unless the read stops early (``actors.core.listread``);
- ``writeback_status?id=`` (one writeback, on its practice's own budget, which grows with the
  fleet): what it costs is the number of writebacks due.

The app-level task asks ``plan_round(targets, now, …)`` when the next round is due (the earliest
``next_check_at`` of any target; never sooner than ``min_interval_s`` after the last list) and how
to serve it:

- ``list`` when an ``unknown`` or ``late`` target is due: reconciliation matches content and
  proof of absence needs the complete list (``complete``: every page); else when the pages the
  round is expected to read (``listread.expected_pages``, from where the last rounds found the
  targets) are fewer than the checks it serves: every pending target whose scheduled check a
  list fetched now would count (``policy.check_due``: due within one gap, the neighbours that a
  round merges). A list round stops as soon as every due pending writeback's Sikka id was found
  (``wanted``), in any order Sikka pages its list; one the last complete list did not hold
  (``missing``: not yet listed, or lost) is not waited for: it gets a status read beside the round,
  as do all the pending ones due when a complete round must wait for the app budget;
- ``status`` otherwise (ties too: they spare the shared budget), and whenever the app-level
  budget cannot send by the due time: the due pending targets each get a ``writeback_status``
  read from their practice's actor (``CheckByStatus``).

The ranges cover each target's attempt date ±1 day (whatever time zone Sikka writes
``command_time`` in). ``fan_out`` groups a list's items into one ``ListOutcome`` per practice.
``writeback_status`` is also read when a list says a writeback is final and we need
``created_id`` or error detail (``actors.core.answers``). Cost (``tests/core/test_policy.py``,
``bench.confirm``, the fleet figures of ``bench/README.md``): a burst of 20+ pending costs ≤ 1.5
calls per confirmation for a mix of operations; a create always pays one ``writeback_status``
read for ``created_id``. Young writebacks force a check every 2 s (the overshoot bound), so a slow
trickle costs a few status reads per confirmation; the bound wins over the cost.

Pure: times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

import msgspec

from actors.core.listread import ListMemory, expected_pages
from actors.core.messages import ListOutcome
from actors.core.policy import LIST_MAX_DAYS, LIST_MIN_INTERVAL_S, UTC, check_due, seconds

STATUS_PLAN_GRACE_S = 10.0  # a target handed to its actor for a status read is not planned again this soon
APP_WAIT_S = 1.0  # a list round that would wait longer than this for the app budget goes by status reads


class ListTarget(msgspec.Struct, frozen=True, kw_only=True):
    """One writeback the confirmation rounds serve (built by ``actors.core.schedule.list_targets``)."""

    office_id: str
    writeback_id: str
    kind: str  # "pending" | "unknown" | "late" (failed outcome_unknown, still watched)
    anchor: datetime  # the attempt (or acknowledgement) time: its UTC date ±1 day is searched
    next_check_at: datetime | None = None
    sikka_writeback_id: str | None = None
    missing: bool = False  # pending, but the last complete list did not hold it: checked by status reads


class ListPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The next round: when, and how (``method``).

    ``list``: ``ranges`` (inclusive UTC dates, each ≤ 7 days), read until every id of ``wanted``
    is found unless ``complete`` (every page); ``served``: the targets whose ±1 day span the
    ranges cover; ``known``: the Sikka ids of the pending ones among them (their items are
    wanted if seen); ``offices``: practices whose every item is needed (reconciliation).
    ``status``: ``status`` holds the due pending targets, one ``writeback_status`` read each; a
    list round's ``status`` holds the due ones checked aside by status reads (the last list did not
    hold them: ``missing``; or the round must wait for the app budget).
    """

    due_at: datetime
    method: str = "list"  # "list" | "status"
    ranges: tuple[tuple[date, date], ...] = ()
    served: tuple[str, ...] = ()
    wanted: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()
    complete: bool = False
    offices: frozenset[str] = frozenset()
    status: tuple[ListTarget, ...] = ()


def target_dates(anchor: datetime) -> tuple[date, date]:
    d = anchor.astimezone(UTC).date()
    return d - timedelta(days=1), d + timedelta(days=1)


def covers(ranges: Iterable[tuple[date, date]], anchor: datetime) -> bool:
    """Whether ``ranges`` hold every date of ``anchor``'s ±1 day span."""
    lo, hi = target_dates(anchor)
    days = {lo + timedelta(days=i) for i in range((hi - lo).days + 1)}
    for a, b in ranges:
        days = {d for d in days if not (a <= d <= b)}
    return not days


def date_ranges(dates: Iterable[date], max_days: int = LIST_MAX_DAYS) -> tuple[tuple[date, date], ...]:
    """The fewest ranges of at most ``max_days`` days (inclusive) holding every date."""
    out: list[tuple[date, date]] = []
    for d in sorted(set(dates)):
        if out and d <= out[-1][0] + timedelta(days=max_days - 1):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return tuple(out)


def plan_round(
    targets: Iterable[ListTarget],
    now: datetime,
    *,
    last_call_at: datetime | None = None,
    memory: ListMemory | None = None,
    app_free_at: datetime | None = None,
    status_reads: bool = True,
    min_interval_s: float = LIST_MIN_INTERVAL_S,
    max_days: int = LIST_MAX_DAYS,
) -> ListPlan | None:
    """The next round for every target across practices, or ``None`` when nothing waits (see
    the module docstring). ``memory``: what the last list rounds found where; ``app_free_at``:
    when the app-level budget can next send a list page (``None``: now); ``status_reads``: False
    plans list rounds only (the strategy before status reads, which ``bench.fleet`` measures)."""
    targets = list(targets)
    if not targets:
        return None
    first = min(t.next_check_at or now for t in targets)
    due = first if last_call_at is None else max(first, last_call_at + seconds(min_interval_s))
    horizon = max(due, now)
    due_now = [t for t in targets if (t.next_check_at or now) <= horizon]
    needed: set[date] = set()
    for t in due_now:
        lo, hi = target_dates(t.anchor)
        needed.update(lo + timedelta(days=i) for i in range((hi - lo).days + 1))
    ranges = date_ranges(needed, max_days)
    pending = [t for t in targets if t.kind == "pending" and covers(ranges, t.anchor)]
    complete = any(t.kind != "pending" for t in due_now)
    app_late = app_free_at is not None and app_free_at > horizon + seconds(APP_WAIT_S)
    waiting = status_reads and complete and app_late  # the list must wait: the pending ones need not
    aside = tuple(t for t in due_now if t.kind == "pending" and status_reads and (t.missing or waiting))
    aside_ids = {t.writeback_id for t in aside}
    wanted = frozenset(
        t.sikka_writeback_id
        for t in due_now
        if t.kind == "pending" and t.sikka_writeback_id and t.writeback_id not in aside_ids
    )
    if status_reads and not complete:
        merged = sum(check_due(t.next_check_at, horizon, t.anchor) for t in pending if t.writeback_id not in aside_ids)
        if app_late or merged <= expected_pages(memory or ListMemory(), ranges, wanted, complete=False):
            status = tuple(t for t in pending if (t.next_check_at or now) <= max(first, now))
            return ListPlan(due_at=first, method="status", status=status)
    served = tuple(t.writeback_id for t in targets if covers(ranges, t.anchor) and t.writeback_id not in aside_ids)
    return ListPlan(
        due_at=due,
        ranges=ranges,
        served=served,
        wanted=wanted,
        known=frozenset(t.sikka_writeback_id for t in pending if t.sikka_writeback_id),
        complete=complete,
        offices=frozenset(t.office_id for t in targets if t.kind != "pending" and covers(ranges, t.anchor)),
        status=aside,
    )


def unplanned(
    targets: Iterable[ListTarget], planned: dict[str, datetime], now: datetime
) -> tuple[list[ListTarget], dict[str, datetime]]:
    """The targets not just handed to their actor for a status read, and the hand-overs still
    standing (``planned``: writeback id → when): one stands until the writeback's next check
    moves past it, or for ``STATUS_PLAN_GRACE_S`` (an actor that could not read it: plan again)."""
    out, still = [], {}
    for t in targets:
        at = planned.get(t.writeback_id)
        if at is not None and now < at + seconds(STATUS_PLAN_GRACE_S) and (t.next_check_at or now) <= at:
            still[t.writeback_id] = at
            continue
        out.append(t)
    return out, still


def fan_out(
    targets: Iterable[ListTarget],
    items: Iterable,
    ranges: tuple[tuple[date, date], ...],
    fetched_at: datetime,
    *,
    complete: bool = True,
    failed: bool = False,
) -> dict[str, ListOutcome]:
    """One ``ListOutcome`` per practice that has a target the ranges cover.

    A practice with only pending targets gets just the items carrying their Sikka ids; one with
    unknown or late targets gets every item of its office (reconciliation matches on content,
    and only on a complete list: ``actors.core.confirm``).
    """
    by_office: dict[str, list[ListTarget]] = {}
    for t in targets:
        if covers(ranges, t.anchor):
            by_office.setdefault(t.office_id, []).append(t)
    items_by_office: dict[str, list] = {}
    for item in items:
        items_by_office.setdefault(item.office_id, []).append(item)
    out: dict[str, ListOutcome] = {}
    for office_id, office_targets in by_office.items():
        office_items = [] if failed else items_by_office.get(office_id, [])
        if all(t.kind == "pending" for t in office_targets):
            wanted = {t.sikka_writeback_id for t in office_targets}
            office_items = [i for i in office_items if i.id in wanted]
        out[office_id] = ListOutcome(
            items=tuple(office_items), ranges=ranges, fetched_at=fetched_at, complete=complete, failed=failed
        )
    return out
