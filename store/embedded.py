"""The embedded PostgreSQL server, used when ``DATABASE_URL`` is unset: the binaries of the
``pgserver`` wheel, started and stopped here.

The server lives under ``SIKKA_DATA_DIR/pg`` and listens only on a Unix socket (in ``pg/``, or,
when that path is too long for a socket, in a private directory ``/tmp/sikka-pg-<uid>-<hash>``).
``start(data_dir)`` starts it, or adopts one that a killed run left behind, and returns a
connection string; ``stop_if_last()`` stops it when no other live process of ours uses it.

- Users: the processes of ours that use the server (a supervisor, a CLI command) are listed in
  ``pg/.handle_pids.json``; ``start`` adds this one, ``stop_if_last`` removes it and stops the
  server when none is left. A ``kill -9``-ed process never removes its pid: dead pids are
  pruned. ``SIKKA_DATA_DIR/pg.lock`` (``flock``) makes start and stop one at a time.
- Modes: the data dir is created 0700 (``actors.process.datadir``), ``initdb`` makes ``pg/``
  0700 with 0600 files, the files of ours are 0600; no directory above the data dir, and none
  of the wheel's, ever changes mode.
- As root: PostgreSQL refuses to run as root. pgserver's answer (an OS user ``pgserver``, and
  every parent of the data dir and of its binaries opened to everyone for traversal) is not
  used: ``initdb`` and ``pg_ctl``, and so the server, run in a user namespace of their own
  (``store.userns``) where root appears as ``nobody``. The server owns the root-owned 0700 data
  dir (the kernel checks real owners), holds no capability outside its namespace, and only root
  can reach its socket. Where user namespaces are forbidden (some containers), running as root
  on the embedded server is an error naming the way out (``DATABASE_URL``, or another user).

Under supervision (``supervise``, a task of ``run``): the postmaster is checked every
``WATCH_S``; when it died (``kill -9``, the OOM killer, a crash, a shutdown nobody asked of this
process) it is started again as ``start`` does (the data directory adopted, PostgreSQL's own crash
recovery), with a jittered backoff while that fails (the old backends hold its shared memory for
a moment). pg_ctl leaves the postmaster orphaned, and a container's init may never reap it: a
zombie still "runs" for ``pg_ctl status`` and PostgreSQL's lock file. So ``start`` makes this
process the child subreaper (Linux) first: the postmaster and, once it dies, its backends become
its children, and it reaps them.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import importlib.util
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import structlog
import trio

from actors.process import datadir

log = structlog.get_logger("database")

SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL
START_TIMEOUT_S = 60
PIDS = ".handle_pids.json"
WATCH_S = 1.0  # how often the postmaster's life is checked under supervision
RESTART_MAX_S = 10.0  # the restart backoff's cap
PR_SET_CHILD_SUBREAPER = 36

_pgdata: Path | None = None  # the server this process holds
_url: str | None = None  # and its connection string


class EmbeddedError(Exception):
    """The embedded server cannot be started or stopped; ``str()`` is one line."""


def binaries() -> Path:
    """The wheel's PostgreSQL binaries (found without importing pgserver's server code)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise EmbeddedError("the pgserver package is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def start(data_dir: Path) -> str:
    """Start (or adopt) the embedded server for ``data_dir``; return its connection string."""
    global _pgdata, _url
    data_dir = datadir.prepare(Path(data_dir)).resolve()
    pgdata = data_dir / "pg"
    _become_subreaper()
    with _locked(data_dir):
        _chown_to_root(pgdata)
        socket_dir = _ensure_running(pgdata)
        _write_pids(pgdata, [*_live_pids(pgdata), os.getpid()])
    _pgdata, _url = pgdata, f"postgresql://postgres:@/postgres?host={socket_dir}"
    return _url


def serves(url: str) -> bool:
    """Whether ``url`` is the embedded server this process holds."""
    return _pgdata is not None and url == _url


def stop_if_last() -> None:
    """Give up this process's hold; the server stops if no other live process holds it."""
    global _pgdata
    if _pgdata is None:
        return
    pgdata, _pgdata = _pgdata, None
    with _locked(pgdata.parent):
        others = [pid for pid in _live_pids(pgdata) if pid != os.getpid()]
        _write_pids(pgdata, others)
        if not others and _running(pgdata):
            _pg_ctl(pgdata, "-m", "fast", "-w", "stop")


def _ensure_running(pgdata: Path) -> Path:
    """The socket directory of the running server, started first when it does not run."""
    if (pgdata / "postmaster.pid").exists() and _running(pgdata):
        return Path((pgdata / "postmaster.pid").read_text().splitlines()[4])
    if not (pgdata / "PG_VERSION").exists():
        _run("initdb", "-D", str(pgdata), "--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres")
    socket_dir = _socket_dir(pgdata)
    options = f"-h '' -k {shlex.quote(str(socket_dir))} -c unix_socket_permissions=0700"
    _pg_ctl(pgdata, "-w", "-t", str(START_TIMEOUT_S), "-o", options, "-l", str(pgdata / "log"), "start")
    return socket_dir


def _running(pgdata: Path) -> bool:
    return _run("pg_ctl", "-D", str(pgdata), "status", check=False).returncode == 0


def _pg_ctl(pgdata: Path, *args: str) -> None:
    _run("pg_ctl", "-D", str(pgdata), *args)


def _run(program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A PostgreSQL program, in a user namespace of its own when this process is root."""
    command = [str(binaries() / program), *args]
    if os.geteuid() == 0:
        command = [sys.executable, "-m", "store.userns", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30,
                            stdin=subprocess.DEVNULL, cwd="/")
    if check and result.returncode != 0:
        raise EmbeddedError(f"{program} failed: {_reason(result)}")
    return result


def _reason(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    if any("cannot create a user namespace" in line for line in lines):
        return (f"{lines[0]}; as root the embedded PostgreSQL needs user namespaces: set DATABASE_URL,"
                " or run as another user")
    return lines[-1] if lines else f"exit status {result.returncode}"


def _socket_dir(pgdata: Path) -> Path:
    """``pgdata`` when the socket's path fits there, else a private directory of this user's."""
    if len(os.fsencode(pgdata / SOCKET_NAME)) <= MAX_SOCKET_PATH:
        return pgdata
    digest = hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"sikka-pg-{os.geteuid()}-{digest}"
    try:
        short.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = short.lstat()
    if not short.is_dir() or short.is_symlink() or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise EmbeddedError(f"{short} is not a private directory of this user's: remove it")
    return short


def _chown_to_root(pgdata: Path) -> None:
    """As root, a data directory that pgserver once gave its ``pgserver`` user comes back to root
    (the server runs as root in its own namespace now)."""
    if os.geteuid() != 0 or not pgdata.exists() or pgdata.stat().st_uid == 0:
        return
    for path in [pgdata, *pgdata.rglob("*")]:
        os.lchown(path, 0, 0)


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    fd = os.open(data_dir / "pg.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _live_pids(pgdata: Path) -> list[int]:
    try:
        pids = json.loads((pgdata / PIDS).read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int) and _alive(pid)] if isinstance(pids, list) else []


def _write_pids(pgdata: Path, pids: list[int]) -> None:
    fd = os.open(pgdata / PIDS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(pids))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- under supervision ----------------------------------------------------------------------------


def _become_subreaper() -> None:
    """Orphaned descendants (the postmaster pg_ctl leaves behind) become this process's children."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the init process reaps
        pass


def _reap() -> None:
    """Collect this process's dead children that are PostgreSQL's (a killed postmaster, its backends)."""
    for child in psutil.Process().children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE and child.name() in ("postgres", "postmaster"):
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


def postmaster_alive() -> bool:
    """Whether the server this process holds has a live postmaster (``True`` when it holds none)."""
    if _pgdata is None:
        return True
    _reap()
    try:
        pid = int((_pgdata / "postmaster.pid").read_text().split()[0])
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (OSError, IndexError, ValueError, psutil.Error):
        return False


def restart() -> None:
    """Start the server this process holds again, as ``start`` does (``EmbeddedError`` if it cannot)."""
    pgdata = _pgdata
    with _locked(pgdata.parent):
        _reap()
        _ensure_running(pgdata)


async def supervise() -> None:
    """Keep the embedded server running (see the module docstring)."""
    rng = random.Random()
    while True:
        await trio.sleep(WATCH_S)
        if _pgdata is None or await trio.to_thread.run_sync(postmaster_alive):
            continue
        log.error("database.embedded_server_died", data_dir=str(_pgdata))
        attempt = 0
        while True:
            try:
                await trio.to_thread.run_sync(restart)
                break
            except EmbeddedError as exc:
                attempt += 1
                log.warning("database.embedded_restart_failed", attempt=attempt, error=str(exc))
                await trio.sleep(min(RESTART_MAX_S, 0.5 * 2**attempt) * (0.5 + 0.5 * rng.random()))
        log.info("database.embedded_server_restarted", attempts=attempt + 1)
