"""The confirmation planner's choice (a list round or status reads) and the page-by-page reading of
a list round (``actors.core.listplan``, ``actors.core.listread``). Pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from actors.core import listplan
from actors.core.listplan import ListTarget
from actors.core.listread import ListMemory, RangeMemory, RoundReader, expected_pages
from actors.core.sikka_parse import WritebackItem, WritebackPage
from tests.support.core import at, list_item

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
RANGE = (date(2026, 3, 9), date(2026, 3, 11))


def pending(n: int, *, due: datetime = NOW, office: str = "A", acked: datetime | None = None) -> ListTarget:
    return ListTarget(
        office_id=office, writeback_id=f"w{n}", kind="pending", anchor=acked or due - timedelta(seconds=4),
        next_check_at=due, sikka_writeback_id=str(n),
    )


# --- the planner's choice --------------------------------------------------------------------


def test_planner_ranges_cover_attempt_dates_plus_minus_one_day_at_most_7_days_each():
    hour, day = timedelta(hours=1), timedelta(days=1)
    targets = [
        ListTarget(office_id="A", writeback_id="p1", kind="pending", anchor=NOW - hour, next_check_at=NOW),
        ListTarget(office_id="B", writeback_id="u1", kind="unknown", anchor=NOW - 2 * day, next_check_at=NOW),
        ListTarget(office_id="C", writeback_id="l1", kind="late", anchor=NOW - 6 * day, next_check_at=NOW + hour),
    ]
    plan = listplan.plan_round(targets, NOW)
    assert plan.method == "list" and plan.due_at == NOW
    assert plan.ranges == ((date(2026, 3, 7), date(2026, 3, 11)),)  # l1 is not due: not widened for it
    assert plan.served == ("p1", "u1")
    assert plan.complete and plan.offices == {"B"}  # an unknown writeback needs the whole list
    later = listplan.plan_round(targets, NOW + timedelta(hours=1), last_call_at=NOW)
    assert later.ranges == ((date(2026, 3, 3), date(2026, 3, 9)), (date(2026, 3, 10), date(2026, 3, 11)))
    assert all((b - a).days < 7 for a, b in later.ranges)
    assert listplan.plan_round([], NOW) is None
    soon = listplan.plan_round(targets[:2], NOW, last_call_at=NOW - timedelta(seconds=0.2))
    assert soon.method == "list" and soon.due_at == NOW + timedelta(seconds=0.8)  # list rounds ≥ 1 s apart


def test_one_writeback_due_is_checked_by_a_status_read_on_its_practice_budget():
    plan = listplan.plan_round([pending(1)], NOW, last_call_at=NOW - timedelta(seconds=0.2))
    assert plan.method == "status" and [t.writeback_id for t in plan.status] == ["w1"]
    assert plan.due_at == NOW  # no app-level call: the list rounds' spacing does not apply


def test_many_writebacks_due_share_one_list_page():
    targets = [pending(n) for n in range(5)]
    plan = listplan.plan_round(targets, NOW)
    assert plan.method == "list" and not plan.complete
    assert plan.wanted == plan.known == {str(n) for n in range(5)}  # the read stops once all five are seen


def test_neighbours_a_list_round_would_merge_count_for_the_list():
    """One due now and one due 1.5 s later (within its 2 s gap, so a list now counts as its check
    too): one page serves two checks. A neighbour 5 s away would not be served: a status read."""
    assert listplan.plan_round([pending(1), pending(2, due=NOW + timedelta(seconds=1.5))], NOW).method == "list"
    far = listplan.plan_round([pending(1), pending(2, due=NOW + timedelta(seconds=5))], NOW)
    assert far.method == "status" and [t.writeback_id for t in far.status] == ["w1"]


def test_the_pages_a_round_is_expected_to_read_decide():
    """Targets found on three different pages last time cost three pages: three status reads
    are not dearer, so they go by status; a fourth target on one of those pages tips it."""
    memory = ListMemory({RANGE: RangeMemory(end=9, found={"1": 2, "2": 5, "3": 8, "4": 8})})
    three = [pending(n) for n in (1, 2, 3)]
    assert expected_pages(memory, [RANGE], {"1", "2", "3"}, complete=False) == 3
    assert listplan.plan_round(three, NOW, memory=memory).method == "status"
    assert listplan.plan_round(three + [pending(4)], NOW, memory=memory).method == "list"
    assert expected_pages(memory, [RANGE], {"1", "9"}, complete=False) == 2  # never seen: one more page
    assert expected_pages(memory, [RANGE], set(), complete=True) == 10  # every page


def test_when_the_app_budget_cannot_send_the_checks_go_by_status_reads():
    targets = [pending(n) for n in range(5)]
    busy = listplan.plan_round(targets, NOW, app_free_at=NOW + timedelta(seconds=20))
    assert busy.method == "status" and len(busy.status) == 5
    assert listplan.plan_round(targets, NOW, app_free_at=NOW + timedelta(seconds=0.5)).method == "list"


def test_a_writeback_the_last_list_did_not_hold_is_not_waited_for_but_read_by_status_beside_the_round():
    """Reading every page for one writeback Sikka does not list (yet) would cost the whole list
    each round: the round stops for the others, and that one gets a status read."""
    lost = ListTarget(office_id="A", writeback_id="w9", kind="pending", anchor=NOW - timedelta(seconds=4),
                      next_check_at=NOW, sikka_writeback_id="9", missing=True)
    plan = listplan.plan_round([pending(n) for n in range(4)] + [lost], NOW)
    assert plan.method == "list" and "9" not in plan.wanted and "w9" not in plan.served
    assert [t.writeback_id for t in plan.status] == ["w9"]
    alone = listplan.plan_round([lost], NOW)
    assert alone.method == "status" and [t.writeback_id for t in alone.status] == ["w9"]


def test_an_unknown_writeback_waits_for_the_list_whatever_it_costs_the_pending_ones_do_not():
    unknown = ListTarget(office_id="B", writeback_id="u1", kind="unknown", anchor=NOW, next_check_at=NOW)
    plan = listplan.plan_round([unknown, pending(1)], NOW, app_free_at=NOW + timedelta(seconds=20))
    assert plan.method == "list" and plan.complete
    assert [t.writeback_id for t in plan.status] == ["w1"]  # checked meanwhile on its practice's budget
    assert listplan.plan_round([unknown, pending(1)], NOW).status == ()  # the list serves both


def test_a_target_handed_over_for_a_status_read_is_not_planned_again_until_checked_or_after_the_grace():
    t = pending(1)
    planned = {"w1": NOW}
    left, still = listplan.unplanned([t], planned, NOW + timedelta(seconds=1))
    assert left == [] and still == planned
    checked = pending(1, due=NOW + timedelta(seconds=2))  # the read happened: its next check moved on
    assert listplan.unplanned([checked], planned, NOW + timedelta(seconds=1)) == ([checked], {})
    assert listplan.unplanned([t], planned, NOW + timedelta(seconds=listplan.STATUS_PLAN_GRACE_S)) == ([t], {})


def test_fan_out_groups_items_per_practice():
    now = at(100)
    targets = [
        ListTarget(
            office_id="A", writeback_id="p1", kind="pending", anchor=at(0), next_check_at=now, sikka_writeback_id="1"
        ),
        ListTarget(office_id="B", writeback_id="u1", kind="unknown", anchor=at(0), next_check_at=now),
    ]
    items = [list_item(sikka_id, office=office) for sikka_id, office in (("1", "A"), ("2", "A"), ("3", "B"), ("4", "Z"))]
    ranges = listplan.plan_round(targets, now).ranges
    out = listplan.fan_out(targets, items, ranges, now)
    assert sorted(out) == ["A", "B"]
    assert [i.id for i in out["A"].items] == ["1"]  # pending only: just its own item
    assert [i.id for i in out["B"].items] == ["3"]  # unknown: every item of the office
    assert out["B"].fetched_at == now and out["B"].ranges == ranges
    failed = listplan.fan_out(targets, items, ranges, now, complete=False, failed=True)
    assert all(o.failed and not o.items for o in failed.values())


# --- reading a round page by page ------------------------------------------------------------


def raw(n: int, office: str = "A") -> msgspec.Raw:
    """An item as Sikka sends it (``RoundReader`` decodes what it needs)."""
    item = WritebackItem(id=str(n), office_id=office, method="POST", api_name="appointment", result="pending")
    return msgspec.Raw(msgspec.json.encode(item))


class Pager:
    """Sikka's list of ``ids`` in pages of ``limit`` (``total`` as announced); records the pages asked."""

    def __init__(self, ids: list[int], limit: int, total: int | None = None):
        self.ids, self.limit, self.total, self.asked = ids, limit, total, []

    def read(self, reader: RoundReader, fail_at: int | None = None) -> RoundReader:
        while (request := reader.next_request()) is not None:
            r, page = request
            self.asked.append(page)
            chunk = self.ids[page * self.limit:(page + 1) * self.limit]
            total = len(self.ids) if self.total is None else self.total
            reader.take(r, page, None if page == fail_at else WritebackPage([raw(n) for n in chunk], total))
        return reader


