"""``store.groupcommit.GroupCommit`` on its own: gathering, one outcome per caller, the lead passed
on, cancellation before and after a batch is taken, a whole group's failure. The commit is a fake
that holds each group "in flight" until the test lets it finish."""

from __future__ import annotations

from contextlib import asynccontextmanager

import outcome
import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from store.db import DatabaseUnavailable
from store.groupcommit import GroupCommit


class HeldCommits:
    """Commits that stay in flight until ``finish()``; an item that is an exception fails alone,
    ``fail_next`` fails a whole group."""

    def __init__(self):
        self.groups: list[list] = []
        self.fail_next: Exception | None = None
        self._finish = trio.Event()

    async def commit(self, items: list) -> list[outcome.Outcome]:
        self.groups.append(list(items))
        await self._finish.wait()
        self._finish = trio.Event()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return [outcome.Error(i) if isinstance(i, Exception) else outcome.Value(f"{i} done") for i in items]

    async def finish(self) -> None:
        self._finish.set()
        await wait_all_tasks_blocked()


class Callers:
    """Tasks submitting items, each in a cancel scope of its own; what each got or raised."""

    def __init__(self, group: GroupCommit, nursery: trio.Nursery):
        self.group = group
        self.nursery = nursery
        self.scopes: dict[str, trio.CancelScope] = {}
        self.results: dict[str, object] = {}
        self.after_checkpoint: list[str] = []
        self.then: dict[str, callable] = {}

    async def start(self, *items) -> None:
        """Each item submitted once the previous one waits (so the queue keeps this order)."""
        for item in items:
            self.nursery.start_soon(self._submit, item)
            await wait_all_tasks_blocked()

    async def _submit(self, item) -> None:
        name = str(item)
        with trio.CancelScope() as scope:
            self.scopes[name] = scope
            try:
                self.results[name] = await self.group.submit(item)
            except Exception as exc:
                self.results[name] = exc
            if name in self.then:
                self.then[name]()
            await trio.sleep(0)
            self.after_checkpoint.append(name)
        if scope.cancelled_caught:
            self.results.setdefault(name, "cancelled")


@asynccontextmanager
async def held_group(most: int = 1000, key=id):
    """(the held commits, the group commit, its callers) in a nursery of their own."""
    commits = HeldCommits()
    group = GroupCommit(commits.commit, most=most, key=key)
    async with trio.open_nursery() as nursery:
        yield commits, group, Callers(group, nursery)


async def test_appends_issued_while_a_commit_is_in_flight_go_together_in_the_next():
    async with held_group() as (commits, group, callers):
        await callers.start("a")
        await callers.start("b", "c", "d")
        assert commits.groups == [["a"]] and group.queued == 3
        await commits.finish()
        assert commits.groups == [["a"], ["b", "c", "d"]] and group.queued == 0
        await callers.start("e")
        await commits.finish()
        await commits.finish()
    assert commits.groups == [["a"], ["b", "c", "d"], ["e"]]
    assert callers.results == {x: f"{x} done" for x in "abcde"}
    assert (group.groups, group.committed) == (3, 5)


async def test_the_submissions_of_one_tick_form_one_group():
    commits = HeldCommits()
    group = GroupCommit(commits.commit)
    async with trio.open_nursery() as nursery:
        for item in "abc":
            nursery.start_soon(group.submit, item)
        await wait_all_tasks_blocked()
        await commits.finish()
    assert sorted(commits.groups[0]) == ["a", "b", "c"] and len(commits.groups) == 1


async def test_a_group_takes_at_most_its_limit_the_rest_goes_next():
    async with held_group(most=2) as (commits, group, callers):
        await callers.start("a", "b", "c", "d", "e")
        for _ in range(3):
            await commits.finish()
    assert commits.groups == [["a"], ["b", "c"], ["d", "e"]]


async def test_a_group_holds_one_item_per_key_a_second_waits_for_the_next_in_order():
    def stream(item: str) -> str:
        return item.split(":")[0]

    async with held_group(key=stream) as (commits, group, callers):
        await callers.start("x:1")
        await callers.start("s:1", "t:1", "s:2", "u:1", "s:3", "t:2")
        for _ in range(4):
            await commits.finish()
    assert commits.groups == [["x:1"], ["s:1", "t:1", "u:1"], ["s:2", "t:2"], ["s:3"]]
    assert callers.results == {x: f"{x} done" for x in ("x:1", "s:1", "t:1", "s:2", "u:1", "s:3", "t:2")}


async def test_each_caller_gets_its_own_outcome():
    commits = HeldCommits()
    group = GroupCommit(commits.commit)
    stale = ValueError("stale")
    async with trio.open_nursery() as nursery:
        callers = Callers(group, nursery)
        await callers.start("a")
        await callers.start("b", stale, "d")
        await commits.finish()
        await commits.finish()
    assert callers.results == {"a": "a done", "b": "b done", "stale": stale, "d": "d done"}


async def test_a_caller_cancelled_before_its_batch_is_taken_leaves_the_queue_and_writes_nothing():
    async with held_group() as (commits, group, callers):
        await callers.start("a")
        await callers.start("b", "c")
        callers.scopes["b"].cancel()
        await wait_all_tasks_blocked()
        assert callers.results["b"] == "cancelled" and group.queued == 1
        await commits.finish()
        await commits.finish()
    assert commits.groups == [["a"], ["c"]]
    assert callers.results == {"a": "a done", "b": "cancelled", "c": "c done"}


