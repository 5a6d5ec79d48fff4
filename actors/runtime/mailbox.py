"""A practice actor's mailbox: what is delivered to it, and how an asker waits for the answer.

An ``Envelope`` carries a message, where the decision goes once it is committed (``reply``) and
the plaintext payloads a submission brings (sealed only if the core accepts it). ``tell`` drops
a message in without waiting (``Wake``: something changed outside the actor); ``ask`` waits for
the committed decision::

    ask ──► inbox ──► actor takes it (``taken``) ──► decides, commits ──► answer_to(envelope)
     │                                                 └─ database away: the fault is the answer
     └─ no answer after ``check_every`` and ``give_up()`` names a reason: DatabaseUnavailable;
        an envelope the actor had not taken yet is ``withdrawn`` (the actor skips it: nothing is
        recorded), one it had taken may still be recorded (the client retries with its key)

A stopped or crashed actor closes the reply channels: the askers get ``Unavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import trio

from actors.runtime.inbox import Inbox
from store.db import DatabaseUnavailable


class Unavailable(Exception):
    """A read or a command cannot be served now (``code`` is the admin API's error)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


class Envelope(msgspec.Struct):
    message: Any
    reply: trio.MemorySendChannel | None = None
    plaintexts: Mapping[str, bytes] | None = None
    taken: bool = False  # the actor began deciding it
    withdrawn: bool = False  # the asker gave up before that: the actor skips it


class Wake(msgspec.Struct, frozen=True):
    """Something changed outside the actor (e.g. events appended by another writer)."""


def tell(inbox: Inbox, message) -> None:
    """Deliver without waiting (dropped if the inbox is full: senders re-send)."""
    try:
        inbox.send_nowait(Envelope(message))
    except (trio.WouldBlock, trio.BrokenResourceError):
        pass


async def ask(
    inbox: Inbox,
    message,
    plaintexts: Mapping[str, bytes] | None = None,
    *,
    give_up: Callable[[], str | None] = lambda: None,
    check_every: float = float("inf"),
):
    """Deliver and wait for the committed decision (see the module docstring)."""
    reply_send, reply = trio.open_memory_channel(1)
    envelope = Envelope(message, reply_send, plaintexts)
    try:
        await inbox.send(envelope)
        async with reply:
            while True:
                with trio.move_on_after(check_every):
                    answer = await reply.receive()
                    break
                reason = give_up()
                if reason is not None:
                    raise DatabaseUnavailable(_given_up(reason, envelope))
    except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
        raise Unavailable("practice_unavailable", "the practice's actor stopped before answering") from None
    finally:
        envelope.withdrawn = not envelope.taken
    if isinstance(answer, DatabaseUnavailable):
        raise DatabaseUnavailable(str(answer))
    return answer


def answer_to(envelope: Envelope, answer) -> None:
    """The decision (or the database fault) for the asker, if it still waits."""
    try:
        envelope.reply.send_nowait(answer)
    except trio.BrokenResourceError:  # the asker gave up waiting
        pass


def _given_up(reason: str, envelope: Envelope) -> str:
    if envelope.taken:
        return f"{reason}; the command may still be recorded: retry it with the same idempotency key"
    return f"{reason}; the command was not recorded"