def reader(memory=ListMemory(), *, wanted=(), complete=False, offices=(), limit=10) -> RoundReader:
    wanted = frozenset(str(n) for n in wanted)
    return RoundReader((RANGE,), memory, wanted=wanted, known=wanted, offices=frozenset(offices),
                       complete=complete, limit=limit)


def test_a_round_stops_once_every_wanted_writeback_is_found_and_remembers_where():
    pager = Pager(list(range(95)), limit=10)  # oldest first, as the simulator pages it
    first = pager.read(reader(wanted=[90, 93]))
    assert pager.asked == [0, 9]  # page 0 tells total_count; the last page holds the newest
    assert [i.id for i in first.items] == ["90", "93"] and not first.complete and not first.failed
    memory = first.memory()
    assert memory.ranges[RANGE] == RangeMemory(end=9, found={"90": 9, "93": 9})
    pager.ids += list(range(95, 104))  # nine more: the list grows at its end
    pager.asked = []
    second = pager.read(reader(memory, wanted=[93, 102]))
    assert pager.asked == [9, 10]  # the hint, then onwards from it to the new last page
    assert {i.id for i in second.items} == {"93", "102"}
    assert second.memory().ranges[RANGE].found == {"93": 9, "102": 10}  # 90 is no longer asked for


def test_a_newest_first_list_is_learned_and_page_0_read_right_after_the_hints():
    ids = list(range(120, 0, -1))  # newest first
    pager = Pager(ids, limit=10)
    first = pager.read(reader(wanted=[118]))
    assert pager.asked == [0] and first.memory().ranges[RANGE].newest_first
    pager.ids = list(range(125, 0, -1))
    pager.asked = []
    memory = ListMemory({RANGE: RangeMemory(end=11, found={"110": 1}, newest_first=True)})
    pager.read(reader(memory, wanted=[110, 124]))
    assert pager.asked == [1, 0]


