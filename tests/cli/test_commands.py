"""The operator commands of interface section 3 against a real supervisor.

A whole supervisor (``supervisor.serve``) runs in-process on the real clock with real PostgreSQL
(the ``db`` fixture) and the simulator served over real HTTP; the commands run as an operator
runs them: ``main([...])`` in a worker thread (stdout/stderr captured), or, for the commands
that open the database themselves (``doctor``, ``onboard`` without a supervisor), the
``sikka-supervisor`` console script in a subprocess. For every command: the table people read
(at most 80 columns), ``--json`` (exactly the admin API's body: compared with a direct call) and
the exit status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
import structlog
import trio
from cryptography.fernet import Fernet

from actors.cli import commands, doctor
from actors.process import config
from sim import SimConfig, Simulator
from sim import serve as sim_serve
from tests.support.supervisor import booking
from supervisor import main, serve

OFFICES = ("D1000", "D1001")
FINAL = {"completed", "failed", "cancelled"}
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def quiet_logs():
    """The supervisor runs in this process: keep its log lines out of the captured stdout."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    yield
    structlog.configure(**saved)


@pytest.fixture
def socket_dir():
    path = Path(tempfile.mkdtemp(prefix="sk-cli-", dir="/tmp"))  # short: socket paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Env:
    """A simulator, the settings a supervisor and the CLI share, and (once started) the supervisor."""

    def __init__(self, sim: Simulator, sim_port: int, socket_dir: Path, database_url: str, capsys):
        self.sim = sim
        self.sim_url = f"http://127.0.0.1:{sim_port}"
        self.socket = socket_dir / "admin.sock"
        self.database_url = database_url
        self.capsys = capsys
        self.env = {
            "SIKKA_APP_ID": sim.config.app_id,
            "SIKKA_APP_KEY": sim.config.app_key,
            "SIKKA_API_URL": f"{self.sim_url}/v4",
            "SIKKA_ADMIN_SOCKET": str(self.socket),
            "SIKKA_DATA_DIR": str(socket_dir),
            "SIKKA_SECRETS_KEY": Fernet.generate_key().decode(),
            "SIKKA_NODE_ID": "test-node",
            "SIKKA_HTTP_TIMEOUT": "5",
            "DATABASE_URL": database_url,
        }
        self.settings = config.load(self.env)
        self.api = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket)), base_url="http://localhost", timeout=70
        )

    async def faults(self, faults: dict) -> None:
        async with httpx.AsyncClient(base_url=self.sim_url) as client:
            assert (await client.post("/_sim/faults", json=faults)).status_code == 200

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """``sikka-supervisor --admin-socket S ARGS`` in this process: (status, stdout, stderr)."""
        self.capsys.readouterr()
        argv = ["--admin-socket", str(self.socket), *args]
        status = await trio.to_thread.run_sync(main, argv)
        out, err = self.capsys.readouterr()
        return status, out, err

    async def process(self, *args: str) -> subprocess.CompletedProcess:
        """The console script in a subprocess, with this environment and nothing else of SIKKA_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SIKKA_", "DATABASE_URL"))}
        env.update(self.env, SIKKA_LOG_FORMAT="console")
        run = lambda: subprocess.run(  # noqa: E731
            [str(BIN / "sikka-supervisor"), *args], capture_output=True, text=True, env=env, timeout=120
        )
        return await trio.to_thread.run_sync(run)

    async def same_as_api(self, path: str, *args: str) -> dict:
        """``args`` with ``--json`` print exactly what ``GET path`` answers (retried: background
        calls move the rate figures between the two reads)."""
        for _ in range(5):
            status, out, _ = await self.cli(*args, "--json")
            r = await self.api.get(path)
            if out == r.text + "\n":
                assert status == (0 if r.is_success else 2 if r.status_code in (400, 404) else 1)
                return r.json()
            await trio.sleep(0.2)
        raise AssertionError((out, r.text))

    async def same_as_api_post(self, path: str, *args: str) -> dict:
        """``args`` with ``--json`` print the body ``POST path`` answers just after (an action
        whose answer does not change when repeated)."""
        status, out, err = await self.cli(*args, "--json")
        r = await self.api.post(path)
        assert status == 0 and out == r.text + "\n", (err, out, r.text)
        return r.json()

    async def until_active(self, timeout: float = 20) -> None:
        """Every practice active, its actor running (actors start once their lease is taken:
        within ``ownership.ROUND_GAP_S`` of each other when onboarded together)."""
        with trio.fail_after(timeout):
            while True:
                r = await self.api.get("/practices")
                practices = r.json()["practices"] if r.status_code == 200 else []
                running = {u["office_id"] for u in (await self.api.get("/usage")).json()["practices"]}
                if len(practices) == len(OFFICES) and all(p["state"] == "active" for p in practices):
                    if running == set(OFFICES):
                        return
                await trio.sleep(0.1)

    def booking(self, office_id: str = "D1000", n: int = 0, **override) -> str:
        return json.dumps(booking(self.sim, office_id, n, **override))

    async def submit(self, office_id: str = "D1000", n: int = 0, *extra: str) -> dict:
        status, out, err = await self.cli("submit", office_id, "book_appointment", "--payload", self.booking(office_id, n), "--json", *extra)
        assert status == 0, err
        return json.loads(out)


@pytest.fixture
async def env(nursery, database_url, socket_dir, capsys):
    sim = Simulator(SimConfig(practices=len(OFFICES), writeback_delay=(1, 2)))
    sim_port = await nursery.start(sim_serve, sim, "127.0.0.1", 0)
    e = Env(sim, sim_port, socket_dir, database_url, capsys)
    yield e
    await e.api.aclose()


@pytest.fixture
async def sup(env, db, nursery):
    """``env`` with a supervisor running (every practice active); stopped as on SIGTERM."""
    stop, done = trio.Event(), trio.Event()

    async def run(task_status=trio.TASK_STATUS_IGNORED):
        try:
            await serve(env.settings, db, stop=stop, task_status=task_status)
        finally:
            done.set()

    await nursery.start(run)
    await env.until_active()
    yield env
    stop.set()
    with trio.fail_after(30):
        await done.wait()


def narrow(text: str) -> None:
    assert text.strip(), "no output"
    for line in text.splitlines():
        assert len(line) <= 80, line


# --- the socket ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "D1000", "--json"),
        ("usage",),
        ("writeback", str(uuid.uuid4())),
        ("writebacks", "D1000"),
        ("pause", "D1000"),
        ("cancel", str(uuid.uuid4())),
        ("stats", "D1000"),
        ("submit", "D1000", "book_appointment", "--payload", "{}", "--wait", "5"),
    ],
)
async def test_socket_unreachable_is_exit_3(socket_dir, capsys, args):
    stale = socket_dir / "stale.sock"  # a socket file left behind by a killed run: nobody listens
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    for path in (socket_dir / "missing.sock", stale):
        capsys.readouterr()
        status = await trio.to_thread.run_sync(main, ["--admin-socket", str(path), *args])
        out, err = capsys.readouterr()
        assert status == 3, (args, err)
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and "unreachable" in lines[0], err


NOT_IDS = [
    ("pause", "D9999/../D1001"),
    ("offboard", "D9999/../D1001"),
    ("status", "D1000?x=1"),
    ("status", "D1000#frag"),
    ("status", "D1000/"),
    ("writebacks", "D1000/../D1001"),
    ("stats", "D1000%2F"),
    ("writeback", "x/../" + str(uuid.UUID(int=1))),
    ("writeback", str(uuid.UUID(int=0xABCDEF)).upper()),
    ("cancel", "not-a-uuid"),
    ("submit", "../D1000", "book_appointment", "--payload", "{}"),
    ("refresh-token", ""),
]


@pytest.mark.parametrize("args", NOT_IDS)
async def test_an_id_that_is_not_one_is_exit_2_and_nothing_is_sent(socket_dir, capsys, args):
    """Regression: ``pause 'D9999/../D1001'`` paused D1001. The id is refused before the socket
    is opened: exit 2 even where nothing listens."""
    capsys.readouterr()
    status = await trio.to_thread.run_sync(main, ["--admin-socket", str(socket_dir / "none.sock"), *args])
    out, err = capsys.readouterr()
    assert status == 2 and out == "", (args, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ("is not an office id" in lines[0] or "is not a writeback id" in lines[0]), err


async def test_a_path_built_from_an_id_names_that_resource_only(sup):
    for args in NOT_IDS[:2]:
        status, _, _ = await sup.cli(*args)
        assert status == 2
    practice = (await sup.api.get("/practices/D1001")).json()
    assert practice["state"] == "active", practice  # neither paused nor offboarded
    assert commands.api_path("/practices/{office_id}/stats", office_id="D1000_x-1") == "/practices/D1000_x-1/stats"


# --- status -------------------------------------------------------------------------------------


async def test_status(sup):
    status, out, err = await sup.cli("status")
    assert status == 0, err
    narrow(out)
    header, *lines = out.splitlines()
    rows = [line for line in lines if not line.startswith(" ")]  # a long name wraps onto indented lines
    assert header.split()[:3] == ["OFFICE", "NAME", "STATE"]
    assert [r.split()[0] for r in rows] == list(OFFICES) and all(" active " in r for r in rows)

    body = await sup.same_as_api("/practices", "status")
    assert sorted(p["office_id"] for p in body["practices"]) == list(OFFICES)
    status, out, err = await sup.cli("status", "--wide")  # every column, one line a practice
    header, *rows = out.splitlines()
    assert status == 0 and header.split()[-7:] == ["QUEUED", "DEFERRED", "PENDING", "UNKNOWN", "DONE", "FAILED",
                                                   "ERROR"]
    assert len(rows) == len(OFFICES) and all(sup.sim.practice(r.split()[0]).info.name in r for r in rows), out

    status, out, err = await sup.cli("status", "D1000")
    assert status == 0, err
    narrow(out)
    assert "D1000" in out and "state" in out and "active" in out
    name = sup.sim.practice("D1000").info.name
    assert name in out
    await sup.same_as_api("/practices/D1000", "status", "D1000")

    status, out, err = await sup.cli("status", "D9999")
    assert status == 2 and out == "" and "unknown_practice" in err
    status, out, err = await sup.cli("status", "D9999", "--json")
    assert status == 2 and json.loads(out)["error"] == "unknown_practice"  # the error body, as sent


# --- submit, writeback, writebacks, cancel -----------------------------------------------------


async def test_submit_and_writeback(sup):
    status, out, err = await sup.cli("submit", "D1000", "book_appointment", "--payload", sup.booking(), "--idempotency-key", "visit-1", "--deadline", "900")
    assert status == 0, err
    narrow(out)
    writeback_id = next(line.split()[1] for line in out.splitlines() if line.startswith("writeback "))
    assert "book_appointment" in out and "visit-1" in out

    final = (await sup.api.get(f"/writebacks/{writeback_id}", params={"wait": "30"})).json()
    assert final["state"] == "completed" and final["idempotency_key"] == "visit-1"

    status, out, err = await sup.cli("writeback", writeback_id)
    assert status == 0, err
    narrow(out)
    assert writeback_id in out and "completed" in out and final["created_id"] in out
    await sup.same_as_api(f"/writebacks/{writeback_id}", "writeback", writeback_id)

    # the same key and payload again: the API answers 200 with the existing one, and so does --json
    again = await sup.submit("D1000", 0, "--idempotency-key", "visit-1")
    assert again == (await sup.api.get(f"/writebacks/{writeback_id}")).json()

    status, out, err = await sup.cli("writeback", str(uuid.uuid4()))
    assert status == 2 and "unknown_writeback" in err and out == ""


async def test_submit_wait_until_completed_is_exit_0(sup):
    status, out, err = await sup.cli("submit", "D1000", "book_appointment", "--payload", sup.booking(), "--wait", "40", "--json")
    assert status == 0, err
    shown = json.loads(out)
    assert shown["state"] == "completed" and shown["created_id"]
    r = await sup.api.get(f"/writebacks/{shown['writeback_id']}")
    assert out == r.text + "\n"  # the last answer, exactly
    assert "waiting" in err  # progress on stderr

    status, out, err = await sup.cli("submit", "D1001", "book_appointment", "--payload", sup.booking("D1001"), "--wait", "40")
    assert status == 0, err
    narrow(out)
    assert "completed" in out


async def test_submit_wait_runs_out_is_exit_4(sup):
    await sup.faults({"spu_offline": ["D1001"]})  # Sikka answers 412: the writeback waits (deferred)
    t0 = trio.current_time()
    status, out, err = await sup.cli("submit", "D1001", "book_appointment", "--payload", sup.booking("D1001"), "--wait", "2", "--json")
    elapsed = trio.current_time() - t0
    assert status == 4, err
    assert 1.9 <= elapsed < 10, elapsed
    shown = json.loads(out)
    assert shown["state"] not in FINAL
    assert f"writeback {shown['writeback_id']} is still {shown['state']} after 2 s" in err


async def test_submit_wait_ends_failed_is_exit_1(sup):
    await sup.faults({"spu_offline": ["D1001"]})
    status, out, err = await sup.cli(
        "submit", "D1001", "book_appointment", "--payload", sup.booking("D1001"), "--deadline", "1", "--wait", "30", "--json"
    )
    assert status == 1, err
    shown = json.loads(out)
    assert shown["state"] == "failed" and shown["error"]["code"] == "deadline_exceeded"
    assert "ended failed" in err
    status, out, err = await sup.cli("writebacks", "D1001")  # regression: no error column
    assert status == 0, err
    narrow(out)
    assert out.splitlines()[1].split()[:2] == [shown["writeback_id"], "failed"] and "book_appointment" in out.split()
    error = f"error: deadline_exceeded: {shown['error']['message']}"
    assert error in " ".join(out.split()), out


async def test_bad_input_is_exit_2_naming_the_field(sup):
    status, out, err = await sup.cli("submit", "D1000", "book_appointment", "--payload", sup.booking(date=None))
    assert status == 2 and out == ""
    assert "missing_field" in err and "(field: date)" in err

    status, out, err = await sup.cli("submit", "D1000", "book_appointment", "--payload", sup.booking(time="9am"), "--json")
    assert status == 2
    assert json.loads(out)["field"] == "time" and "(field: time)" in err

    status, out, err = await sup.cli("submit", "D1000", "no_such_operation", "--payload", "{}")
    assert status == 2 and "unknown_operation" in err

    status, _, err = await sup.cli("submit", "D1000", "book_appointment", "--payload", "{not json")
    assert status == 2 and "--payload is not valid JSON" in err

    status, _, err = await sup.cli("writebacks", "D1000", "--state", "bogus")
    assert status == 2 and "(field: state)" in err

    status, _, err = await sup.cli("stats", "D1000", "--since", "last tuesday")
    assert status == 2 and "(field: since)" in err
    assert (await sup.api.get("/practices/D1000/writebacks")).json() == {"writebacks": []}  # nothing stored


async def test_writebacks(sup):
    first = await sup.submit("D1000", 0)
    second = await sup.submit("D1000", 1)
    status, out, err = await sup.cli("writebacks", "D1000")
    assert status == 0, err
    narrow(out)
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["WRITEBACK", "STATE"]
    assert [r.split()[0] for r in rows] == [second["writeback_id"], first["writeback_id"]]  # newest first

    body = await sup.same_as_api("/practices/D1000/writebacks?limit=1", "writebacks", "D1000", "--limit", "1")
    assert [w["writeback_id"] for w in body["writebacks"]] == [second["writeback_id"]]

    for wid in (first["writeback_id"], second["writeback_id"]):
        await sup.api.get(f"/writebacks/{wid}", params={"wait": "30"})
    body = await sup.same_as_api(
        "/practices/D1000/writebacks?state=completed&state=failed", "writebacks", "D1000", "--state", "completed", "--state", "failed"
    )
    assert len(body["writebacks"]) == 2

    status, out, err = await sup.cli("writebacks", "D1001")
    assert status == 0 and out.strip() == "no writebacks"
    status, _, err = await sup.cli("writebacks", "D9999")
    assert status == 2 and "unknown_practice" in err


async def test_cancel(sup):
    sup.sim.config.writeback_delay = (3600, 3600)  # Sikka is slow to finish it: it stays pending
    wb = await sup.submit("D1001", 0)
    with trio.fail_after(10):  # acknowledged by Sikka, held pending
        while (await sup.api.get(f"/writebacks/{wb['writeback_id']}")).json()["state"] != "pending":
            await trio.sleep(0.1)
    status, out, err = await sup.cli("cancel", wb["writeback_id"])  # DELETE at Sikka, then cancelled
    assert status == 0, err
    narrow(out)
    assert "cancelled" in out
    assert (await sup.api.get(f"/writebacks/{wb['writeback_id']}")).json()["state"] == "cancelled"

    r = await sup.api.get(f"/writebacks/{wb['writeback_id']}")
    status, out, err = await sup.cli("cancel", wb["writeback_id"], "--json")  # final: 409 not_cancellable
    assert status == 1 and json.loads(out)["error"] == "not_cancellable" and "not_cancellable" in err
    assert (await sup.api.get(f"/writebacks/{wb['writeback_id']}")).text == r.text  # nothing changed

    second = await sup.submit("D1000", 1)  # a queued or pending one, cancelled; --json is the answer
    status, out, err = await sup.cli("cancel", second["writeback_id"], "--json")
    if status == 1:  # it was in flight at that instant (409 while submitting): once more
        await trio.sleep(0.5)
        status, out, err = await sup.cli("cancel", second["writeback_id"], "--json")
    shown = json.loads(out)
    if shown["state"] == "cancelled":
        assert status == 0, err
        assert out == (await sup.api.get(f"/writebacks/{second['writeback_id']}")).text + "\n"
    else:  # Sikka finished it before the DELETE: its real outcome
        assert shown["state"] == "completed", shown
    status, out, err = await sup.cli("cancel", str(uuid.uuid4()))
    assert status == 2 and "unknown_writeback" in err


# --- operator actions --------------------------------------------------------------------------


async def test_pause_resume_refresh_token(sup):
    status, out, err = await sup.cli("pause", "D1000")
    assert status == 0, err
    narrow(out)
    assert "paused" in out
    assert (await sup.api.get("/practices/D1000")).json()["state"] == "paused"
    status, out, err = await sup.cli("pause", "D1000", "--json")  # again: still paused
    assert status == 0, err
    shown, direct = json.loads(out), (await sup.api.get("/practices/D1000")).json()
    shown.pop("rate"), direct.pop("rate")  # the budget moves with background calls
    assert shown == direct and shown["state"] == "paused"

    status, out, err = await sup.cli("resume", "D1000")
    assert status == 0, err
    assert "active" in out
    assert (await sup.api.get("/practices/D1000")).json()["state"] == "active"

    before = (await sup.api.get("/practices/D1000")).json()["token_expires_at"]
    status, out, err = await sup.cli("refresh-token", "D1000")
    assert status == 0, err
    after = (await sup.api.get("/practices/D1000")).json()
    assert after["last_error"] is None and after["token_expires_at"] >= before
    assert after["token_expires_at"] in out

    for action in ("pause", "resume", "refresh-token", "retry-failed", "offboard"):
        status, _, err = await sup.cli(action, "D9999")
        assert status == 2 and "unknown_practice" in err, (action, err)


async def test_retry_failed(sup):
    status, out, err = await sup.cli("retry-failed", "D1000")
    assert status == 0, err
    assert out.strip() == "retried 0 writebacks"

    await sup.faults({"spu_offline": ["D1001"]})
    wb = await sup.submit("D1001", 0, "--deadline", "1")
    done = (await sup.api.get(f"/writebacks/{wb['writeback_id']}", params={"wait": "30"})).json()
    assert done["state"] == "failed" and done["retryable"], done
    await sup.faults({})

    status, out, err = await sup.cli("retry-failed", "D1001")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "retried 1 writeback"
    retried = (await sup.api.get(f"/writebacks/{lines[1].strip()}")).json()
    assert retried["retry_of"] == wb["writeback_id"]
    status, out, err = await sup.cli("retry-failed", "D1001")  # never the same one twice
    assert status == 0 and out.strip() == "retried 0 writebacks"
    status, out, err = await sup.cli("retry-failed", "D1001", "--json")
    assert status == 0 and out == (await sup.api.post("/practices/D1001/retry-failed")).text + "\n"
    assert json.loads(out) == {"retried": 0, "writebacks": []}


async def test_offboard(sup):
    status, out, err = await sup.cli("offboard", "D1001", "--json")
    assert status == 0, err
    shown = json.loads(out)
    assert shown["office_id"] == "D1001" and set(shown) == set((await sup.api.get("/practices/D1000")).json())
    assert shown["state"] == "offboarded"
    status, out, err = await sup.cli("status")
    assert status == 0 and any(line.split()[:1] == ["D1001"] and " offboarded " in line for line in out.splitlines())
    status, out, err = await sup.cli("offboard", "D1000")
    assert status == 0, err
    narrow(out)
    assert "D1000" in out
    with psycopg.connect(sup.database_url) as conn:
        left = conn.execute("SELECT count(*) FROM credentials WHERE owner IN ('D1000', 'D1001')").fetchone()[0]
    assert left == 0


# --- usage and stats ---------------------------------------------------------------------------


async def test_usage(sup):
    status, out, err = await sup.cli("usage")
    assert status == 0, err
    narrow(out)
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["OFFICE", "NAME"]
    assert sorted(r.split()[0] for r in rows) == list(OFFICES)
    body = await sup.same_as_api("/usage", "usage")
    assert sorted(u["office_id"] for u in body["practices"]) == list(OFFICES)


async def test_alerts(sup):
    status, out, err = await sup.cli("alerts")
    assert status == 0 and out.strip() == "no alerts", err
    await sup.faults({"revoke": ["D1001"]})  # the practice de-authorized the app
    await sup.cli("refresh-token", "D1001")
    with trio.fail_after(20):  # the monitor evaluates every 5 s
        while "setup_required" not in {a["kind"] for a in (await sup.api.get("/alerts")).json()["alerts"]}:
            await trio.sleep(0.2)
    status, out, err = await sup.cli("alerts")
    assert status == 0, err
    narrow(out)
    assert out.splitlines()[0].split()[:3] == ["SEVERITY", "KIND", "OFFICE"]
    assert any(row.split()[:3] == ["critical", "setup_required", "D1001"] for row in out.splitlines()[1:]), out
    body = await sup.same_as_api("/alerts", "alerts")
    assert {a["office_id"] for a in body["alerts"]} == {"D1001"}
    for alert in body["alerts"]:  # regression: messages were cut at ~26 characters
        assert all(word in out.split() for word in alert["message"].split()), (alert["message"], out)


async def test_stats(sup):
    wb = await sup.submit("D1000", 0)
    await sup.api.get(f"/writebacks/{wb['writeback_id']}", params={"wait": "30"})
    status, out, err = await sup.cli("stats", "D1000")
    assert status == 0, err
    narrow(out)
    assert "requested" in out and "success rate" in out and "100.0%" in out
    body = await sup.same_as_api("/practices/D1000/stats", "stats", "D1000")
    assert body["requested"] == body["completed"] == 1
    body = await sup.same_as_api(
        "/practices/D1000/stats?since=2999-01-01T00%3A00%3A00Z", "stats", "D1000", "--since", "2999-01-01T00:00:00Z"
    )
    assert body["requested"] == 0
    status, _, err = await sup.cli("stats", "D9999")
    assert status == 2 and "unknown_practice" in err


# --- onboard -----------------------------------------------------------------------------------


async def test_onboard_through_the_supervisor(sup):
    status, out, err = await sup.cli("onboard")
    assert status == 0, err
    narrow(out)
    assert "by the supervisor" in err
    header, *rows = out.splitlines()
    assert header.split() == ["OFFICE", "NAME", "ACTION"]
    assert [(r.split()[0], r.split()[-1]) for r in rows] == [(o, "unchanged") for o in OFFICES]


async def test_onboard_json_and_an_offboarded_practice_back_when_named(sup):
    """Regression: onboard called an offboarded practice "unchanged" and nothing said how to bring
    it back; ``onboard --json`` was refused."""
    body = await sup.same_as_api_post("/onboard", "onboard")
    assert {p["action"] for p in body["practices"]} == {"unchanged"}
    assert (await sup.cli("offboard", "D1001"))[0] == 0
    status, out, err = await sup.cli("onboard")
    assert status == 0, err
    narrow(out)
    assert [line.split()[-1] for line in out.splitlines()[1:3]] == ["unchanged", "offboarded"]
    assert "`sikka-supervisor onboard --office D1001` brings it back" in out

    status, out, err = await sup.cli("onboard", "--office", "D9999")
    assert status == 2 and out == "" and "unknown_practice" in err
    status, out, err = await sup.cli("onboard", "--office", "D1/0")
    assert status == 2 and out == "" and "is not an office id" in err
    status, out, err = await sup.cli("onboard", "--office", "D1001", "--json")
    assert status == 0, err
    assert json.loads(out) == {"practices": [
        {"office_id": "D1001", "practice_name": sup.sim.practice("D1001").info.name, "action": "registered"}
    ]}
    await sup.until_active()
    status, out, _ = await sup.cli("status", "D1001")
    assert status == 0 and "active" in out


async def test_onboard_without_a_supervisor_registers_and_grants_nothing(env):
    result = await env.process("onboard")
    assert result.returncode == 0, result.stderr
    narrow(result.stdout)
    assert "running the authorization flow here" in result.stderr
    rows = result.stdout.splitlines()[1:]
    assert [(r.split()[0], r.split()[-1]) for r in rows] == [(o, "registered") for o in OFFICES]
    with psycopg.connect(env.database_url) as conn:
        practices = conn.execute("SELECT office_id, practice_name FROM practices ORDER BY office_id").fetchall()
        kinds = conn.execute("SELECT kind, count(*) FROM credentials GROUP BY kind ORDER BY kind").fetchall()
    assert practices == [(o, env.sim.practice(o).info.name) for o in OFFICES]
    assert kinds == [("secret_key", 2)]  # stored encrypted; no request or refresh key: not a token writer
    for o in OFFICES:
        assert env.sim.practice(o).info.secret_key not in result.stdout + result.stderr

    again = await env.process("onboard", "--json")
    assert again.returncode == 0, again.stderr
    assert [p["action"] for p in json.loads(again.stdout)["practices"]] == ["unchanged", "unchanged"]


# --- doctor --------------------------------------------------------------------------------------


async def test_doctor(sup):
    result = await sup.process("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert all(line.startswith("ok ") for line in lines), lines
    names = [line.split(":")[0].split(None, 1)[1] for line in lines]
    assert names == [
        "settings", "database", "app credentials", "key D1000", "key D1001", "spu D1000", "spu D1001", "admin socket"
    ]
    # what each check means, once under the first line of its kind (regression: Sikka's raw word only)
    meanings = [line.strip() for line in result.stdout.splitlines() if line.startswith(" ")]
    kinds = ["settings", "database", "app credentials", "key", "spu", "admin socket"]
    assert meanings == [f"({doctor.MEANINGS[kind]})" for kind in kinds]
    for office_id in OFFICES:  # how old the practice's data is (the simulator's SPU refreshes every 15 min)
        (spu,) = [line for line in lines if line.startswith(f"ok    spu {office_id}:")]
        assert re.fullmatch(rf"ok    spu {office_id}: refreshing, data (\d+ s|\d+ min) old \(last refresh "
                            r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\)", spu), spu
    shown = await sup.process("doctor", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["ok"] is True and [(c["check"], c["subject"]) for c in report["checks"]] == [
        ("settings", None), ("database", None), ("app credentials", None), ("key", "D1000"), ("key", "D1001"),
        ("spu", "D1000"), ("spu", "D1001"), ("admin socket", None),
    ]
    assert all(c["ok"] and c["meaning"] == doctor.MEANINGS[c["check"]] for c in report["checks"])
    for spu in report["checks"][5:7]:
        assert 0 <= spu["age_s"] < 20 * 60 and spu["last_refresh"].endswith("Z"), spu
    secrets = [sup.env["SIKKA_APP_KEY"], sup.env["SIKKA_SECRETS_KEY"]]
    secrets += [sup.sim.practice(o).info.secret_key for o in OFFICES]
    for secret in secrets:
        assert secret not in result.stdout + result.stderr

    await sup.faults({"revoke": ["D1001"]})
    result = await sup.process("doctor")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert any(line.startswith("FAIL  key D1001:") for line in failed), result.stdout
    assert not any("D1000" in line for line in failed), result.stdout
    shown = await sup.process("doctor", "--json")
    assert shown.returncode == 1 and json.loads(shown.stdout)["ok"] is False
    assert {c["subject"] for c in json.loads(shown.stdout)["checks"] if not c["ok"]} == {"D1001"}


async def test_doctor_without_supervisor_or_credentials(env):
    result = await env.process("doctor")  # nothing answers on the socket, no practice registered
    assert result.returncode == 1
    assert "FAIL  admin socket: nothing answers on" in result.stdout
    assert "ok    app credentials" in result.stdout

    env.env["SIKKA_APP_KEY"] = ""
    result = await env.process("doctor")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "FAIL  settings: SIKKA_APP_KEY is not set (required by this command)", f"        ({doctor.MEANINGS['settings']})"
    ]
    shown = await env.process("doctor", "--json")
    assert shown.returncode == 1 and json.loads(shown.stdout) == {"ok": False, "checks": [{
        "check": "settings", "subject": None, "ok": False, "meaning": doctor.MEANINGS["settings"],
        "detail": "SIKKA_APP_KEY is not set (required by this command)"}]}
