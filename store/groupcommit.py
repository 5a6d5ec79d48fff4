"""Group commit: the appends issued while a commit is in flight are gathered into the next one.

Both event stores append through a ``GroupCommit``; the store gives it ``commit(items)``, which
writes a whole group at once (``store.pglog``: one ``sikka_commit_group`` call, so one
transaction, one append lock, one flush and one NOTIFY; ``store.memory``: one step) and
returns one ``outcome.Outcome`` per item: the stream's new version, or the error that item
would have had alone (a stale stream's ``ConcurrencyError`` fails only its own caller). With one
commit at a time (``depth`` 1)::

    task A: submit ─► A leads: takes [A] ──► commit([A]) ··· in flight ···► A returns
    task B: submit ─► waits ─┐                                    │ the lead passes to B
    task C: submit ─► waits ─┴ (queued behind the commit in flight)▼
                                       B leads: takes [B, C] ──► commit([B, C]) ──► B returns,
                                                                 C is woken with its outcome
Leaders: the task that found a free commit slot, then, each time a commit ends or a group is
taken, the oldest waiter that may lead, so no caller waits for more than the commits in flight
and its own. Before taking the queue a leader lets every task that is runnable run (two
scheduler passes: trio runs each pass in random order), so the appends issued in the same tick,
and those of the callers the last commit just woke, join its group. Positions stay dense and in
commit order whatever the store does meanwhile: the store's commit assigns them under its lock.
Given a ``key`` (the event stores give the stream), a group holds at most one item per key, and
no key of a group in flight: a second append to a stream stays queued, in order, until the
commit holding its stream has ended, so each commit checks a stream's version against what is
stored. The same mechanism groups reads: ``actors.runtime.loads`` loads the actors that start
together with one "commit" of reads.

``depth`` commits may be in flight at once (``store.pglog``: 2). A second commit overlaps what
happens outside the store's lock (the callers' own work, sending and parsing the group) with the
first one's locked part: with two free slots a leader takes half of what waits and hands the
lead on at once, so the writers that arrive together form two groups that then alternate::

    commit #1 [A1..A32]  ──────────► A's writers append again ─► commit #3 [A1..A32] ──►
    commit #2      [B1..B32]  ──────────► B's writers append again ─► commit #4 …

Cancellation never loses or half-writes a batch. A caller cancelled while its batch waits in
the queue leaves it (``trio.Cancelled``, nothing written). Once a leader took it, the batch is
part of a commit that cannot be stopped (a worker thread, under a shield): the caller keeps
waiting, as ``Database.run`` waits for its thread, and learns the outcome (``submit`` returns
the version or raises the error; the cancellation arrives at its next checkpoint). A whole
group's failure (the database unreachable) fails each caller with a copy of the error.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Any, Generic, TypeVar

import outcome
import trio

Item = TypeVar("Item")

_LEAD = object()  # rescheduled with this, a waiter becomes the leader
MOST = 1000  # items per group: bounds a commit (and its hold of the append lock) when thousands append at once


class _Request(Generic[Item]):
    __slots__ = ("item", "task", "taken")

    def __init__(self, item: Item):
        self.item = item
        self.task = trio.lowlevel.current_task()
        self.taken = False


class GroupCommit(Generic[Item]):
    """Appends gathered into group commits of at most ``most`` items, one per ``key``, with at
    most ``depth`` commits in flight (see the module docstring; a test may lower it to see what
    happens inside one group); ``groups`` and ``committed`` count the commits and the items they
    took."""

    def __init__(
        self,
        commit: Callable[[list[Item]], Awaitable[list[outcome.Outcome]]],
        most: int = MOST,
        key: Callable[[Item], Hashable] = id,
        depth: int = 1,
    ):
        self._commit = commit
        self._most = most
        self._key = key
        self.depth = depth
        self._queue: list[_Request[Item]] = []  # not yet taken, oldest first
        self._leaders = 0  # tasks that commit, or have been told to
        self._committing = 0  # groups taken and not yet committed
        self._in_flight: set[Hashable] = set()  # the keys of the leaders and of their groups
        self.groups = 0
        self.committed = 0

    @property
    def queued(self) -> int:
        """Items waiting for the next commit."""
        return len(self._queue)

    async def submit(self, item: Item) -> Any:
        """Commit ``item`` in a group; its outcome's value (or its error)."""
        request = _Request(item)
        if self._may_lead(request):
            self._claim(request)
        else:
            self._queue.append(request)
            woken = await trio.lowlevel.wait_task_rescheduled(partial(self._abort, request))
            if woken is not _LEAD:
                return woken  # committed in another leader's group
        return await self._lead(request)

    def _abort(self, request: _Request[Item], _raise_cancel) -> trio.lowlevel.Abort:
        if request.taken:
            return trio.lowlevel.Abort.FAILED  # in a commit that cannot stop: its outcome will come
        self._queue.remove(request)
        return trio.lowlevel.Abort.SUCCEEDED

    async def _lead(self, request: _Request[Item]) -> Any:
        try:  # the tasks runnable now run before the leader takes the queue, and join the group
            await trio.lowlevel.checkpoint()
            await trio.lowlevel.cancel_shielded_checkpoint()  # (trio runs a batch in random order)
        except BaseException:  # cancelled before anything was taken: hand the lead on
            self._release([request])
            raise
        group = self._take(request)
        self.groups += 1
        self.committed += len(group)
        self._committing += 1
        self._pass_lead()  # with a slot free, the next group forms meanwhile
        with trio.CancelScope(shield=True):
            result = await outcome.acapture(self._commit, [taken.item for taken in group])
        self._committing -= 1
        self._release(group)
        if isinstance(result, outcome.Value) and len(result.value) != len(group):
            result = outcome.Error(RuntimeError(f"a group of {len(group)} got {len(result.value)} outcomes"))
        if isinstance(result, outcome.Value):
            outcomes = result.value
        else:
            outcomes = [result if taken is request else outcome.Error(_copied(result.error)) for taken in group]
        mine = result
        for taken, its in zip(group, outcomes):
            if taken is request:
                mine = its
            else:
                trio.lowlevel.reschedule(taken.task, its)
        return mine.unwrap()

    def _may_lead(self, request: _Request[Item]) -> bool:
        return self._leaders < self.depth and self._key(request.item) not in self._in_flight

    def _claim(self, request: _Request[Item]) -> None:
        self._leaders += 1
        self._in_flight.add(self._key(request.item))

    def _release(self, group: list[_Request[Item]]) -> None:
        """A leader is done (its group committed, or it was cancelled before taking one)."""
        self._leaders -= 1
        self._in_flight.difference_update(self._key(r.item) for r in group)
        self._pass_lead()

    def _take(self, lead: _Request[Item]) -> list[_Request[Item]]:
        """The next group: the leader's request and the oldest queued ones, at most ``most`` and
        this slot's share of what waits (with two slots free, half), one per key and none in
        flight; the rest stay queued."""
        lead.taken = True
        group = [lead]
        left: list[_Request[Item]] = []
        share = -(-(len(self._queue) + 1) // (self.depth - self._committing))  # (rounded up)
        most = min(self._most, share)
        for request in self._queue:
            key = self._key(request.item)
            if len(group) < most and key not in self._in_flight:  # (the leader's key is in it)
                self._in_flight.add(key)
                request.taken = True
                group.append(request)
            else:
                left.append(request)
        self._queue = left
        return group

    def _pass_lead(self) -> None:
        """The oldest waiters that may lead are told to, while a slot is free."""
        while self._leaders < self.depth:
            request = next((r for r in self._queue if self._may_lead(r)), None)
            if request is None:
                return
            self._queue.remove(request)
            self._claim(request)
            trio.lowlevel.reschedule(request.task, outcome.Value(_LEAD))


def _copied(error: BaseException) -> BaseException:
    """A caller's own copy of a group's error (one exception object raised in several tasks
    would collect all their tracebacks); the error itself when it cannot be copied."""
    try:
        clone = copy.copy(error)
    except Exception:
        return error
    clone.__cause__, clone.__context__ = error.__cause__, error.__context__
    clone.__suppress_context__ = error.__suppress_context__
    return clone.with_traceback(error.__traceback__)
