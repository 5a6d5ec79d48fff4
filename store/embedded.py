"""The embedded PostgreSQL server (the ``pgserver`` wheel), used when ``DATABASE_URL`` is unset.

The server lives under ``SIKKA_DATA_DIR/pg`` and listens only on a Unix socket. ``start(data_dir)``
starts it, or adopts one that a killed run left behind, and returns a connection string;
``stop_if_last()`` stops it when no other live process of ours uses it.

pgserver's habits, and how they are handled here:
- It keeps the pids of its users in ``pg/.handle_pids.json`` and stops the server only when the
  last of them exits; a ``kill -9``-ed process never removes its pid, so the server would run
  forever. Dead pids are pruned before every start.
- It needs a writable runtime directory (``platformdirs.user_runtime_path``, read when pgserver
  is imported) for its lock file and, when the data path is too long for a socket name, the
  socket itself. ``XDG_RUNTIME_DIR`` is pointed at ``SIKKA_DATA_DIR/run`` unless it is set and
  writable (under systemd, ``RuntimeDirectory=`` provides it).
- As root it runs the server as an OS user ``pgserver`` that it creates, and opens every parent
  directory of the data dir for traversal (o+rx). The data dir itself stays 0700 and the key file
  0600; production installs set ``DATABASE_URL`` instead.

Under supervision (``supervise``, a task of ``run``): the postmaster is checked every
``WATCH_S``; when it died (``kill -9``, the OOM killer, a crash) it is started again as ``start``
does (the data directory adopted, PostgreSQL's own crash recovery), with a jittered backoff while
that fails (the old backends still hold its shared memory for a moment). pg_ctl leaves the
postmaster orphaned; a container's init may never reap it, and a zombie still "runs" for pg_ctl
and PostgreSQL's lock file. So the supervisor makes itself the child subreaper (Linux) before
starting the server: the postmaster and, once it dies, its backends become its children, and it
reaps them.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import random
import warnings
from pathlib import Path

import psutil
import structlog
import trio

log = structlog.get_logger("database")

WATCH_S = 1.0  # how often the postmaster's life is checked
RESTART_MAX_S = 10.0  # the restart backoff's cap
PR_SET_CHILD_SUBREAPER = 36

_server = None


def _prune_dead_pids(pgdata: Path) -> None:
    pid_file = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        pid_file.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ensure_runtime_dir(data_dir: Path) -> None:
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and os.access(current, os.W_OK):
        return
    run = data_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(run.resolve())


def start(data_dir: Path) -> str:
    """Start (or adopt) the embedded server for ``data_dir``; return its connection string."""
    global _server
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    _ensure_runtime_dir(data_dir)
    pgdata = (data_dir / "pg").resolve()
    _prune_dead_pids(pgdata)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    _become_subreaper()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # lazy: it reads XDG_RUNTIME_DIR when imported (set just above)

        _server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return _server.get_uri()


def stop_if_last() -> None:
    """Give up this process's hold; the server stops if no other live process holds it."""
    global _server
    if _server is not None:
        _prune_dead_pids(_server.pgdata)
        _server.cleanup()
        _server = None


def _become_subreaper() -> None:
    """Orphaned descendants (the postmaster pg_ctl leaves behind) become this process's children."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the init process reaps
        pass


def _reap() -> None:
    """Collect this process's dead PostgreSQL children (a killed postmaster, its orphaned backends)."""
    for child in psutil.Process().children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


def postmaster_alive() -> bool:
    """Whether the embedded server's postmaster runs (``True`` when no server was started here)."""
    if _server is None:
        return True
    _reap()
    import pgserver.utils  # lazy: pgserver is imported by start() (it reads XDG_RUNTIME_DIR then)

    info = pgserver.utils.PostmasterInfo.read_from_pgdata(_server.pgdata)
    if info is None or info.process is None:
        return False
    try:
        return info.process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def restart() -> None:
    """Start the server again after its postmaster died (raises what pg_ctl raised)."""
    _reap()
    with _server._lock:
        _server.ensure_postgres_running()


async def supervise() -> None:
    """Keep the embedded server running (see the module docstring)."""
    rng = random.Random()
    while True:
        await trio.sleep(WATCH_S)
        if await trio.to_thread.run_sync(postmaster_alive):
            continue
        log.error("database.embedded_server_died", data_dir=str(_server.pgdata))
        attempt = 0
        while True:
            try:
                await trio.to_thread.run_sync(restart)
                break
            except Exception as exc:  # pg_ctl's failure, whatever its type
                attempt += 1
                delay = min(RESTART_MAX_S, 0.5 * 2**attempt) * (0.5 + 0.5 * rng.random())
                log.warning("database.embedded_restart_failed", attempt=attempt, error=str(exc).splitlines()[0])
                await trio.sleep(delay)
        log.info("database.embedded_server_restarted", attempts=attempt + 1)
