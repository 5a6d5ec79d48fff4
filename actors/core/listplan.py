"""The app-level list planner: one ``GET /writebacks`` round serves every practice.

Batching: ``GET /writebacks`` is app-level and returns every writeback of the app in a date
range (≤ 7 days), so one call serves every pending and unknown writeback of every practice. The
app-level task asks ``plan_list_call(targets, now)`` when the next call is due (the earliest
``next_check_at`` of any target) and which UTC date ranges it must cover (each target's
attempt date ±1 day, which covers whatever time zone Sikka writes ``command_time`` in); it
then fetches every page of every range and hands the items to ``fan_out``, which groups them
into one ``ListOutcome`` per practice. ``writeback_status`` (one id, the practice's key) is used
only when the list says a writeback is final and we still need ``created_id`` or error detail.
A list round counts as the scheduled check of every writeback due within one gap after it
(``check_due``): checking early never breaks the bound, and neighbouring schedules merge into
the same rounds. Cost (``tests/core/test_policy.py``): with 20+ writebacks pending from a burst
and completing 5–40 s after acknowledgement, (list calls and pages + writeback_status reads) /
confirmed stays ≤ 1.5 for a mix of the six operations; a create always pays one
writeback_status read for ``created_id``, so an all-create burst needs about 26 pending to
stay ≤ 1.5 (20 all-creates cost ≈ 1.65). Young writebacks force a round every 2 s, so a slow
trickle (few completions per round) costs more per confirmation; the bound wins over the cost.

Pure: times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

import msgspec

from actors.core.messages import ListOutcome
from actors.core.policy import LIST_MAX_DAYS, LIST_MIN_INTERVAL_S, UTC, seconds


class ListTarget(msgspec.Struct, frozen=True, kw_only=True):
    """One writeback the app-level list call serves (built by ``actors.core.schedule.list_targets``)."""

    office_id: str
    writeback_id: str
    kind: str  # "pending" | "unknown" | "late" (failed outcome_unknown, still watched)
    anchor: datetime  # the attempt (or acknowledgement) time: its UTC date ±1 day is searched
    next_check_at: datetime | None = None
    sikka_writeback_id: str | None = None


class ListPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The next ``GET /writebacks`` round: when, which ranges (one call each, all pages)."""

    due_at: datetime
    ranges: tuple[tuple[date, date], ...]  # inclusive UTC dates, each ≤ 7 days
    served: tuple[str, ...]  # writeback ids whose whole ±1 day span the ranges cover


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


def plan_list_call(
    targets: Iterable[ListTarget],
    now: datetime,
    *,
    last_call_at: datetime | None = None,
    min_interval_s: float = LIST_MIN_INTERVAL_S,
    max_days: int = LIST_MAX_DAYS,
) -> ListPlan | None:
    """The next list round for every target across practices, or ``None`` when nothing waits.

    Due at the earliest ``next_check_at`` (``None`` counts as now), never sooner than
    ``min_interval_s`` after the previous call. The ranges cover the targets due by then; any
    other target whose span those ranges already cover rides along (it is checked early, for free).
    """
    targets = list(targets)
    if not targets:
        return None
    due = min(t.next_check_at or now for t in targets)
    due = max(due, now) if due > now else due
    if last_call_at is not None:
        due = max(due, last_call_at + seconds(min_interval_s))
    horizon = max(due, now)
    needed: set[date] = set()
    for t in targets:
        if (t.next_check_at or now) <= horizon:
            lo, hi = target_dates(t.anchor)
            needed.update(lo + timedelta(days=i) for i in range((hi - lo).days + 1))
    ranges = date_ranges(needed, max_days)
    served = tuple(t.writeback_id for t in targets if covers(ranges, t.anchor))
    return ListPlan(due_at=due, ranges=ranges, served=served)


def fan_out(
    targets: Iterable[ListTarget],
    items: Iterable,
    ranges: tuple[tuple[date, date], ...],
    fetched_at: datetime,
    *,
    complete: bool = True,
) -> dict[str, object]:
    """One ``ListOutcome`` per practice that has a target the ranges cover.

    A practice with only pending targets gets just the items carrying their Sikka ids; one with
    unknown or late targets gets every item of its office (reconciliation matches on content).
    """
    by_office: dict[str, list[ListTarget]] = {}
    for t in targets:
        if covers(ranges, t.anchor):
            by_office.setdefault(t.office_id, []).append(t)
    items_by_office: dict[str, list] = {}
    for item in items:
        items_by_office.setdefault(item.office_id, []).append(item)
    out: dict[str, object] = {}
    for office_id, office_targets in by_office.items():
        office_items = items_by_office.get(office_id, [])
        if all(t.kind == "pending" for t in office_targets):
            wanted = {t.sikka_writeback_id for t in office_targets}
            office_items = [i for i in office_items if i.id in wanted]
        out[office_id] = ListOutcome(
            items=tuple(office_items), ranges=ranges, fetched_at=fetched_at, complete=complete
        )
    return out

