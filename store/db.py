"""PostgreSQL under trio: sync psycopg and ``psycopg_pool`` in worker threads.

psycopg's async API runs only on asyncio, so every statement runs in a worker thread
(``trio.to_thread.run_sync``) bounded by a ``CapacityLimiter`` the size of the pool. A cancelled
caller waits for its thread (``abandon_on_cancel=False``): a commit is never left half-known.

``Database.run(fn, *args)`` calls ``fn(conn, *args)`` with a pooled autocommit connection;
``fn`` opens ``with conn.transaction():`` where it needs one. ``Database.listen(channel)``
runs LISTEN in a thread of its own and feeds a trio channel with the notification payloads.

A database that cannot be reached raises ``DatabaseUnavailable`` with one readable line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
import trio
from psycopg_pool import ConnectionPool, PoolTimeout

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot be reached (or stopped answering); ``str()`` is one line."""


def describe_connect_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_connection(conninfo: str, timeout: float = 5.0) -> None:
    """Connect once, so that a wrong URL or a dead server gives Postgres's own reason."""
    try:
        with psycopg.connect(conninfo, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, ValueError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {describe_connect_error(exc)}") from None


def _configure(conn: psycopg.Connection) -> None:
    conn.execute("SET idle_in_transaction_session_timeout = '60s'")
    conn.execute("SET lock_timeout = '30s'")


class Database:
    """A connection pool used from trio through worker threads."""

    def __init__(self, conninfo: str, *, max_size: int = 8):
        self.conninfo = conninfo
        self.max_size = max_size
        self._limiter = trio.CapacityLimiter(max_size)
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True},
            configure=_configure,
            timeout=30.0,
        )

    def open_sync(self, timeout: float = 10.0) -> None:
        check_connection(self.conninfo, timeout)
        self._pool.open(wait=True, timeout=timeout)

    def close_sync(self) -> None:
        self._pool.close()

    async def open(self) -> None:
        await trio.to_thread.run_sync(self.open_sync)

    async def close(self) -> None:
        await trio.to_thread.run_sync(self.close_sync)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on a pooled connection, in the calling thread."""
        try:
            with self._pool.connection() as conn:
                return fn(conn, *args)
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
                raise
            raise DatabaseUnavailable(f"database unavailable: {describe_connect_error(exc)}") from exc

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in a worker thread; the caller waits for it even when cancelled."""
        return await trio.to_thread.run_sync(self.call, fn, *args, limiter=self._limiter)

    @asynccontextmanager
    async def listen(self, channel: str):
        """Yield a trio receive channel of NOTIFY payloads on ``channel``.

        Wake-ups coalesce: when the buffer is full a payload is dropped, which is fine because
        readers re-query the table rather than trust payloads. The LISTEN thread exits within a
        second of leaving the block.
        """
        send, receive = trio.open_memory_channel[str](64)
        stop = threading.Event()
        ready = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def forward(payload: str) -> None:
            try:
                send.send_nowait(payload)
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass

        def loop() -> None:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
                trio.from_thread.run_sync(ready.set, trio_token=token)
                while not stop.is_set():
                    for note in conn.notifies(timeout=0.5, stop_after=64):
                        trio.from_thread.run_sync(forward, note.payload, trio_token=token)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_listener, loop, send)
            await ready.wait()
            try:
                yield receive
            finally:
                stop.set()
                nursery.cancel_scope.cancel()

    @staticmethod
    async def _run_listener(loop: Callable[[], None], send: trio.MemorySendChannel) -> None:
        async with send:
            await trio.to_thread.run_sync(loop, abandon_on_cancel=True)
