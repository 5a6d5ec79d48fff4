"""Reading one list round page by page, and stopping as soon as it has what it came for.

``GET /writebacks`` pages the application's whole list for a range of dates (``offset`` is a
page index, 5,000 items a page). Its ordering is not documented (the Postman example shows one
item of a ``total_count`` of 10; the simulator lists by Sikka id, oldest first), and
``total_count`` can disagree with the items, so the reader relies on neither for correctness:

- a round that needs the ``complete`` list (reconciliation, proof of absence) reads every page
  up to the first short one (fewer items than asked: the last page);
- any other round stops once every ``wanted`` Sikka id (the due pending writebacks) was seen, in
  whatever order they come, and reads everything only when one is not there.

Only the cost depends on the order pages are read in: first the pages where the last rounds
found the targets (``ListMemory``: Sikka id → page; in a list that only grows at one end a
writeback keeps its page or moves a page further), then onwards from the last of them (new
writebacks land at the end of an oldest-first list), then page 0 (the newest, in a newest-first
list), then back from the last page ``total_count`` suggests, then whatever is left. So a round
costs the pages its targets are on, not the day's volume: one or two pages at steady state.

Each page is one call on the app-level budget, paid by the shell before it asks for the page
(``actors.runtime.calls.read_list_round``). Pure.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import date

import msgspec

from actors.core.outcomes import WritebackListItem
from actors.core.sikka_parse import WritebackPage, writeback_item, writeback_key

PAGE_SIZE = 5000  # Sikka's licence maximum per page
MAX_PAGES = 1000  # a list that never ends a page short is not read past 5 million items
MAX_WATCH_DAYS = 9  # the oldest range a target can need: a 7-day late watch's attempt date ±1 day, +1

Range = tuple[date, date]


class RangeMemory(msgspec.Struct, frozen=True):
    """What the last read of one range saw: its last page (``None``: not reached), the page each
    target's Sikka id was on, and whether new targets turned up on page 0 of a longer list (a
    newest-first list: page 0 is then read right after the hints)."""

    end: int | None = None
    found: dict[str, int] = {}
    newest_first: bool = False


class ListMemory(msgspec.Struct, frozen=True):
    """What the app-level task remembers between rounds (only about targets still open)."""

    ranges: dict[Range, RangeMemory] = {}

    def pruned(self, today: date) -> ListMemory:
        """Without ranges that ended over ``LIST_MAX_DAYS`` + 1 days before ``today`` (no target's
        ±1 day span reaches back that far: ``MAX_WATCH_DAYS`` covers a week-long late watch)."""
        keep = {r: m for r, m in self.ranges.items() if (today - r[1]).days <= MAX_WATCH_DAYS}
        return self if len(keep) == len(self.ranges) else ListMemory(keep)


def expected_pages(memory: ListMemory, ranges: Iterable[Range], wanted: Iterable[str], *, complete: bool) -> int:
    """The pages a round is expected to read: every page when ``complete``; else the pages where
    the wanted ids were found last time, plus one for ids never found (at least one a range)."""
    wanted = set(wanted)
    total = 0
    for r in ranges:
        m = memory.ranges.get(r, RangeMemory())
        if complete:
            total += (m.end + 1) if m.end is not None else 1
            continue
        hinted = {m.found[sid] for sid in wanted if sid in m.found}
        total += max(1, len(hinted) + (1 if wanted - set(m.found) else 0))
    return total


class RoundReader:
    """One round's reading: ``next_request`` names the next (range, page) to read or ``None``
    (done), ``take`` gives it the page (``None``: the call failed; the round is then failed).
    Afterwards: ``items`` (decoded: the ``known`` ids and every item of ``offices``),
    ``complete``, ``failed``, ``pages`` and the ``memory`` for the next round."""

    def __init__(
        self,
        ranges: tuple[Range, ...],
        memory: ListMemory,
        *,
        wanted: frozenset[str],
        known: frozenset[str],
        offices: frozenset[str] = frozenset(),
        complete: bool = False,
        limit: int = PAGE_SIZE,
    ):
        self.ranges, self.limit, self.known, self.offices = ranges, limit, known | wanted, offices
        self.need_complete = complete
        self.missing = set(wanted)
        self.failed = False
        self.pages = 0
        self._memory = memory
        self._items: list[WritebackListItem] = []
        self._read: dict[Range, set[int]] = {r: set() for r in ranges}
        self._end: dict[Range, int | None] = {r: None for r in ranges}
        self._total: dict[Range, int | None] = {r: None for r in ranges}
        self._found: dict[Range, dict[str, int]] = {r: {} for r in ranges}
        self._newest_first: dict[Range, bool | None] = {r: None for r in ranges}
        self._orders = {r: self._order(r) for r in ranges}

    def next_request(self) -> tuple[Range, int] | None:
        if self.failed or (not self.need_complete and not self.missing):
            return None
        for r in self.ranges:
            page = next(self._orders[r], None)
            if page is not None:
                return r, page
        return None

    def take(self, r: Range, page: int, result: WritebackPage | None) -> None:
        self.pages += 1
        if result is None:
            self.failed = True
            return
        self._read[r].add(page)
        if result.total is not None:
            self._total[r] = result.total
        if len(result.items) < self.limit:
            end = self._end[r]
            self._end[r] = page if end is None else min(end, page)
        hinted = self._memory.ranges.get(r, RangeMemory()).found
        for raw in result.items:
            key = writeback_key(raw)
            if key.id in self.known:
                self._found[r][key.id] = page
                self.missing.discard(key.id)
                if key.id not in hinted and (page > 0 or len(result.items) == self.limit):
                    self._newest_first[r] = page == 0  # where a new target turned up in a longer list
            if key.id in self.known or (key.office_id or "") in self.offices:
                self._items.append(writeback_item(raw))

    @property
    def complete(self) -> bool:
        """Every page of every range was read (up to its short last page)."""
        return not self.failed and all(
            self._end[r] is not None and self._read[r] >= set(range(self._end[r] + 1)) for r in self.ranges
        )

    @property
    def items(self) -> list[WritebackListItem]:
        return self._items

    def memory(self) -> ListMemory:
        """The memory for the next round: where this round's targets were (earlier hints kept for
        targets not seen), each range's last page; ranges and ids no longer asked for dropped."""
        out = {}
        for r in self.ranges:
            before = self._memory.ranges.get(r, RangeMemory())
            found = {sid: p for sid, p in before.found.items() if sid in self.known}
            found.update(self._found[r])
            newest_first = before.newest_first if self._newest_first[r] is None else self._newest_first[r]
            end = self._end[r] if self._end[r] is not None else before.end
            out[r] = RangeMemory(end=end, found=found, newest_first=newest_first)
        return ListMemory(out)

    # --- the order pages are read in ------------------------------------------------------------

    def _order(self, r: Range) -> Iterator[int]:
        """Each page at most once, none past the range's last page (see the module docstring)."""
        seen: set[int] = set()
        for page in self._candidates(r):
            end = self._end[r]
            if page in seen or page >= MAX_PAGES or (end is not None and page > end):
                continue
            seen.add(page)
            yield page

    def _candidates(self, r: Range) -> Iterator[int]:
        m = self._memory.ranges.get(r, RangeMemory())
        hints = sorted({p for sid, p in m.found.items() if sid in self.known})
        yield from hints
        if m.newest_first:
            yield 0
        if hints:
            yield from self._until_end(r, itertools.count(hints[-1] + 1))
        yield 0
        last = self._last_guess(r, m)
        if last is not None:
            yield from range(last, 0, -1)
        yield from self._until_end(r, itertools.count(1))

    def _until_end(self, r: Range, pages: Iterator[int]) -> Iterator[int]:
        for page in pages:
            end = self._end[r]
            if page >= MAX_PAGES or (end is not None and page > end):
                return
            yield page

    def _last_guess(self, r: Range, m: RangeMemory) -> int | None:
        if self._end[r] is not None:
            return self._end[r]
        total = self._total[r]
        guesses = [g for g in (m.end, (total - 1) // self.limit if total else None) if g is not None]
        return min(max(guesses), MAX_PAGES - 1) if guesses else None
