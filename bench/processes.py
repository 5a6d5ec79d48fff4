"""Real processes for the scale and recovery benchmarks and the end-to-end tests: a database,
``sikka-sim``, ``sikka-supervisor run``.

- ``postgres``/``fresh_database``: embedded PostgreSQL in a temporary directory, or a fresh
  database on ``DATABASE_URL``'s server, migrated;
- ``Sim``: ``sikka-sim`` on a free port, with its control endpoints; ``bookings``: bookings each in
  a slot of its own at its seeded practices;
- ``Supervisor``: ``sikka-supervisor run`` against them (started, ``kill -9``-ed, terminated), its
  admin socket client; ``start_nodes``: several on one database; ``wait_ready``: until every
  practice runs;
- the supervisor's resource figures from ``/proc``, and its JSON log lines (``log_records``: ``loop.lag``,
  ``actors.recovered``).

The executables are the ones installed beside this interpreter (``pip install`` puts them there).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from cryptography.fernet import Fernet
from psycopg.conninfo import make_conninfo

from store import embedded, migrate

BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Sim:
    """``sikka-sim`` in a process of its own on a free port (log: ``tmp/sim.log``); ``extra``
    arguments override the defaults (keys rolling every 60 s, writebacks done in 1–6 s)."""

    def __init__(self, tmp: Path, practices: int, *extra: str):
        self.log = open(tmp / "sim.log", "w+")
        self.proc = subprocess.Popen(
            [str(BIN / "sikka-sim"), "--port", "0", "--practices", str(practices), "--token-ttl", "60",
             "--writeback-delay", "1:6", *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        first = self.proc.stdout.readline().strip()
        assert first.startswith("listening on http://"), first
        self.url = first.removeprefix("listening on ")
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def get(self, path: str):
        return self.http.get(path).json()

    def faults(self, faults: dict) -> None:
        assert self.http.post("/_sim/faults", json=faults).status_code == 200

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Supervisor:
    """``sikka-supervisor run`` on ``sim`` and the database, a fresh secrets key; each ``start``
    logs (JSON) to ``tmp/supervisor-N.log``."""

    def __init__(self, tmp: Path, sim: Sim, database_url: str):
        self.tmp = tmp
        self.socket = tmp / "admin.sock"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SIKKA_")},
            "DATABASE_URL": database_url,
            "SIKKA_DATA_DIR": str(tmp / "data"),
            "SIKKA_ADMIN_SOCKET": str(self.socket),
            "SIKKA_SECRETS_KEY": Fernet.generate_key().decode(),
            "SIKKA_APP_ID": "sim-app-id",
            "SIKKA_APP_KEY": "sim-app-key",
            "SIKKA_API_URL": f"{sim.url}/v4",
            "SIKKA_NODE_ID": "e2e",
            "SIKKA_HTTP_TIMEOUT": "5",
            "SIKKA_LOG_FORMAT": "json",
        }
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.tmp / f"supervisor-{self.starts}.log", "w")
        self.proc = subprocess.Popen([str(BIN / "sikka-supervisor"), "run"], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.tmp / f"supervisor-{self.starts}.log").read_text()
            try:
                if self.client(timeout=2).get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the supervisor did not come up")

    def client(self, timeout: float = 30) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.socket))
        return httpx.Client(transport=transport, base_url="http://localhost", timeout=timeout)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def start_nodes(
    tmp: Path, sim: Sim, database_url: str, names: list[str], ttl: float | None = None
) -> dict[str, Supervisor]:
    """One supervisor per name (its ``SIKKA_NODE_ID``) on one database, sharing a secrets key;
    each in ``tmp/NAME``; ``ttl``: ``SIKKA_LEASE_TTL``."""
    secrets_key = Fernet.generate_key().decode()
    nodes = {}
    for name in names:
        (tmp / name).mkdir()
        node = Supervisor(tmp / name, sim, database_url)
        node.env.update({"SIKKA_NODE_ID": name, "SIKKA_SECRETS_KEY": secrets_key})
        if ttl is not None:
            node.env["SIKKA_LEASE_TTL"] = str(ttl)
        node.start()
        nodes[name] = node
    return nodes


def bookings(sim: Sim, offices: list[str], per_practice: int) -> list[tuple[str, str, dict]]:
    """(office, idempotency key, payload): each booking in a slot of its own, so the ground
    truth can tell every booking apart."""
    out = []
    for office in offices:
        seeded = sim.get(f"/_sim/practices/{office}/appointments")["items"][0]
        patient = sim.get(f"/_sim/practices/{office}/patients")["items"][0]["patient_id"]
        for n in range(per_practice):
            payload = {
                "patient_id": patient,
                "date": f"2027-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}",
                "time": f"{8 + n // 336 % 10:02d}:{(n // 28 // 12 % 6) * 10:02d}",
                "length": 30,
                "provider_id": seeded["provider_id"],
                "operatory": seeded["operatory"],
                "practice_id": "1",
            }
            out.append((office, f"booking-{office}-{n}", payload))
    return out


def wait_ready(supervisor: Supervisor, practices: int, timeout: float) -> None:
    """Until every practice is active with a running actor."""
    start = time.monotonic()
    with supervisor.client(timeout=60) as admin:
        while True:
            running = len(admin.get("/usage").json()["practices"])
            if running >= practices:
                states = [p["state"] for p in admin.get("/practices").json()["practices"]]
                if len(states) >= practices and all(s == "active" for s in states):
                    return
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{running} of {practices} actors running after {timeout:.0f} s")
            time.sleep(1.0 if practices < 1000 else 5.0)  # each answer lists every practice: its cost grows


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str, Path]]:
    """(admin URL of a PostgreSQL server, a temporary directory for the run)."""
    with tempfile.TemporaryDirectory(prefix="sikka-bench-") as tmp:
        admin_url = os.environ.get("DATABASE_URL")
        if admin_url:
            yield admin_url, Path(tmp)
            return
        url = embedded.start(Path(tmp) / "pg")
        try:
            yield url, Path(tmp)
        finally:
            embedded.stop_if_last()


def fresh_database(admin_url: str, name: str) -> str:
    """Drop and create ``name``, migrate it; its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(admin_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.apply(conn)
    return url


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``/proc/PID/statm``)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def log_records(log: Path, event: str) -> list[dict]:
    """The supervisor's log lines (JSON log format) of ``event``, oldest first."""
    out = []
    for raw in log.read_text().splitlines():
        if f'"{event}"' in raw:
            with contextlib.suppress(ValueError):
                out.append(json.loads(raw))
    return out
