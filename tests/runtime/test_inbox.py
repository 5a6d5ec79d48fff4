"""The actor's ``Inbox`` behaves as the trio memory channel it replaces: FIFO, bounded (``send``
waits, ``send_nowait`` refuses), cancellable without losing or adding a message, closed by the
receiver (senders broken, receives closed); and it costs an idle actor little memory."""

from __future__ import annotations

import tracemalloc

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from actors.runtime.inbox import Inbox


async def test_messages_come_out_in_order_and_a_receive_waits_for_the_next():
    inbox = Inbox(4)
    inbox.send_nowait("a")
    await inbox.send("b")
    assert [await inbox.receive(), inbox.receive_nowait()] == ["a", "b"]
    got = []

    async def receive_one():
        got.append(await inbox.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive_one)
        await wait_all_tasks_blocked()
        assert got == []
        inbox.send_nowait("c")
    assert got == ["c"]


async def test_a_full_inbox_refuses_send_nowait_and_makes_send_wait():
    inbox = Inbox(2)
    inbox.send_nowait(1)
    inbox.send_nowait(2)
    with pytest.raises(trio.WouldBlock):
        inbox.send_nowait(3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbox.send, 3)
        await wait_all_tasks_blocked()
        assert len(inbox) == 2
        assert inbox.receive_nowait() == 1
    assert [inbox.receive_nowait(), inbox.receive_nowait()] == [2, 3]
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()


async def test_cancelled_waits_neither_take_nor_add_a_message():
    inbox = Inbox(1)
    with trio.move_on_after(0.01):
        await inbox.receive()
    inbox.send_nowait("kept")
    with trio.move_on_after(0.01):
        await inbox.send("never")
    assert len(inbox) == 1 and await inbox.receive() == "kept" and len(inbox) == 0


async def test_closing_breaks_the_senders_and_closes_the_receives():
    inbox = Inbox(1)
    inbox.send_nowait("x")
    broken = []

    async def send_late():
        try:
            await inbox.send("y")
        except trio.BrokenResourceError:
            broken.append("waiting sender")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_late)
        await wait_all_tasks_blocked()
        inbox.close()
    assert broken == ["waiting sender"] and len(inbox) == 0
    with pytest.raises(trio.BrokenResourceError):
        inbox.send_nowait("z")
    with pytest.raises(trio.BrokenResourceError):
        await inbox.send("z")
    with pytest.raises(trio.ClosedResourceError):
        await inbox.receive()


async def test_an_idle_receive_holds_a_fraction_of_a_memory_channel():
    async def held(make_and_wait) -> int:
        async with trio.open_nursery() as nursery:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(100):
                nursery.start_soon(make_and_wait)
            await wait_all_tasks_blocked()
            size = (tracemalloc.get_traced_memory()[0] - before) / 100
            tracemalloc.stop()
            nursery.cancel_scope.cancel()
        return size

    async def inbox_wait():
        await Inbox(256).receive()

    async def channel_wait():
        send, receive = trio.open_memory_channel(256)
        await receive.receive()

    assert await held(inbox_wait) < 0.5 * await held(channel_wait)
