"""PostgreSQL under trio: sync psycopg and ``psycopg_pool`` in worker threads.

psycopg's async API runs only on asyncio, so every statement runs in a worker thread
(``trio.to_thread.run_sync``) bounded by a ``CapacityLimiter`` the size of the pool.

``Database.run(fn, *args)`` calls ``fn(conn, *args)`` with a pooled autocommit connection;
``fn`` opens ``with conn.transaction():`` where it needs one. ``Database.listen(channel)``
runs LISTEN in a thread of its own and feeds a trio channel with the notification payloads.

Database faults, one way for all of them: whatever says "the database is away" (a connection
refused, cut or terminated, an administrator or crash shutdown, ``idle_session_timeout``, a
server gone read-only after a failover, a pool with no connection to give) raises
``DatabaseUnavailable`` with one readable line; callers retry or answer 503, and nothing exits.

Bounded waits (``timeout``, ``SIKKA_DB_TIMEOUT`` in the supervisor): a call that has no answer
after ``timeout`` seconds (a frozen server, a black-holed connection) raises
``DatabaseUnavailable`` and its thread is abandoned: it ends when the server answers or the
connection breaks, and only then gives back its connection and its limiter slot. Within
``answer_within(seconds)`` (an admin request: ``actors.api.router``) the calls of the task
together wait no longer than that. A commit whose
answer did not come is therefore *unknown*, not failed: the commit path
(``actors.runtime.commit``) settles it by reading the stream. Without ``timeout`` (the one-shot
commands) a cancelled caller waits for its thread, as before.

Sessions reconnect by themselves: the pool replaces a connection that failed, and a connection
that sat idle for ``IDLE_CHECK_S`` (or any, for ``SUSPECT_S`` after a fault) is checked before a
call uses it (one empty round trip); a dead one goes back to the pool, which discards it and
connects anew, and the next is tried at once. So sessions the server ended while idle
(``idle_session_timeout``, ``pg_terminate_backend``, a restart) are replaced instead of failing
calls. The LISTEN session reconnects with backoff and jitter and, after every reconnection, yields
``RECONNECTED`` so its reader re-reads what it may have missed. Every session names itself
(``application_name`` ``sikka-supervisor/<node>/<kind>``: ``pool``, ``listen-<channel>``,
``node-lock``), so an operator (and the fault suite) can tell them apart in ``pg_stat_activity``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any, TypeVar

import psycopg
import structlog
import trio
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

T = TypeVar("T")

log = structlog.get_logger("database")

IDLE_CHECK_S = 2.0  # a pooled connection idle this long is checked before use
SUSPECT_S = 10.0  # after a fault, every connection is checked before use for this long
RECONNECT_MIN_S = 0.2  # the LISTEN session's reconnection backoff: from this, doubling …
RECONNECT_MAX_S = 5.0  # … up to this, jittered
LISTEN_KEEPALIVE_S = 10.0  # the LISTEN session sends a query this often (idle_session_timeout)
RECONNECTED = ""  # the payload a listener yields after it reconnected: re-read, something may be missed
APPLICATION = "sikka-supervisor"


_budget: ContextVar[list[float] | None] = ContextVar("database_budget", default=None)  # [seconds left]


class DatabaseUnavailable(Exception):
    """The database cannot be reached (or stopped answering); ``str()`` is one line."""


@contextmanager
def answer_within(seconds: float | None) -> Iterator[None]:
    """The database calls of this task in the block wait, altogether, at most ``seconds`` (time
    spent on anything else, a Sikka call, does not count); ``None``: each call on its own."""
    token = _budget.set(None if seconds is None else [seconds])
    try:
        yield
    finally:
        _budget.reset(token)


def time_left() -> float | None:
    """Seconds left of the current ``answer_within`` (``None`` outside one)."""
    budget = _budget.get()
    return None if budget is None else max(0.0, budget[0])


def describe_connect_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_unavailable(exc: BaseException) -> bool:
    """Does ``exc`` say the database is away (rather than that a statement is wrong)?"""
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return False  # our own statement or lock timeouts: the statement's fault
    return isinstance(
        exc,
        psycopg.OperationalError | psycopg.InterfaceError | PoolTimeout | PoolClosed
        | psycopg.errors.ReadOnlySqlTransaction,
    )


def session_name(node: str, kind: str) -> str:
    """The ``application_name`` of one of this process's sessions (PostgreSQL keeps 63 bytes)."""
    return f"{APPLICATION}/{node}/{kind}"[:63]


