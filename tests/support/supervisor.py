"""A whole supervisor in-process for tests: ``start`` (a fixture factory) runs ``supervisor.serve``
on the real clock against real PostgreSQL (the ``db`` fixture) and the simulator served over real
HTTP on a local port; ``Running`` talks to its admin socket. Every supervisor started is stopped
through ``serve``'s ``stop`` event (the SIGTERM path) at the end of the test.

Also the shapes of interface section 4 (``check_practice``, ``check_writeback``, ``check_error``)
and valid payloads for the simulator's seeded data (``booking``, ``submission``). The fixtures
(``socket_dir``, ``start``, ``sup``) are registered for every test by ``tests/conftest.py``.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import trio
from cryptography.fernet import Fernet

from actors.process import config
from sim import SimConfig, Simulator
from sim import serve as sim_serve
from supervisor import serve

OFFICES = ("D1000", "D1001")

PRACTICE_KEYS = {
    "office_id", "practice_name", "practice_ids", "state", "conditions", "owner", "token_expires_at", "rate",
    "writebacks", "last_error", "restarts",
}
RATE_KEYS = {"limit", "used_last_60s", "remaining"}
COUNT_KEYS = {"queued", "submitting", "pending", "deferred", "unknown", "completed", "failed", "cancelled"}
WRITEBACK_KEYS = {
    "writeback_id", "office_id", "operation", "state", "idempotency_key", "retry_of", "retryable",
    "sikka_writeback_id", "created_id", "error", "requested_at", "submitted_at", "completed_at",
    "sikka_completed_time", "deadline_at", "attempts", "checks", "next_check_at",
}
TIMESTAMPS = ("requested_at", "submitted_at", "completed_at", "deadline_at", "next_check_at")
FINAL = {"completed", "failed", "cancelled"}


def utc(value: str) -> datetime:
    """A timestamp the program wrote: UTC ISO-8601 ending in ``Z``."""
    assert isinstance(value, str) and value.endswith("Z"), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset().total_seconds() == 0, value
    return parsed


class Running:
    """One supervisor: its settings, the simulator, and a client on the admin socket."""

    def __init__(self, sim: Simulator, sim_port: int, settings: config.Settings, db, deps,
                 stop: trio.Event, done: trio.Event):
        self.sim = sim
        self.stop = stop  # set: the supervisor shuts down as on SIGTERM
        self.done = done  # set once serve() has returned
        self.sim_port = sim_port
        self.settings = settings
        self.db = db
        self.deps = deps
        self.socket = settings.admin_socket
        self.client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket)), base_url="http://localhost", timeout=70
        )
        self.sim_client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim_port}", timeout=10)

    async def faults(self, faults: dict) -> None:
        r = await self.sim_client.post("/_sim/faults", json=faults)
        assert r.status_code == 200, r.text

    async def submit(self, office_id: str, body, **kw) -> httpx.Response:
        if not isinstance(body, (dict, list)):  # bytes, or an async iterator (sent chunked)
            return await self.client.post(f"/practices/{office_id}/writebacks", content=body, **kw)
        return await self.client.post(f"/practices/{office_id}/writebacks", json=body, **kw)

    async def writeback(self, writeback_id: str, wait: float | str | None = None) -> httpx.Response:
        params = {} if wait is None else {"wait": str(wait)}
        return await self.client.get(f"/writebacks/{writeback_id}", params=params)

    async def until_active(self, timeout: float = 15) -> list[dict]:
        """Wait for start-up onboarding: every simulated practice registered, active and holding
        its first key (a practice is ``active`` from its registration, before its first grant)."""
        with trio.fail_after(timeout):
            while True:
                practices = (await self.client.get("/practices")).json()["practices"]
                if len(practices) == len(OFFICES) and all(
                    p["state"] == "active" and p["token_expires_at"] for p in practices
                ):
                    return practices
                await trio.sleep(0.1)

    def counts(self) -> tuple[int, int, int]:
        """(writeback_requested events, credentials, writebacks) rows in the database: what a
        submission stores. (Other events may land at any time: earlier tests' writebacks being
        confirmed, token refreshes.)"""
        with self.db._pool.connection() as conn:
            return tuple(
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("events WHERE type = 'writeback_requested'", "credentials", "writebacks")
            )

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.sim_client.aclose()


def booking(sim: Simulator, office_id: str, n: int = 0, **override) -> dict:
    """A valid ``book_appointment`` payload for the simulator's seeded data (numbers as numbers)."""
    data = sim.data(sim.practice(office_id))
    payload = {
        "patient_id": sorted(data.patients)[n % len(data.patients)],
        "date": "2026-03-10",
        "time": f"{9 + n % 8:02d}:{(n * 10) % 60:02d}",
        "length": 30,
        "provider_id": data.providers[0].provider_id,
        "operatory": data.operatories[n % len(data.operatories)],
        "practice_id": 1,
    }
    payload.update(override)
    return {k: v for k, v in payload.items() if v is not None}


