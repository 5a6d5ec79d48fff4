"""Over real sockets: ``serve()`` in-process, the ``sikka-sim`` command, and 5,000 practices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from sim import SimConfig, Simulator, serve
from tests.support.sim import APP

ROOT = Path(__file__).resolve().parents[2]
SIM_CMD = [str(ROOT / ".venv" / "bin" / "sikka-sim")] if (ROOT / ".venv/bin/sikka-sim").exists() else [
    sys.executable, "-m", "sim.cli"]


def _grant_body(sim_or_secret, office="D1000"):
    secret = sim_or_secret if isinstance(sim_or_secret, str) else sim_or_secret.practice(office).info.secret_key
    return {"grant_type": "request_key", "office_id": office, "secret_key": secret, "app_id": "sim-app-id",
            "app_key": "sim-app-key"}


async def test_serve_in_process():
    simulator = Simulator(SimConfig(writeback_delay=(0.05, 0.05)))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, simulator, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/v4") as client:
            r = await client.post("/request_key", json=_grant_body(simulator))
            key = {"request-KEY": r.json()["request_key"]}
            r = await client.get("/patients", headers=key, params={"limit": "5"})
            assert r.status_code == 200 and len(r.json()["items"]) == 5
            assert r.headers["content-encoding"] == "gzip"  # httpx asks for gzip and decodes it
            plain = await client.get("/patients", headers={**key, "Accept-Encoding": "identity"}, params={"limit": "5"})
            assert "content-encoding" not in plain.headers and plain.json()["items"] == r.json()["items"]
            assert r.json()["pagination"]["next"] == f"http://127.0.0.1:{port}/v4/patients?offset=1&limit=5"
            assert r.headers["x-rate-limit-remaining"] == "248" and "request-key-expires" in r.headers
            body = {"patient_id": "10001", "date": "2026-02-03", "time": "10:00", "length": "30",
                    "provider_id": "DDS1", "operatory": "OP1", "practice_id": "1"}
            r = await client.post("/appointment", json=body, headers=key)
            assert r.status_code == 201
            wid = r.json()["long_message"][3:]
            await trio.sleep(0.1)
            r = await client.get("/writeback_status", params={"id": wid}, headers=key)
            assert r.json()[0]["items"][0]["is_completed"] == "True"
            await client.post(f"http://127.0.0.1:{port}/_sim/faults", json={"drop_after_accept_rate": 1})
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("/appointment", json=body, headers=key)
            stats = (await client.get(f"http://127.0.0.1:{port}/_sim/stats")).json()
            assert stats["practices"]["D1000"]["writebacks_submitted"] == 2
        nursery.cancel_scope.cancel()


def _start_cli(*args):
    proc = subprocess.Popen([*SIM_CMD, "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
    return proc, line.removeprefix("listening on ")


def test_cli_first_line_request_and_cut_connection():
    proc, url = _start_cli("--practices", "2", "--seed", "3")
    try:
        with httpx.Client(base_url=f"{url}/v4") as client:
            r = client.get("/authorized_practices", headers=APP, params={"show": "all"})
            practices = r.json()["items"]
            assert [p["office_id"] for p in practices] == ["D1000", "D1001"]
            key = {"Request-Key": client.post("/request_key", json=_grant_body(practices[1]["secret_key"], "D1001")).json()["request_key"]}
            client.post(f"{url}/_sim/faults", json={"drop_after_accept_rate": 1.0})
            with pytest.raises(httpx.RemoteProtocolError):
                client.post("/patient", headers=key, json={"firstname": "A", "lastname": "B", "provider_id": "DDS1",
                                                           "practice_id": "1"})
            stats = client.get(f"{url}/_sim/stats").json()["practices"]["D1001"]
            assert stats["writebacks_submitted"] == 1
            assert client.get(f"{url}/_sim/practices/D1001/requests").json()["items"][-1]["status"] == 0
    finally:
        proc.terminate()
        proc.wait(10)


SCRIPT = """
import sys, time, json
t0 = time.perf_counter()
from sim import Simulator, SimConfig
sim = Simulator(SimConfig(practices=5000))
rows = 0
for office in sim.office_ids():
    for what in ("appointments", "patients"):
        rows += len(sim.handle("GET", f"/_sim/practices/{office}/{what}", {}).json()["items"])
listing = sim.handle("GET", "/v4/authorized_practices?show=all&limit=5000", {"App-Id": "sim-app-id", "App-Key": "sim-app-key"})
assert len(listing.json()["items"]) == 5000
seconds = time.perf_counter() - t0
rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")][0] / 1024
print(json.dumps({"seconds": round(seconds, 2), "rss_mb": round(rss, 1), "rows": rows}))
"""


def test_5000_practices_fit_in_a_few_hundred_mb():
    """Interface section 5: data generated lazily per practice, so 5,000 practices fit in a few
    hundred MB. (How fast they start is the scale benchmark's figure, not a timed test's.)"""
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print("5000 practices:", figures)
    assert figures["rows"] == 5000 * 150
    assert figures["rss_mb"] <= 500, figures


def test_cli_with_5000_practices_serves_them_in_a_few_hundred_mb():
    proc, url = _start_cli("--practices", "5000")
    try:
        r = httpx.get(f"{url}/v4/data_sync_status", headers=APP, params={"limit": "5000"})
        assert r.json()["total_count"] == "5000"
        rss = [int(l.split()[1]) for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmRSS")][0] / 1024
        assert rss < 500
    finally:
        proc.terminate()
        proc.wait(10)