def connect_options(timeout: float | None) -> dict[str, Any]:
    """libpq options every session uses: a bounded connect, and TCP keepalives so that a
    connection to a vanished host breaks instead of hanging (ignored on Unix sockets)."""
    return {
        "connect_timeout": max(2, int(timeout or 10)),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


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


def backoff(attempt: int, jitter: float, low: float = RECONNECT_MIN_S, high: float = RECONNECT_MAX_S) -> float:
    """Seconds before retry ``attempt`` (0, 1, …): doubling from ``low`` up to ``high``, times
    ``0.5 + 0.5 × jitter`` (``jitter`` in [0, 1)) so that many sessions do not come back in step."""
    return min(high, low * 2 ** min(attempt, 30)) * (0.5 + 0.5 * jitter)


class Database:
    """A connection pool used from trio through worker threads (see the module docstring)."""

    def __init__(self, conninfo: str, *, max_size: int = 8, timeout: float | None = None, node: str = "local"):
        self.conninfo = conninfo
        self.max_size = max_size
        self.timeout = timeout
        self.node = node
        self._limiter = trio.CapacityLimiter(max_size)
        self._suspect_until = 0.0
        self._returned_at: dict[int, float] = {}  # id(connection) → when it went back to the pool
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True, "application_name": session_name(node, "pool"), **connect_options(timeout)},
            configure=_configure,
            timeout=timeout or 30.0,
            name=session_name(node, "pool"),
        )

    def open_sync(self, timeout: float = 10.0) -> None:
        check_connection(self.conninfo, timeout)
        self._pool.open(wait=True, timeout=timeout)

    def close_sync(self, timeout: float = 5.0) -> None:
        self._pool.close(timeout=timeout)

    async def open(self) -> None:
        await trio.to_thread.run_sync(self.open_sync)

    async def close(self) -> None:
        await trio.to_thread.run_sync(self.close_sync)

    def fault_seen(self) -> None:
        """A call failed as if the database were away: check every connection for a while."""
        self._suspect_until = time.monotonic() + SUSPECT_S

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection that answers (see the module docstring)."""
        for _ in range(self.max_size):
            conn = self._pool.getconn()
            if self._answers(conn):
                break
            self._pool.putconn(conn)  # dead: discarded, and the pool connects anew
        else:
            conn = self._pool.getconn()
        try:
            yield conn
        finally:
            if len(self._returned_at) > 4 * self.max_size:  # stamps of discarded connections
                self._returned_at.clear()
            self._returned_at[id(conn)] = time.monotonic()
            self._pool.putconn(conn)

    def _answers(self, conn: psycopg.Connection) -> bool:
        now = time.monotonic()
        idle_since = self._returned_at.pop(id(conn), None)
        if now >= self._suspect_until and idle_since is not None and now - idle_since <= IDLE_CHECK_S:
            return True
        try:
            conn.execute("")
        except psycopg.Error:
            return False
        return True

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on a pooled connection, in the calling thread."""
        try:
            with self._connection() as conn:
                return fn(conn, *args)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self.fault_seen()
            raise DatabaseUnavailable(f"database unavailable: {describe_connect_error(exc)}") from exc

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in a worker thread: its result, or ``DatabaseUnavailable`` after
        ``timeout`` seconds without an answer (the thread abandoned; see the module docstring)."""
        budget = _budget.get()
        if self.timeout is None and budget is None:
            return await trio.to_thread.run_sync(self.call, fn, *args, limiter=self._limiter)
        wait = min(t for t in (self.timeout, time_left()) if t is not None)
        began = trio.current_time()
        try:
            with trio.move_on_after(wait):
                return await trio.to_thread.run_sync(
                    self.call, fn, *args, limiter=self._limiter, abandon_on_cancel=True
                )
        finally:
            if budget is not None:
                budget[0] -= trio.current_time() - began
        if wait == self.timeout:
            self.fault_seen()
        raise DatabaseUnavailable(f"database unavailable: no answer within {wait:.3g} s")

    @asynccontextmanager
    async def listen(self, channel: str):
        """Yield a trio receive channel of NOTIFY payloads on ``channel`` (and ``RECONNECTED``
        after each reconnection of the LISTEN session).

        Wake-ups coalesce: when the buffer is full a payload is dropped, which is fine because
        readers re-query the table rather than trust payloads. Entering waits for the first
        LISTEN; the LISTEN thread exits within a second of leaving the block.
        """
        send, receive = trio.open_memory_channel[str](64)
        stop = threading.Event()
        ready = trio.Event()

        def forward(payload: str) -> None:
            try:
                send.send_nowait(payload)
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass

        def listening() -> None:
            if ready.is_set():
                forward(RECONNECTED)
            else:
                ready.set()

        loop = partial(self._listen_loop, channel, stop, listening, forward, trio.lowlevel.current_trio_token())
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

    def _listen_loop(
        self,
        channel: str,
        stop: threading.Event,
        listening: Callable[[], None],
        forward: Callable[[str], None],
        token: trio.lowlevel.TrioToken,
    ) -> None:
        """The LISTEN thread: connect, LISTEN, forward payloads (``listening`` runs in trio after
        every LISTEN); on a database error reconnect after a jittered backoff, logging the loss
        once and the return once."""
        rng = random.Random()
        query = psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel))
        options = {"application_name": session_name(self.node, f"listen-{channel}"), **connect_options(self.timeout)}
        failures = 0
        while not stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, **options) as conn:
                    conn.execute(query)
                    trio.from_thread.run_sync(listening, trio_token=token)
                    if failures:
                        log.info("database.listen_restored", channel=channel, failures=failures)
                    failures = 0
                    _forward_until_stopped(conn, stop, partial(trio.from_thread.run_sync, forward, trio_token=token))
            except psycopg.Error as exc:
                if failures == 0:
                    log.warning("database.listen_lost", channel=channel, error=describe_connect_error(exc))
                stop.wait(backoff(failures, rng.random()))
                failures += 1
            except trio.RunFinishedError:
                return


def _forward_until_stopped(conn: psycopg.Connection, stop: threading.Event, forward: Callable[[str], None]) -> None:
    keepalive_at = time.monotonic() + LISTEN_KEEPALIVE_S
    while not stop.is_set():
        for note in conn.notifies(timeout=0.5, stop_after=64):
            forward(note.payload)
        if time.monotonic() >= keepalive_at:  # idle_session_timeout would end a silent session
            conn.execute("SELECT 1")
            keepalive_at = time.monotonic() + LISTEN_KEEPALIVE_S
