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
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

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
