"""A PostgreSQL server of the database fault suite's own, which it stops, restarts, freezes,
kills and turns read-only under a running supervisor (the tests' shared server is never touched).

The binaries are the embedded server's (the ``pgserver`` wheel's, ``store.embedded.binaries``);
as root, ``initdb`` and the server run in a user namespace of their own (``store.userns``), as the
embedded server does. ``postgres`` runs as a direct child of this process, on a Unix socket only:
a ``kill -9`` or a restart leaves no zombie behind to confuse the next start. ``admin()`` connects
straight to the socket (the supervisor goes through a ``Relay`` to it: ``socket_path``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg

from store.embedded import binaries

SHUTDOWN = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def _as_server(*command: str) -> list[str]:
    """``command`` as the embedded server runs it: in a user namespace of its own as root."""
    return [sys.executable, "-m", "store.userns", *command] if os.geteuid() == 0 else list(command)


class Cluster:
    def __init__(self, tmp: Path):
        self.pgdata = tmp / "pgdata"
        self.sockets = tmp / "sockets"
        self.sockets.mkdir(mode=0o700)
        self.log = open(tmp / "postgres.log", "ab")
        subprocess.run(
            _as_server(str(binaries() / "initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=utf8",
                       "-U", "postgres"),
            check=True, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, cwd="/",
        )
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def socket_path(self) -> Path:
        return self.sockets / ".s.PGSQL.5432"

    def url(self, dbname: str = "postgres") -> str:
        return f"host={self.sockets} port=5432 user=postgres dbname={dbname}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=5)

    # --- the server's life ------------------------------------------------------------------

    def start(self, wait: float = 30) -> None:
        self.proc = subprocess.Popen(
            _as_server(str(binaries() / "postgres"), "-D", str(self.pgdata), "-k", str(self.sockets), "-p", "5432",
                       "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=200"),
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, cwd="/",
        )
        deadline = time.monotonic() + wait
        while True:
            try:
                with self.admin() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                assert self.proc.poll() is None, f"postgres exited with {self.proc.returncode}"
                assert time.monotonic() < deadline, "postgres did not start"
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        self.proc.send_signal(SHUTDOWN[mode])
        self.proc.wait(60)

    def kill(self) -> None:
        """``kill -9`` of the postmaster (its backends end as they notice)."""
        self.proc.kill()
        self.proc.wait(10)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def processes(self, everything: bool) -> list[psutil.Process]:
        postmaster = psutil.Process(self.proc.pid)
        return [postmaster] + (postmaster.children() if everything else [])

    def freeze(self, everything: bool = True) -> list[psutil.Process]:
        """SIGSTOP the postmaster (and its backends: the whole server): it stops answering."""
        frozen = self.processes(everything)
        for p in frozen:
            p.send_signal(signal.SIGSTOP)
        return frozen

    @staticmethod
    def thaw(frozen: list[psutil.Process]) -> None:
        for p in frozen:
            try:
                p.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for p in self.processes(True):
                try:
                    p.send_signal(signal.SIGCONT)
                except psutil.NoSuchProcess:
                    pass
            self.stop("immediate")
        self.log.close()

    # --- faults through SQL -----------------------------------------------------------------

    def terminate(self, application_name: str) -> int:
        """``pg_terminate_backend`` of every session whose ``application_name`` is LIKE this."""
        with self.admin() as conn:
            return conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
                (application_name,),
            ).fetchone()[0]

    def sessions(self, application_name: str) -> int:
        with self.admin() as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", (application_name,)
            ).fetchone()[0]

    def set_read_only(self, read_only: bool) -> None:
        """Every new transaction read-only (as on a standby after a failover), or writable again."""
        with self.admin() as conn:
            conn.execute("SET default_transaction_read_only = off")
            if read_only:
                conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            else:
                conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            conn.execute("SELECT pg_reload_conf()")

    def set_idle_session_timeout(self, dbname: str, seconds: float | None) -> None:
        """The database's ``idle_session_timeout`` (new sessions; ``None``: none)."""
        with self.admin() as conn:
            if seconds is None:
                conn.execute(f"ALTER DATABASE {dbname} RESET idle_session_timeout")
            else:
                conn.execute(f"ALTER DATABASE {dbname} SET idle_session_timeout = '{int(seconds * 1000)}ms'")


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid in ``postmaster.pid`` (``None``: no server, or a clean stop removed the file)."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