def test_a_writeback_not_in_the_list_costs_the_whole_list_and_proves_nothing_else():
    pager = Pager(list(range(35)), limit=10)
    r = pager.read(reader(wanted=[99]))
    assert sorted(pager.asked) == [0, 1, 2, 3] and r.complete and r.items == []


def test_a_complete_round_reads_every_page_up_to_the_short_one_whatever_total_count_says():
    pager = Pager(list(range(25)), limit=10, total=10)  # total_count understates, as in the Postman example
    r = pager.read(reader(wanted=[1], complete=True, offices=["A"]))
    assert sorted(pager.asked) == [0, 1, 2] and r.complete
    assert len(r.items) == 25  # every item of an office being reconciled
    example = Pager([7], limit=50, total=10)  # the Postman example: total 10, one item, limit 50
    assert example.read(reader(wanted=[7], complete=True)).complete and example.asked == [0]


def test_a_failed_page_fails_the_round():
    pager = Pager(list(range(35)), limit=10)
    r = pager.read(reader(wanted=[31], complete=True), fail_at=3)
    assert r.failed and not r.complete and r.pages == 2


def test_memory_forgets_ranges_no_target_can_need():
    old = (date(2026, 2, 20), date(2026, 2, 22))
    memory = ListMemory({old: RangeMemory(end=1), RANGE: RangeMemory(end=2)})
    assert memory.pruned(date(2026, 3, 3)) is memory  # 9 days: a late watch's span may still reach it
    assert memory.pruned(date(2026, 3, 4)) == ListMemory({RANGE: RangeMemory(end=2)})


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_every_page_is_asked_at_most_once(limit):
    pager = Pager(list(range(23)), limit=limit)
    pager.read(reader(wanted=[5, 22, 99], limit=limit))
    assert len(pager.asked) == len(set(pager.asked)) == -(-23 // limit) + (23 % limit == 0)