@pytest.fixture
def socket_dir():
    # A short path of our own: pytest's tmp_path can push the socket path past the 100-byte limit.
    path = Path(tempfile.mkdtemp(prefix="sk-admin-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def start(nursery, db, socket_dir):
    """``await start(**options)`` runs a supervisor and returns a ``Running``; every one started is
    stopped cleanly (``stop`` event, bounded) at the end of the test."""
    stops: list[tuple[trio.Event, trio.Event, Running]] = []

    async def _start(*, sim_faults: dict | None = None, env: dict | None = None, wait_active: bool = True,
                     sim: Simulator | None = None, sim_port: int | None = None) -> Running:
        if sim is None:
            sim = Simulator(SimConfig(practices=len(OFFICES), writeback_delay=(1, 2)))
            sim_port = await nursery.start(sim_serve, sim, "127.0.0.1", 0)
        if sim_faults:
            sim.set_faults(sim_faults)
        settings = config.load(
            {
                "SIKKA_APP_ID": sim.config.app_id,
                "SIKKA_APP_KEY": sim.config.app_key,
                "SIKKA_API_URL": f"http://127.0.0.1:{sim_port}/v4",
                "SIKKA_ADMIN_SOCKET": str(socket_dir / "admin.sock"),
                "SIKKA_DATA_DIR": str(socket_dir),
                "SIKKA_SECRETS_KEY": Fernet.generate_key().decode(),
                "SIKKA_NODE_ID": "test-node",
                "SIKKA_HTTP_TIMEOUT": "5",
                **(env or {}),
            }
        )
        stop, done = trio.Event(), trio.Event()

        async def run(task_status=trio.TASK_STATUS_IGNORED):
            try:
                await serve(settings, db, stop=stop, task_status=task_status)
            finally:
                done.set()

        deps = await nursery.start(run)
        running = Running(sim, sim_port, settings, db, deps, stop, done)
        stops.append((stop, done, running))
        if wait_active:
            await running.until_active()
        return running

    yield _start
    for stop, done, running in reversed(stops):
        stop.set()
        with trio.fail_after(30):
            await done.wait()
        await running.aclose()


@pytest.fixture
async def sup(start):
    return await start()



def check_error(r: httpx.Response, status: int, code: str, field: str | None = None, what: str = "") -> None:
    assert r.status_code == status, (what, r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "detail", "field"}, (what, body)
    assert body["error"] == code, (what, body)
    assert body["field"] == field, (what, body)
    assert isinstance(body["detail"], str) and body["detail"], (what, body)


def check_practice(p: dict) -> None:
    """The ``PracticeStatus`` shape of interface section 4, exactly."""
    assert set(p) == PRACTICE_KEYS, p
    assert set(p["rate"]) == RATE_KEYS and all(isinstance(v, int) for v in p["rate"].values()), p["rate"]
    assert set(p["writebacks"]) == COUNT_KEYS and all(isinstance(v, int) for v in p["writebacks"].values())
    assert p["state"] in {"active", "setup_required", "paused", "parked"}
    assert isinstance(p["conditions"], list)
    assert set(p["conditions"]) <= {"spu_offline", "quota_exhausted", "rate_limited"}
    assert isinstance(p["practice_ids"], list) and all(isinstance(i, str) for i in p["practice_ids"])
    assert p["owner"] == "test-node"
    assert p["token_expires_at"] is None or utc(p["token_expires_at"])
    assert p["last_error"] is None or isinstance(p["last_error"], str)
    assert isinstance(p["restarts"], int) and not isinstance(p["restarts"], bool)


def check_writeback(w: dict) -> None:
    """The ``Writeback`` shape of interface section 4, exactly."""
    assert set(w) == WRITEBACK_KEYS, w
    assert str(uuid.UUID(w["writeback_id"])) == w["writeback_id"]
    for key in TIMESTAMPS:
        assert w[key] is None or utc(w[key]), (key, w)
    assert w["requested_at"] is not None and w["deadline_at"] is not None
    assert w["error"] is None or set(w["error"]) == {"code", "message"}
    assert isinstance(w["retryable"], bool)
    assert isinstance(w["attempts"], int) and isinstance(w["checks"], int)
    for key in ("idempotency_key", "retry_of", "sikka_writeback_id", "created_id", "sikka_completed_time"):
        assert w[key] is None or isinstance(w[key], str), (key, w)


def submission(sim: Simulator, office_id: str = "D1000", n: int = 0, **extra) -> dict:
    return {"operation": "book_appointment", "payload": booking(sim, office_id, n), **extra}


# --- health and practices ---------------------------------------------------------------------