async def test_a_caller_cancelled_once_its_batch_is_taken_learns_the_outcome_then_is_cancelled():
    async with held_group() as (commits, group, callers):
        await callers.start("a")
        await callers.start("b", "c")
        await commits.finish()  # b leads the group [b, c], now in flight
        callers.scopes["c"].cancel()  # a taken waiter
        callers.scopes["b"].cancel()  # the leader
        await wait_all_tasks_blocked()
        assert "b" not in callers.results and "c" not in callers.results  # both still wait for the commit
        await commits.finish()
    assert commits.groups == [["a"], ["b", "c"]]
    assert callers.results["b"] == "b done" and callers.results["c"] == "c done"  # what was written
    assert callers.after_checkpoint == ["a"]  # the cancellation arrived at their next checkpoint


async def test_a_leader_cancelled_before_taking_the_queue_passes_the_lead_on():
    async with held_group() as (commits, group, callers):
        await callers.start("a")
        await callers.start("b", "c")
        # b is told to lead as a returns; cancelled before it runs, it must hand the lead to c
        callers.then["a"] = callers.scopes["b"].cancel
        await commits.finish()
        assert commits.groups == [["a"], ["c"]]
        await commits.finish()
        await callers.start("d")  # nobody leads now: the next caller does
        await commits.finish()
    assert commits.groups == [["a"], ["c"], ["d"]]
    assert callers.results == {"a": "a done", "b": "cancelled", "c": "c done", "d": "d done"}


async def test_a_failed_group_fails_each_caller_with_its_own_copy_of_the_error():
    async with held_group() as (commits, group, callers):
        await callers.start("a")
        await callers.start("b", "c", "d")
        await commits.finish()
        commits.fail_next = DatabaseUnavailable("database unavailable: server closed the connection")
        await commits.finish()
        await callers.start("e")
        await commits.finish()
    errors = [callers.results[x] for x in "bcd"]
    assert all(isinstance(e, DatabaseUnavailable) and "server closed" in str(e) for e in errors)
    assert len({id(e) for e in errors}) == 3
    assert callers.results["a"] == "a done" and callers.results["e"] == "e done"


@pytest.mark.parametrize("size", [1, 5])
async def test_a_group_with_the_wrong_number_of_outcomes_fails_every_caller(size):
    async def short(items):
        return [outcome.Value(None)] * (len(items) - 1)

    group = GroupCommit(short)
    results = []

    async def submit(n):
        try:
            await group.submit(n)
        except RuntimeError as exc:
            results.append(str(exc))

    async with trio.open_nursery() as nursery:
        for n in range(size):
            nursery.start_soon(submit, n)
    assert results == [f"a group of {size} got {size - 1} outcomes"] * size


class ParallelCommits:
    """Commits that each stay in flight until the test finishes that one (``finish(i)``, by the
    order they started); ``most_at_once`` is the most that were in flight together."""

    def __init__(self):
        self.groups: list[list] = []
        self._done: list[trio.Event] = []
        self._in_flight = 0
        self.most_at_once = 0

    async def commit(self, items: list) -> list[outcome.Outcome]:
        self.groups.append(list(items))
        done = trio.Event()
        self._done.append(done)
        self._in_flight += 1
        self.most_at_once = max(self.most_at_once, self._in_flight)
        await done.wait()
        self._in_flight -= 1
        return [outcome.Value(f"{i} done") for i in items]

    async def finish(self, index: int) -> None:
        self._done[index].set()
        await wait_all_tasks_blocked()


@asynccontextmanager
async def two_deep(key=id):
    commits = ParallelCommits()
    group = GroupCommit(commits.commit, key=key, depth=2)
    async with trio.open_nursery() as nursery:
        yield commits, group, Callers(group, nursery)


def stream(item: str) -> str:
    return item.split(":")[0]


async def test_with_depth_two_a_second_group_commits_while_the_first_is_in_flight_never_a_third():
    async with two_deep() as (commits, group, callers):
        await callers.start("a")
        await callers.start("b")
        assert commits.groups == [["a"], ["b"]]  # two in flight
        await callers.start("c", "d")
        assert group.queued == 2  # no third
        await commits.finish(1)  # b's commit ends first: c and d go together, a still in flight
        assert commits.groups == [["a"], ["b"], ["c", "d"]]
        await commits.finish(0)
        await commits.finish(2)
    assert commits.most_at_once == 2
    assert callers.results == {x: f"{x} done" for x in "abcd"}


async def test_with_two_slots_free_the_appends_of_one_tick_split_into_two_groups():
    commits = ParallelCommits()
    group = GroupCommit(commits.commit, depth=2)
    async with trio.open_nursery() as nursery:
        for item in "abcdef":
            nursery.start_soon(group.submit, item)
        await wait_all_tasks_blocked()
        assert sorted(len(g) for g in commits.groups) == [3, 3]
        assert sorted(x for g in commits.groups for x in g) == list("abcdef")
        await commits.finish(0)
        await commits.finish(1)


async def test_with_depth_two_a_stream_in_flight_waits_for_its_commit_and_keeps_its_order():
    async with two_deep(key=stream) as (commits, group, callers):
        await callers.start("s:1")
        await callers.start("s:2", "s:3", "t:1")  # s is in flight: t leads the second commit alone
        assert commits.groups == [["s:1"], ["t:1"]] and group.queued == 2
        await commits.finish(1)  # a slot is free, but s still is in flight: nothing starts
        assert len(commits.groups) == 2
        await commits.finish(0)  # s:2 leads, s:3 waits for it
        assert commits.groups[2:] == [["s:2"]]
        await commits.finish(2)
        assert commits.groups[3:] == [["s:3"]]
        await commits.finish(3)
    assert callers.results == {x: f"{x} done" for x in ("s:1", "s:2", "s:3", "t:1")}
