"""This node's process locks, held on a session of their own for the life of ``run``, and kept.

Two session advisory locks (``store.locks``):
- ``NODE_LOCK`` keyed by ``hashtext(node_id)``: one ``run`` per node id (a second one exits 2),
  which also proves a lease left by an earlier run of this node id belongs to a dead process;
- ``RUN_LOCK`` taken *shared*: any number of nodes run together, while ``replay
  --rebuild-projections`` (which needs it exclusively) is refused as long as any of them runs.

A session advisory lock lasts as long as its session, and sessions end: a terminated backend, a
restarted server, ``idle_session_timeout``. So ``NodeLock.keep`` checks the session every
``CHECK_S`` (one round trip, bounded by the database timeout) and, once it is gone, opens another
and takes the locks again, with jittered backoff while the database is away::

    held ──(check fails or hangs)──► lost ──(connect, pg_try_advisory_lock)──► held again
                                        │   our own old backend still holds it (a frozen
                                        │   session that came back): terminate it, retry
                                        └── another process holds it: AlreadyRunning

``AlreadyRunning`` ends ``keep``: the supervisor stops serving at once and exits 2 with one line,
because two processes with one node id cannot tell their leases apart.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import structlog
import trio

from store.db import DatabaseUnavailable, backoff, connect_options, describe_connect_error, session_name
from store.locks import NODE_LOCK_NAMESPACE, RUN_LOCK

log = structlog.get_logger("database")

CHECK_S = 2.0  # how often the lock's session is checked
RELEASE_WAIT_S = 5.0  # how long a terminated old session of ours may take to let go of the lock

T = TypeVar("T")


class AlreadyRunning(Exception):
    """Another supervisor with this node id runs on the database; ``str()`` is one line."""


class NodeLock:
    def __init__(self, conninfo: str, node_id: str, *, timeout: float = 5.0):
        self.conninfo = conninfo
        self.node_id = node_id
        self.timeout = timeout
        self.retaken = 0  # how many times the locks were taken again on a new session
        self._conn: psycopg.Connection | None = None
        self._backend_pid: int | None = None  # of the session that last held the lock

    # --- taking and giving up (sync: before trio starts, after it ends) ------------------------

    def take(self) -> None:
        """Take both locks on a new session; ``AlreadyRunning`` if another process holds the node's."""
        conn = psycopg.connect(
            self.conninfo, autocommit=True, application_name=session_name(self.node_id, "node-lock"),
            **connect_options(self.timeout),
        )
        try:
            self._lock(conn)
        except BaseException:
            conn.close()
            raise
        self._conn, self._backend_pid = conn, conn.info.backend_pid

    def close(self) -> None:
        conn, self._conn = self._conn, None
        # not while a check abandoned on a frozen server still runs on it: psycopg's close does not
        # wait for the connection's lock, and freeing it under a running query crashes the process
        if conn is not None and conn.lock.acquire(timeout=1.0):
            try:
                conn.close()
            finally:
                conn.lock.release()

    def _lock(self, conn: psycopg.Connection) -> None:
        deadline = time.monotonic() + RELEASE_WAIT_S
        while not conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", self._node_key).fetchone()[0]:
            holder = conn.execute(
                "SELECT l.pid, a.application_name FROM pg_locks l LEFT JOIN pg_stat_activity a USING (pid)"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s"
                " AND l.objid::bigint = (hashtext(%s)::bigint & 4294967295) AND l.objsubid = 2",
                self._node_key,
            ).fetchone()
            ours = holder is not None and holder[0] == self._backend_pid
            if not ours and holder is not None or time.monotonic() > deadline:
                raise AlreadyRunning(
                    f"another sikka-supervisor with SIKKA_NODE_ID={self.node_id!r} is already running on this database"
                )
            if ours:  # our previous session came back from a freeze: end it, the new one takes over
                conn.execute("SELECT pg_terminate_backend(%s)", (holder[0],))
            time.sleep(0.05)
        if not conn.execute("SELECT pg_try_advisory_lock_shared(%s, %s)", RUN_LOCK).fetchone()[0]:
            log.error("node_lock.run_lock_busy", detail="projections are being rebuilt while this supervisor runs")

    @property
    def _node_key(self) -> tuple[int, str]:
        return (NODE_LOCK_NAMESPACE, self.node_id)

    # --- keeping (a task in the supervisor's nursery) --------------------------------------------

    async def keep(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Check the session every ``CHECK_S``; take the locks again on a new one once it is
        gone (see the module docstring). Raises ``AlreadyRunning`` when another process took it."""
        task_status.started()
        rng = random.Random()
        failures = 0
        while True:
            await trio.sleep(CHECK_S if failures == 0 else backoff(failures, rng.random(), high=CHECK_S * 2))
            conn = self._conn
            if conn is not None:
                if await self._alive(conn):
                    continue
                log.warning("node_lock.session_lost", node=self.node_id)
                # dropped, not closed: a check abandoned on a frozen server may still be using it (a
                # close from another thread would race it); it closes once that check returns
                self._conn = None
            try:
                await self._bounded(self.take)
            except (psycopg.Error, DatabaseUnavailable) as exc:
                if failures == 0:
                    log.warning("node_lock.retake_failed", node=self.node_id, error=describe_connect_error(exc))
                failures += 1
                continue
            failures = 0
            self.retaken += 1
            log.info("node_lock.retaken", node=self.node_id, backend_pid=self._backend_pid)

    async def _alive(self, conn: psycopg.Connection) -> bool:
        try:
            await self._bounded(conn.execute, "SELECT 1")
        except (psycopg.Error, DatabaseUnavailable):
            return False
        return True

    async def _bounded(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` in a worker thread, abandoned after the database timeout."""
        with trio.move_on_after(self.timeout):
            return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
        raise DatabaseUnavailable(f"database unavailable: no answer within {self.timeout:g} s")

