"""``Inbox``: a practice actor's mailbox, a bounded FIFO that one task receives from.

It does for the actor what a trio memory channel pair does (``send`` waits while it is full,
``send_nowait`` raises ``trio.WouldBlock``, ``close`` by the receiver makes senders raise
``trio.BrokenResourceError`` and receives ``trio.ClosedResourceError``; every call is a trio
checkpoint), in a fraction of the memory: an idle actor waits on its inbox, and 20,000 practices
each held a channel's state, its two ends and their task sets (about 1.6 KiB) where this holds a
few slots and makes its queue and its waiting senders' lot only when they are needed.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class Inbox(Generic[T]):
    __slots__ = ("capacity", "_items", "_receiver", "_senders", "_closed")

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: deque[T] | None = None  # made at the first message
        self._receiver: trio.lowlevel.Task | None = None
        self._senders: trio.lowlevel.ParkingLot | None = None  # made when a sender finds it full
        self._closed = False

    def __len__(self) -> int:
        return len(self._items) if self._items else 0

    async def send(self, item: T) -> None:
        """Put ``item`` in, waiting while the inbox is full."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._closed and len(self) >= self.capacity:
            if self._senders is None:
                self._senders = trio.lowlevel.ParkingLot()
            await self._senders.park()
        self._put(item)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, item: T) -> None:
        if not self._closed and len(self) >= self.capacity:
            raise trio.WouldBlock
        self._put(item)

    def _put(self, item: T) -> None:
        if self._closed:
            raise trio.BrokenResourceError("the actor closed its inbox")
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        if self._receiver is not None:
            trio.lowlevel.reschedule(self._receiver)
            self._receiver = None

    async def receive(self) -> T:
        """The oldest message, waiting for one (a cancelled wait takes nothing)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if not self._items and not self._closed:
            self._receiver = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort_receive)
        item = self.receive_nowait()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return item

    def _abort_receive(self, _raise_cancel) -> trio.lowlevel.Abort:
        self._receiver = None
        return trio.lowlevel.Abort.SUCCEEDED

    def receive_nowait(self) -> T:
        if self._closed:
            raise trio.ClosedResourceError("the inbox is closed")
        if not self._items:
            raise trio.WouldBlock
        item = self._items.popleft()
        if self._senders is not None:
            self._senders.unpark()
        return item

    def close(self) -> None:
        """The receiver is done: waiting and later senders get ``trio.BrokenResourceError``."""
        self._closed = True
        self._items = None
        if self._senders is not None:
            self._senders.unpark_all()
        if self._receiver is not None:
            trio.lowlevel.reschedule(self._receiver)
            self._receiver = None
